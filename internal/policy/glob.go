package policy

import (
	"errors"
	"fmt"
)

// glob is a compiled shell-style pattern over the bytes of a tag (tags are
// ASCII): "*" matches any run of bytes (including none), "?" exactly one,
// "[abc]", "[a-z]" one byte of a set, "[!a-z]" or "[^a-z]" one byte not in
// it, and "\x" the byte x literally. The whole tag must match.
type glob struct {
	pat  string
	toks []gtok
	lit  bool // no metacharacter: the pattern matches itself only
}

type gtokKind uint8

const (
	gLit gtokKind = iota
	gAny
	gStar
	gClass
)

type gtok struct {
	kind gtokKind
	b    byte
	set  [4]uint64 // bitmap of the 256 byte values, for gClass
}

func (t *gtok) has(c byte) bool { return t.set[c>>6]&(1<<(c&63)) != 0 }

func compileGlob(pat string) (*glob, error) {
	if pat == "" {
		return nil, errors.New("empty pattern")
	}
	g := &glob{pat: pat, lit: true}
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			return nil, fmt.Errorf("whitespace at offset %d: tags never contain it", i)
		case '*':
			g.lit = false
			if n := len(g.toks); n == 0 || g.toks[n-1].kind != gStar {
				g.toks = append(g.toks, gtok{kind: gStar})
			}
		case '?':
			g.lit = false
			g.toks = append(g.toks, gtok{kind: gAny})
		case '[':
			g.lit = false
			t, next, err := compileClass(pat, i)
			if err != nil {
				return nil, err
			}
			g.toks = append(g.toks, t)
			i = next - 1
		case '\\':
			if i+1 == len(pat) {
				return nil, errors.New(`trailing "\"`)
			}
			g.lit = false // the pattern text differs from what it matches
			i++
			g.toks = append(g.toks, gtok{kind: gLit, b: pat[i]})
		case ']':
			return nil, fmt.Errorf(`unmatched "]" at offset %d`, i)
		default:
			g.toks = append(g.toks, gtok{kind: gLit, b: c})
		}
	}
	return g, nil
}

// compileClass parses the class starting at pat[start] == '[' and returns the
// index after its closing ']'.
func compileClass(pat string, start int) (gtok, int, error) {
	t := gtok{kind: gClass}
	i := start + 1
	negate := false
	if i < len(pat) && (pat[i] == '!' || pat[i] == '^') {
		negate = true
		i++
	}
	n := 0
	for {
		if i >= len(pat) {
			return t, 0, fmt.Errorf(`unterminated "[" at offset %d`, start)
		}
		c := pat[i]
		if c == ']' {
			break
		}
		if c == '[' {
			return t, 0, fmt.Errorf(`"[" inside a class at offset %d (escape it as "\[")`, i)
		}
		if c == '\\' {
			i++
			if i >= len(pat) {
				return t, 0, fmt.Errorf(`unterminated "[" at offset %d`, start)
			}
			c = pat[i]
		}
		lo, hi := c, c
		if i+2 < len(pat) && pat[i+1] == '-' && pat[i+2] != ']' {
			i += 2
			hi = pat[i]
			if hi == '\\' {
				i++
				if i >= len(pat) {
					return t, 0, fmt.Errorf(`unterminated "[" at offset %d`, start)
				}
				hi = pat[i]
			}
			if hi < lo {
				return t, 0, fmt.Errorf("bad range %q-%q in class at offset %d", lo, hi, start)
			}
		}
		for b := int(lo); b <= int(hi); b++ {
			t.set[b>>6] |= 1 << (uint(b) & 63)
		}
		n++
		i++
	}
	if n == 0 {
		return t, 0, fmt.Errorf(`empty class "[]" at offset %d`, start)
	}
	if negate {
		for k := range t.set {
			t.set[k] = ^t.set[k]
		}
	}
	return t, i + 1, nil
}

// match reports whether the whole of s matches. It runs in O(len(s)) for
// patterns with at most one "*" and O(len(s)·len(pattern)) at worst: on a
// mismatch it backtracks only to the last "*" seen, which is enough because
// every other token matches exactly one byte.
func (g *glob) match(s string) bool {
	if g.lit {
		return s == g.pat
	}
	toks := g.toks
	ti, si := 0, 0
	starT, starS := -1, 0
	for si < len(s) {
		if ti < len(toks) {
			t := &toks[ti]
			switch t.kind {
			case gStar:
				starT, starS = ti, si
				ti++
				continue
			case gLit:
				if s[si] == t.b {
					ti++
					si++
					continue
				}
			case gAny:
				ti++
				si++
				continue
			case gClass:
				if t.has(s[si]) {
					ti++
					si++
					continue
				}
			}
		}
		if starT < 0 {
			return false
		}
		starS++
		si, ti = starS, starT+1
	}
	for ti < len(toks) && toks[ti].kind == gStar {
		ti++
	}
	return ti == len(toks)
}
