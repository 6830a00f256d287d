package update

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// span is the byte range of a scalar's text (quotes included) in a file.
type span struct {
	start, end int
	style      yaml.Style // 0 (plain), SingleQuotedStyle or DoubleQuotedStyle
}

// editable says whether the editor can rewrite the scalar of fn in place, and where its
// bytes are. It cannot when the scalar is anchored or reached through an alias (editing it
// would change other places), or is not a plain, 'single' or "double" quoted scalar on one
// line that reads as its value (block scalars, multi-line scalars): ErrUnsupported. Find
// uses it to keep such targets out of automation (Target.EditErr), Apply to refuse them.
func editable(li *lineIndex, fn fieldNode) (span, error) {
	if fn.shared {
		return span{}, fmt.Errorf("%w: anchored or reached through an alias; editing it would change other places", ErrUnsupported)
	}
	return scalarSpan(li, fn.node, fn.flow)
}

// scalarSpan finds the bytes of scalar node n in data and checks that they decode to
// n.Value. It handles plain, single- and double-quoted scalars on one line, after any
// anchor or tag; anything else is ErrUnsupported.
func scalarSpan(li *lineIndex, n *yaml.Node, flow bool) (span, error) {
	if n.Kind != yaml.ScalarNode {
		return span{}, fmt.Errorf("%w: not a scalar", ErrUnsupported)
	}
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return span{}, fmt.Errorf("%w: block scalar", ErrUnsupported)
	}
	data := li.data
	off, err := li.offset(n.Line, n.Column)
	if err != nil {
		return span{}, err
	}
	// Skip node properties: &anchor and !tag, each followed by blanks.
	for off < len(data) && (data[off] == '&' || data[off] == '!') {
		for off < len(data) && data[off] != ' ' && data[off] != '\t' && !isBreakAt(data, off) {
			off++
		}
		for off < len(data) && (data[off] == ' ' || data[off] == '\t') {
			off++
		}
	}
	if off >= len(data) {
		return span{}, fmt.Errorf("%w: scalar at %d:%d not found", ErrVerify, n.Line, n.Column)
	}
	eol := lineEnd(data, off)
	var sp span
	var text string
	switch data[off] {
	case '"':
		end, val, ok := scanDoubleQuoted(data[off:eol])
		if !ok {
			return span{}, fmt.Errorf("%w: double-quoted scalar spans lines", ErrUnsupported)
		}
		sp, text = span{off, off + end, yaml.DoubleQuotedStyle}, val
	case '\'':
		end, val, ok := scanSingleQuoted(data[off:eol])
		if !ok {
			return span{}, fmt.Errorf("%w: single-quoted scalar spans lines", ErrUnsupported)
		}
		sp, text = span{off, off + end, yaml.SingleQuotedStyle}, val
	default:
		end := scanPlain(data[off:eol], flow)
		sp, text = span{off, off + end, 0}, string(data[off:off+end])
	}
	if text != n.Value {
		return span{}, fmt.Errorf("%w: scalar at %d:%d reads %q, want %q (multi-line or unusual form)", ErrUnsupported, n.Line, n.Column, text, n.Value)
	}
	return sp, nil
}

// scanPlain returns the length of a plain scalar on one line: up to " #", and in flow
// context up to a flow indicator or ": "; trailing blanks are not part of it.
func scanPlain(b []byte, flow bool) int {
	end := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '#' && i > 0 && (b[i-1] == ' ' || b[i-1] == '\t') {
			break
		}
		if flow && (c == ',' || c == ']' || c == '}' || c == '[' || c == '{') {
			break
		}
		if c == ':' && (i+1 == len(b) || b[i+1] == ' ' || b[i+1] == '\t' || (flow && strings.IndexByte(",[]{}", b[i+1]) >= 0)) {
			break
		}
		if c != ' ' && c != '\t' {
			end = i + 1
		}
	}
	return end
}

// scanSingleQuoted reads a single-quoted scalar that closes on this line.
func scanSingleQuoted(b []byte) (end int, val string, ok bool) {
	var sb strings.Builder
	for i := 1; i < len(b); i++ {
		if b[i] == '\'' {
			if i+1 < len(b) && b[i+1] == '\'' {
				sb.WriteByte('\'')
				i++
				continue
			}
			return i + 1, sb.String(), true
		}
		sb.WriteByte(b[i])
	}
	return 0, "", false
}

// scanDoubleQuoted reads a double-quoted scalar that closes on this line, decoding escapes.
func scanDoubleQuoted(b []byte) (end int, val string, ok bool) {
	var sb strings.Builder
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1, sb.String(), true
		case '\\':
			if i+1 >= len(b) {
				return 0, "", false
			}
			i++
			if r, n := decodeEscape(b[i:]); n > 0 {
				sb.WriteString(r)
				i += n - 1
				continue
			}
			return 0, "", false
		default:
			sb.WriteByte(b[i])
		}
	}
	return 0, "", false
}

// simpleEscapes are the one-character escapes of double-quoted scalars that yaml.v3 knows.
var simpleEscapes = map[byte]string{
	'0': "\x00", 'a': "\a", 'b': "\b", 't': "\t", '\t': "\t", 'n': "\n", 'v': "\v", 'f': "\f",
	'r': "\r", 'e': "\x1b", ' ': " ", '"': "\"", '\'': "'", '\\': "\\", 'N': "\u0085",
	'_': "\u00a0", 'L': "\u2028", 'P': "\u2029",
}

// decodeEscape decodes the escape after a backslash; n is the bytes consumed (0: invalid).
func decodeEscape(b []byte) (string, int) {
	if s, ok := simpleEscapes[b[0]]; ok {
		return s, 1
	}
	width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[b[0]]
	if width == 0 || len(b) < 1+width {
		return "", 0
	}
	var r rune
	for _, c := range b[1 : 1+width] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return "", 0
		}
		r = r<<4 | rune(d)
	}
	if r >= 0xD800 && r <= 0xDFFF || r > 0x10FFFF {
		return "", 0 // yaml.v3 rejects these
	}
	return string(r), 1 + width
}

// quoteFor renders v in the given scalar style. A plain scalar stays plain only when YAML
// reads it back as the same string (otherwise it is double-quoted, so "1.20" does not
// become the number 1.2); a single-quoted scalar cannot hold control characters.
func quoteFor(v string, style yaml.Style, flow bool) (string, error) {
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("%w: %q is not UTF-8", ErrUnsupported, v)
	}
	switch style {
	case yaml.SingleQuotedStyle:
		for _, r := range v {
			if r < 0x20 || !printable(r) || r == 0x85 || r == 0x2028 || r == 0x2029 || r == 0xFEFF {
				return "", fmt.Errorf("%w: %q in a single-quoted scalar", ErrUnsupported, v)
			}
		}
		return "'" + strings.ReplaceAll(v, "'", "''") + "'", nil
	case yaml.DoubleQuotedStyle:
		return doubleQuote(v), nil
	}
	if plainSafe(v, flow) {
		return v, nil
	}
	return doubleQuote(v), nil
}

func doubleQuote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range v {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", r)
		case !printable(r) || r == 0x85 || r == 0x2028 || r == 0x2029 || r == 0xFEFF:
			if r > 0xFFFF {
				fmt.Fprintf(&b, "\\U%08x", r)
			} else {
				fmt.Fprintf(&b, "\\u%04x", r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// plainSafe asks the YAML parser itself whether v, written plain, reads back as the
// string v.
func plainSafe(v string, flow bool) bool {
	if v == "" || strings.ContainsAny(v, "\r\n\t#") || strings.TrimSpace(v) != v {
		return false
	}
	if scanPlain([]byte(v), flow) != len(v) {
		return false // the scanner would not read it back whole (e.g. "a:")
	}
	for _, r := range v {
		if r < 0x20 || r >= 0x7f {
			return false
		}
	}
	doc := "k: " + v + "\n"
	if flow {
		doc = "{k: " + v + "}\n"
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		return false
	}
	if len(n.Content) != 1 || len(n.Content[0].Content) != 2 {
		return false
	}
	val := n.Content[0].Content[1]
	return val.Kind == yaml.ScalarNode && val.Tag == "!!str" && val.Value == v && val.Style == 0
}

// printable reports whether YAML allows r unescaped (c-printable, less tab and breaks).
func printable(r rune) bool {
	return r >= 0x20 && r <= 0x7E || r == 0x85 || r >= 0xA0 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}
