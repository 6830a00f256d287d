package update

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// MaxAliasExpansion bounds the number of nodes a document may expand to through its
// aliases; beyond it the document is treated as an alias bomb ("billion laughs").
const MaxAliasExpansion = 100_000

// parsedFile is a YAML file parsed into documents, with the positions index used to
// splice bytes.
type parsedFile struct {
	data  []byte
	li    *lineIndex   // built on first use (only the editor needs it)
	docs  []*yaml.Node // document roots (the DocumentNode's content), nil for empty documents
	arena *nodeArena   // holds the nodes of a fast parse
}

// release gives the nodes of a fast parse back for reuse; the trees must not be used
// afterwards. It is a no-op for a yaml.v3 parse.
func (pf *parsedFile) release() {
	if pf != nil && pf.arena != nil {
		pf.arena.release()
		pf.arena, pf.docs = nil, nil
	}
}

// index returns the positions index of the file.
func (pf *parsedFile) index() *lineIndex {
	if pf.li == nil {
		pf.li = newLineIndex(pf.data)
	}
	return pf.li
}

var lineRE = regexp.MustCompile(`line (\d+)`)

// parseFile decodes every document of data. It fails (with a Problem naming the line) on
// binary or non-UTF-8 content, syntax errors, duplicate keys and alias bombs: such a file
// is reported and never edited.
//
// With fast set, a file without marker comments is first tried with fastParse (which drops
// comments); the editor always parses exactly (fast false).
func parseFile(file string, data []byte, fast bool) (*parsedFile, *Problem) {
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, &Problem{File: file, Err: ErrBinary}
	}
	if !utf8.Valid(data) {
		line := 1 + bytes.Count(data[:firstInvalidUTF8(data)], []byte{'\n'})
		return nil, &Problem{File: file, Line: line, Err: ErrNotUTF8}
	}
	pf := &parsedFile{data: data}
	if fast && !bytes.Contains(data, []byte(`"$image`)) {
		if docs, arena, ok := fastParse(data); ok {
			for _, root := range docs {
				if p := checkTree(file, root); p != nil {
					arena.release()
					return nil, p
				}
			}
			pf.docs, pf.arena = docs, arena
			return pf, nil
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &Problem{File: file, Line: errorLine(data, err), Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
		}
		var root *yaml.Node
		if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
			root = doc.Content[0]
		}
		if root != nil {
			if p := checkTree(file, root); p != nil {
				return nil, p
			}
		}
		pf.docs = append(pf.docs, root)
	}
	return pf, nil
}

// unknownAnchorRE matches yaml.v3's error for an alias to an undefined anchor.
var unknownAnchorRE = regexp.MustCompile(`unknown anchor '([^']*)' referenced`)

// errorLine finds the line of a yaml.v3 error: from its "line N", or, for the two errors
// that name none, the line of the first character YAML does not allow, or of the first
// alias to the unknown anchor. It returns 0 when it cannot tell.
func errorLine(data []byte, err error) int {
	msg := err.Error()
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	off := -1
	if strings.Contains(msg, "control characters are not allowed") {
		for i, r := range string(data) {
			if !(r == '\t' || r == '\n' || r == '\r' || printable(r)) {
				off = i
				break
			}
		}
	} else if m := unknownAnchorRE.FindStringSubmatch(msg); m != nil {
		off = bytes.Index(data, []byte("*"+m[1]))
	}
	if off < 0 {
		return 0
	}
	li := newLineIndex(data)
	return sort.Search(len(li.start), func(i int) bool { return li.start[i] > off })
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, w := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && w <= 1 {
			return i
		}
		i += w
	}
	return len(b)
}

// checkTree reports duplicate mapping keys and alias bombs in one document.
func checkTree(file string, root *yaml.Node) *Problem {
	c := treeChecker{file: file}
	c.walk(root, "")
	if c.problem != nil {
		return c.problem
	}
	if c.aliases > 0 {
		c.sizes = map[*yaml.Node]int{}
	}
	if c.aliases > 0 && c.size(root, 0) > MaxAliasExpansion {
		return &Problem{File: file, Line: c.firstAlias, Err: fmt.Errorf("%w: the document expands to more than %d nodes", ErrAliasLimit, MaxAliasExpansion)}
	}
	return nil
}

type treeChecker struct {
	file       string
	problem    *Problem
	aliases    int
	firstAlias int
	sizes      map[*yaml.Node]int
	stack      []pathElem // the path to the current node, formatted only for a problem
}

// pathElem is a mapping key, or a sequence index when key is nil.
type pathElem struct {
	key *yaml.Node
	idx int
}

func (c *treeChecker) walk(n *yaml.Node, _ string) {
	if c.problem != nil {
		return
	}
	switch n.Kind {
	case yaml.AliasNode:
		c.aliases++
		if c.firstAlias == 0 {
			c.firstAlias = n.Line
		}
	case yaml.MappingNode:
		c.checkKeys(n)
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.walk(n.Content[i], "")
			c.stack = append(c.stack, pathElem{key: n.Content[i]})
			c.walk(n.Content[i+1], "")
			c.stack = c.stack[:len(c.stack)-1]
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			c.stack = append(c.stack, pathElem{idx: i})
			c.walk(e, "")
			c.stack = c.stack[:len(c.stack)-1]
		}
	}
}

func (c *treeChecker) path() string {
	p := ""
	for _, e := range c.stack {
		if e.key != nil {
			p = joinPath(p, e.key.Value)
		} else {
			p = indexPath(p, e.idx)
		}
	}
	return p
}

func (c *treeChecker) checkKeys(n *yaml.Node) {
	pairs := len(n.Content) / 2
	dup := func(k *yaml.Node) {
		c.problem = &Problem{File: c.file, Line: k.Line, Column: k.Column, Field: joinPath(c.path(), k.Value),
			Err: fmt.Errorf("%w %q", ErrDuplicateKey, k.Value)}
	}
	if pairs <= 16 {
		for i := 0; i < pairs; i++ {
			ki := n.Content[2*i]
			if ki.Kind != yaml.ScalarNode {
				continue
			}
			for j := 0; j < i; j++ {
				kj := n.Content[2*j]
				if kj.Kind == yaml.ScalarNode && kj.Value == ki.Value && tagOf(kj) == tagOf(ki) {
					dup(ki)
					return
				}
			}
		}
		return
	}
	seen := make(map[string]bool, pairs)
	for i := 0; i < pairs; i++ {
		k := n.Content[2*i]
		if k.Kind != yaml.ScalarNode {
			continue
		}
		key := tagOf(k) + "\x00" + k.Value
		if seen[key] {
			dup(k)
			return
		}
		seen[key] = true
	}
}

// size counts the nodes n expands to, following aliases (memoised, so it is linear in the
// document, and stops counting past the limit).
func (c *treeChecker) size(n *yaml.Node, depth int) int {
	if n == nil || depth > 1000 {
		return 1
	}
	if s, ok := c.sizes[n]; ok {
		return s
	}
	s := 1
	if n.Kind == yaml.AliasNode {
		s = c.size(n.Alias, depth+1)
	} else {
		for _, ch := range n.Content {
			s += c.size(ch, depth+1)
			if s > MaxAliasExpansion {
				break
			}
		}
	}
	if c.aliases > 0 && (n.Anchor != "" || n.Kind == yaml.AliasNode || len(n.Content) > 0) {
		c.sizes[n] = s
	}
	return s
}

// joinPath appends a mapping key to a YAML path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// indexPath appends a sequence index to a YAML path.
func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// deref follows an alias (a bounded number of times).
func deref(n *yaml.Node) (*yaml.Node, bool) {
	aliased := false
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
		aliased = true
	}
	return n, aliased
}

// mapGet returns the key and value nodes of key in mapping m (value dereferenced).
func mapGet(m *yaml.Node, key string) (k, v *yaml.Node, aliased bool) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil, false
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			v, aliased = deref(m.Content[i+1])
			return m.Content[i], v, aliased
		}
	}
	return nil, nil, false
}

// mapScalar returns the string value of a scalar under key ("" when absent or not a scalar).
func mapScalar(m *yaml.Node, key string) string {
	_, v, _ := mapGet(m, key)
	if v == nil || v.Kind != yaml.ScalarNode {
		return ""
	}
	return v.Value
}

// mapMapping returns the mapping under key, or nil.
func mapMapping(m *yaml.Node, key string) (*yaml.Node, bool) {
	_, v, aliased := mapGet(m, key)
	if v == nil || v.Kind != yaml.MappingNode {
		return nil, false
	}
	return v, aliased
}

// isStr reports whether n is a scalar that YAML reads as a string.
func isStr(n *yaml.Node) bool {
	return n != nil && n.Kind == yaml.ScalarNode && tagOf(n) == "!!str"
}
