package update

import (
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// quoted reads a quoted scalar that closes on this line; end is the offset after the quote.
func (p *fastParser) quoted(l *fline, off int) (end int, val string, style yaml.Style, ok bool) {
	b := p.data[off:l.end]
	if b[0] == '"' {
		e, v, ok := scanDoubleQuoted(b)
		return off + e, v, yaml.DoubleQuotedStyle, ok
	}
	e, v, ok := scanSingleQuoted(b)
	return off + e, v, yaml.SingleQuotedStyle, ok
}

// flow parses a flow collection that closes on this line.
func (p *fastParser) flow(l *fline, off int) (*yaml.Node, int) {
	d := p.data
	isMap := d[off] == '{'
	n := p.node(yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle, Line: l.num, Column: p.col(l, off)})
	closer := byte(']')
	if isMap {
		n.Kind, n.Tag, closer = yaml.MappingNode, "!!map", '}'
	}
	i := off + 1
	skip := func() {
		for i < l.end && d[i] == ' ' {
			i++
		}
	}
	skip()
	if i < l.end && d[i] == closer {
		return n, i + 1
	}
	for {
		skip()
		k, e := p.flowItem(l, i)
		if k == nil {
			return nil, 0
		}
		i = e
		skip()
		if isMap {
			if i+1 >= l.end || d[i] != ':' || d[i+1] != ' ' {
				return nil, 0
			}
			i++
			skip()
			v, e := p.flowItem(l, i)
			if v == nil {
				return nil, 0
			}
			n.Content = append(n.Content, k, v)
			i = e
			skip()
		} else {
			if i < l.end && d[i] == ':' {
				return nil, 0 // a single-pair mapping in a sequence
			}
			n.Content = append(n.Content, k)
		}
		if i >= l.end {
			return nil, 0
		}
		switch d[i] {
		case closer:
			return n, i + 1
		case ',':
			i++
			skip()
			if i < l.end && (d[i] == closer || d[i] == ',') {
				return nil, 0 // empty entry
			}
		default:
			return nil, 0
		}
	}
}

// flowItem reads one scalar or nested collection in a flow collection.
func (p *fastParser) flowItem(l *fline, off int) (*yaml.Node, int) {
	d := p.data
	if off >= l.end {
		return nil, 0
	}
	switch c := d[off]; c {
	case '[', '{':
		return p.flow(l, off)
	case '"', '\'':
		e, v, style, ok := p.quoted(l, off)
		if !ok {
			return nil, 0
		}
		return p.node(yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: style, Value: v, Line: l.num, Column: p.col(l, off)}), e
	}
	if !plainStart(d, off, l.end) || d[off] == '-' || d[off] == '?' || d[off] == ':' {
		return nil, 0
	}
	end := off
	for end < l.end {
		c := d[end]
		if c == ',' || c == '[' || c == ']' || c == '{' || c == '}' || c == '#' && d[end-1] == ' ' {
			break
		}
		if c == ':' && (end+1 == l.end || d[end+1] == ' ' || d[end+1] == ',' || d[end+1] == ']' || d[end+1] == '}') {
			break
		}
		end++
	}
	e := end
	for end > off && d[end-1] == ' ' {
		end--
	}
	if end == off {
		return nil, 0
	}
	return p.node(yaml.Node{Kind: yaml.ScalarNode, Value: p.str[off:end], Line: l.num, Column: p.col(l, off)}), e
}

// tagOf returns a scalar's resolved tag. yaml.v3 sets it when parsing; fastParse leaves it
// empty for plain scalars and it is resolved here, on first use, as yaml.v3 would.
func tagOf(n *yaml.Node) string {
	if n.Tag == "" && n.Kind == yaml.ScalarNode {
		n.Tag = resolvePlain(n.Value)
	}
	return n.Tag
}

func resolvePlain(v string) string {
	switch v {
	case "", "~", "null", "Null", "NULL":
		return "!!null"
	case "true", "True", "TRUE", "false", "False", "FALSE":
		return "!!bool"
	case "<<":
		return "!!merge"
	}
	if c := v[0]; !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.') {
		return "!!str"
	}
	// Numbers, timestamps, .inf: ask yaml.v3.
	var n yaml.Node
	if yaml.Unmarshal([]byte("k: "+v), &n) == nil && len(n.Content) == 1 && len(n.Content[0].Content) == 2 {
		return n.Content[0].Content[1].Tag
	}
	return "!!str"
}
