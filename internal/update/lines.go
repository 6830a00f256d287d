package update

import (
	"fmt"
	"unicode/utf8"
)

// lineIndex maps YAML positions (1-based line, 1-based column counted in characters) to
// byte offsets. It counts line breaks exactly as the YAML scanner does: CRLF, CR, LF, NEL,
// LS and PS each end a line; a UTF-8 byte order mark at the start is not a column.
type lineIndex struct {
	data  []byte
	start []int // byte offset of the first character of each line (0-based line)
}

func newLineIndex(data []byte) *lineIndex {
	li := &lineIndex{data: data, start: make([]int, 1, 64)}
	if len(data) >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF {
		li.start[0] = 3
	}
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '\n':
			li.start = append(li.start, i+1)
		case '\r':
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
			li.start = append(li.start, i+1)
		case 0xC2:
			if i+1 < len(data) && data[i+1] == 0x85 {
				i++
				li.start = append(li.start, i+1)
			}
		case 0xE2:
			if i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9) {
				i += 2
				li.start = append(li.start, i+1)
			}
		}
	}
	return li
}

// offset returns the byte offset of a 1-based line and column.
func (li *lineIndex) offset(line, col int) (int, error) {
	if line < 1 || line > len(li.start) || col < 1 {
		return 0, fmt.Errorf("%w: position %d:%d outside the file", ErrVerify, line, col)
	}
	off := li.start[line-1]
	for c := 1; c < col; c++ {
		if off >= len(li.data) {
			return 0, fmt.Errorf("%w: position %d:%d outside the file", ErrVerify, line, col)
		}
		_, w := utf8.DecodeRune(li.data[off:])
		off += w
	}
	return off, nil
}

// lineEnd returns the offset of the line break (or end of data) of the line holding off.
func lineEnd(data []byte, off int) int {
	for off < len(data) && !isBreakAt(data, off) {
		off++
	}
	return off
}

func isBreakAt(b []byte, i int) bool {
	switch b[i] {
	case '\n', '\r':
		return true
	case 0xC2:
		return i+1 < len(b) && b[i+1] == 0x85
	case 0xE2:
		return i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xA8 || b[i+2] == 0xA9)
	}
	return false
}

func blank(b []byte) bool {
	for _, c := range b {
		if c != ' ' {
			return false
		}
	}
	return true
}

func blankOrComment(b []byte) bool {
	for _, c := range b {
		if c == '#' {
			return true
		}
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

func spaces(n int) []byte { return []byte(fmt.Sprintf("%*s", n, "")) }

// breakWidth is the width of the line break at i (0 at the end of data).
func breakWidth(b []byte, i int) int {
	switch {
	case i >= len(b):
		return 0
	case b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n':
		return 2
	case b[i] == '\r' || b[i] == '\n':
		return 1
	case b[i] == 0xC2:
		return 2
	case b[i] == 0xE2:
		return 3
	}
	return 0
}

// prevBreakWidth is the width of the line break that ends just before i.
func prevBreakWidth(b []byte, i int) int {
	switch {
	case i >= 2 && b[i-2] == '\r' && b[i-1] == '\n':
		return 2
	case i >= 1 && (b[i-1] == '\n' || b[i-1] == '\r'):
		return 1
	case i >= 2 && b[i-2] == 0xC2 && b[i-1] == 0x85:
		return 2
	case i >= 3 && b[i-3] == 0xE2:
		return 3
	}
	return 0
}

// eolAt returns the line ending at i ("\r\n" or "\n"; "\n" at the end of data).
func eolAt(b []byte, i int) string {
	if i < len(b) && b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
		return "\r\n"
	}
	if i >= len(b) && i >= 2 && b[i-2] == '\r' && b[i-1] == '\n' {
		return "\r\n"
	}
	if i >= len(b) {
		// No line break here: use the file's first one.
		for j := 0; j < len(b); j++ {
			if b[j] == '\n' {
				if j > 0 && b[j-1] == '\r' {
					return "\r\n"
				}
				return "\n"
			}
		}
	}
	return "\n"
}
