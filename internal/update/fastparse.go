package update

import (
	"bytes"
	"sync"
	"unicode/utf8"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// fastParse parses the plain block-style YAML that Kubernetes manifests are almost always
// written in, about ten times faster than yaml.v3, into the same nodes (kinds, values,
// styles, lines and columns; plain scalars get their tag lazily, see tagOf). Comments are
// dropped, so it is only used for finding targets in files without marker comments. It
// returns ok=false for anything outside its subset — tabs, CR or Unicode line breaks, a
// byte order mark, anchors, aliases, tags, block scalars, multi-line scalars or flow
// collections, directives, complex keys, odd indentation — and the caller uses yaml.v3.
// FuzzFastParse checks that whatever it accepts, yaml.v3 accepts and reads the same.
//
// The nodes live in the returned arena: call its release once the trees are no longer
// needed (or drop it to leave them to the garbage collector).
func fastParse(data []byte) (docs []*yaml.Node, arena *nodeArena, ok bool) {
	defer func() {
		if recover() != nil {
			docs, arena, ok = nil, nil, false
		}
	}()
	if !utf8.Valid(data) {
		return nil, nil, false
	}
	for i, c := range data {
		switch {
		case c < 0x20 && c != '\n' && c != '\r', c == 0x7F:
			return nil, nil, false // tabs, and control characters yaml.v3 rejects
		case c == 0xC2 && i+1 < len(data) && data[i+1] >= 0x80 && data[i+1] <= 0x9F:
			return nil, nil, false // C1 controls and NEL
		case c == 0xEF && i+2 < len(data) && data[i+1] == 0xBF && data[i+2] >= 0xBE:
			return nil, nil, false // U+FFFE, U+FFFF
		case c == '\r' && (i+1 >= len(data) || data[i+1] != '\n'):
			return nil, nil, false
		case c == 0xE2 && i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9):
			return nil, nil, false
		case c == 0xEF && i+2 < len(data) && data[i+1] == 0xBB && data[i+2] == 0xBF:
			return nil, nil, false
		}
	}
	p := &fastParser{data: data, str: string(data), arena: arenaPool.Get().(*nodeArena)}
	if !p.split() {
		p.arena.release()
		return nil, nil, false
	}
	docs, ok = p.documents()
	if !ok {
		p.arena.release()
		return nil, nil, false
	}
	return docs, p.arena, true
}

type fline struct {
	num    int // 1-based line number
	start  int // offset of the line's first byte
	end    int // offset of its end (before "\r\n" or "\n")
	indent int // leading spaces
	doc    bool
}

type fastParser struct {
	data  []byte
	str   string     // data as one string: scalar values are substrings of it
	arena *nodeArena // where nodes are allocated
	lines []fline    // content lines and "---" lines
	seg   []fline    // the lines of the document being parsed
	i     int
	bad   bool
}

// split finds the content lines (not blank, not comment-only) and the document markers.
func (p *fastParser) split() bool {
	num := 0
	p.lines = make([]fline, 0, bytes.Count(p.data, []byte{'\n'})+1)
	for start := 0; start < len(p.data); {
		num++
		nl := bytes.IndexByte(p.data[start:], '\n')
		end, next := len(p.data), len(p.data)
		if nl >= 0 {
			end, next = start+nl, start+nl+1
		}
		if end > start && p.data[end-1] == '\r' {
			end--
		}
		l := fline{num: num, start: start, end: end}
		for start+l.indent < end && p.data[start+l.indent] == ' ' {
			l.indent++
		}
		text := p.data[start+l.indent : end]
		switch {
		case len(text) == 0 || text[0] == '#':
		case l.indent == 0 && bytes.HasPrefix(text, []byte("---")) && (len(text) == 3 || text[3] == ' '):
			if !blankOrComment(text[3:]) {
				return false
			}
			l.doc = true
			p.lines = append(p.lines, l)
		case l.indent == 0 && (text[0] == '%' || bytes.HasPrefix(text, []byte("..."))):
			return false
		default:
			p.lines = append(p.lines, l)
		}
		start = next
	}
	return true
}

func (p *fastParser) documents() ([]*yaml.Node, bool) {
	var docs []*yaml.Node
	from, started := 0, false
	flush := func(to int) bool {
		seg := p.lines[from:to]
		if len(seg) == 0 {
			if started {
				docs = append(docs, p.node(yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}))
			}
			return true
		}
		p.seg, p.i = seg, 0
		n := p.block(-1)
		if p.bad || n == nil || p.i != len(seg) {
			return false
		}
		docs = append(docs, n)
		return true
	}
	for i, l := range p.lines {
		if l.doc {
			if !flush(i) {
				return nil, false
			}
			from, started = i+1, true
		}
	}
	if !flush(len(p.lines)) {
		return nil, false
	}
	return docs, true
}

// node allocates a node from the arena.
func (p *fastParser) node(n yaml.Node) *yaml.Node {
	return p.arena.alloc(n)
}

// nodeArena hands out nodes from chunks that are reused across files (Find parses
// thousands of files whose trees are garbage as soon as their targets are taken).
type nodeArena struct {
	chunks [][]yaml.Node
	chunk  int // index of the chunk in use
	used   int // nodes used in it
}

const arenaChunk = 512

var arenaPool = sync.Pool{New: func() any { return &nodeArena{} }}

func (a *nodeArena) alloc(n yaml.Node) *yaml.Node {
	if len(a.chunks) == 0 || a.used == arenaChunk {
		if len(a.chunks) > 0 {
			a.chunk++
		}
		if a.chunk == len(a.chunks) {
			a.chunks = append(a.chunks, make([]yaml.Node, arenaChunk))
		}
		a.used = 0
	}
	x := &a.chunks[a.chunk][a.used]
	*x = n
	a.used++
	return x
}

// release clears the nodes handed out (so they hold no strings) and returns the arena to
// the pool. No node of it may be used afterwards.
func (a *nodeArena) release() {
	for i := 0; i < a.chunk && i < len(a.chunks); i++ {
		clear(a.chunks[i])
	}
	if len(a.chunks) > 0 {
		clear(a.chunks[a.chunk][:a.used])
	}
	a.chunk, a.used = 0, 0
	if len(a.chunks) > 8 {
		a.chunks = a.chunks[:8] // do not keep a huge file's arena
	}
	arenaPool.Put(a)
}

func (p *fastParser) cur() *fline {
	if p.i < len(p.seg) {
		return &p.seg[p.i]
	}
	return nil
}

func (p *fastParser) col(l *fline, off int) int {
	return 1 + utf8.RuneCount(p.data[l.start:off])
}

func (p *fastParser) isSeqItem(l *fline, off int) bool {
	return off < l.end && p.data[off] == '-' && (off+1 == l.end || p.data[off+1] == ' ')
}

// block parses the node that starts on the current line, more indented than parent.
func (p *fastParser) block(parent int) *yaml.Node {
	l := p.cur()
	if l == nil || l.indent <= parent {
		return nil
	}
	off := l.start + l.indent
	if p.isSeqItem(l, off) {
		return p.seq(l.indent)
	}
	if _, _, ok := p.key(l, off); ok {
		return p.mapping(l.indent, off)
	}
	n := p.inline(l, off)
	p.i++
	if nl := p.cur(); nl != nil && nl.indent > parent {
		p.bad = true // a second line: a multi-line scalar
	}
	return n
}

// seq parses a block sequence whose "-" are at column ind+1.
func (p *fastParser) seq(ind int) *yaml.Node {
	l := p.cur()
	n := p.node(yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: l.num, Column: ind + 1})
	for !p.bad {
		l = p.cur()
		if l == nil || l.indent != ind || !p.isSeqItem(l, l.start+ind) {
			break
		}
		off := l.start + ind + 1
		for off < l.end && p.data[off] == ' ' {
			off++
		}
		var item *yaml.Node
		switch {
		case blankOrComment(p.data[off:l.end]):
			p.i++
			item = p.block(ind)
			if item == nil {
				item = p.node(yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: l.num, Column: ind + 2})
			}
		case p.isSeqItem(l, off):
			p.bad = true // "- - a"
		default:
			if _, _, ok := p.key(l, off); ok {
				item = p.mapping(off-l.start, off)
			} else {
				item = p.inline(l, off)
				p.i++
				if nl := p.cur(); nl != nil && nl.indent > ind {
					p.bad = true
				}
			}
		}
		if item != nil {
			n.Content = append(n.Content, item)
		}
	}
	if l := p.cur(); l != nil && l.indent > ind {
		p.bad = true
	}
	return n
}

// mapping parses a block mapping whose keys are at column ind+1; the first key is at
// offset first of the current line (after "- " for a mapping in a sequence item).
func (p *fastParser) mapping(ind, first int) *yaml.Node {
	l := p.cur()
	n := p.node(yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: l.num, Column: p.col(l, first)})
	off := first
	for !p.bad {
		k, colon, ok := p.key(l, off)
		if !ok {
			p.bad = true
			break
		}
		v := colon + 1
		for v < l.end && p.data[v] == ' ' {
			v++
		}
		var val *yaml.Node
		if blankOrComment(p.data[v:l.end]) {
			p.i++
			nl := p.cur()
			switch {
			case nl != nil && nl.indent > ind:
				val = p.block(ind)
			case nl != nil && nl.indent == ind && p.isSeqItem(nl, nl.start+ind):
				val = p.seq(ind)
			default:
				val = p.node(yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: l.num, Column: p.col(l, colon) + 1})
			}
		} else {
			val = p.inline(l, v)
			p.i++
			if nl := p.cur(); nl != nil && nl.indent > ind {
				p.bad = true
			}
		}
		if p.bad || val == nil {
			p.bad = true
			break
		}
		n.Content = append(n.Content, k, val)
		l = p.cur()
		if l == nil || l.indent != ind || p.isSeqItem(l, l.start+ind) {
			break
		}
		off = l.start + ind
	}
	if l := p.cur(); l != nil && l.indent > ind {
		p.bad = true
	}
	return n
}

// key reads a mapping key at off and returns it with the offset of its ":".
func (p *fastParser) key(l *fline, off int) (*yaml.Node, int, bool) {
	d := p.data
	if off >= l.end {
		return nil, 0, false
	}
	switch c := d[off]; {
	case c == '"' || c == '\'':
		end, val, style, ok := p.quoted(l, off)
		if !ok || end >= l.end || d[end] != ':' || (end+1 < l.end && d[end+1] != ' ') {
			return nil, 0, false
		}
		return p.node(yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: style, Value: val, Line: l.num, Column: p.col(l, off)}), end, true
	case !plainStart(d, off, l.end):
		return nil, 0, false
	}
	for i := off; i < l.end; i++ {
		if d[i] == '#' && d[i-1] == ' ' {
			return nil, 0, false
		}
		if d[i] == ':' && (i+1 == l.end || d[i+1] == ' ') {
			if i-off > 1000 {
				return nil, 0, false // yaml.v3 limits simple keys to 1024 characters
			}
			end := i
			for end > off && d[end-1] == ' ' {
				end--
			}
			return p.node(yaml.Node{Kind: yaml.ScalarNode, Value: p.str[off:end], Line: l.num, Column: p.col(l, off)}), i, true
		}
	}
	return nil, 0, false
}

// plainStart reports whether a plain scalar may start at off (block context).
func plainStart(d []byte, off, end int) bool {
	switch d[off] {
	case '-', '?', ':':
		return off+1 < end && d[off+1] != ' '
	case ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
		return false
	}
	return true
}

// inline parses the rest of a line as a scalar or a flow collection.
func (p *fastParser) inline(l *fline, off int) *yaml.Node {
	d := p.data
	var n *yaml.Node
	end := off
	switch c := d[off]; {
	case c == '"' || c == '\'':
		e, val, style, ok := p.quoted(l, off)
		if !ok {
			p.bad = true
			return nil
		}
		n, end = p.node(yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: style, Value: val, Line: l.num, Column: p.col(l, off)}), e
	case c == '[' || c == '{':
		n, end = p.flow(l, off)
		if n == nil {
			p.bad = true
			return nil
		}
	case !plainStart(d, off, l.end):
		p.bad = true
		return nil
	default:
		for end < l.end && !(d[end] == '#' && d[end-1] == ' ') {
			if d[end] == ':' && (end+1 == l.end || d[end+1] == ' ') {
				p.bad = true // "a: b: c"
				return nil
			}
			end++
		}
		for end > off && d[end-1] == ' ' {
			end--
		}
		n = p.node(yaml.Node{Kind: yaml.ScalarNode, Value: p.str[off:end], Line: l.num, Column: p.col(l, off)})
	}
	if rest := d[end:l.end]; len(rest) > 0 && (rest[0] != ' ' || !blankOrComment(rest)) {
		p.bad = true
		return nil
	}
	return n
}
