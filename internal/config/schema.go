package config

import (
	"encoding/json"
	"reflect"
	"strings"
)

// Schema returns the JSON Schema (draft 2020-12) of a repository config file, generated from
// the Go types so that the two cannot drift apart.
func Schema() ([]byte, error) {
	s := schemaOf(reflect.TypeOf(Repository{}), "")
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://imagebot.dev/schema/repository.schema.json"
	s["title"] = "imagebot repository config"
	s["required"] = []string{"apiVersion", "kind", "metadata", "spec"}
	props := s["properties"].(map[string]any)
	props["apiVersion"] = map[string]any{"const": APIVersion, "description": fieldDoc["apiVersion"]}
	props["kind"] = map[string]any{"const": Kind, "description": fieldDoc["kind"]}
	meta := props["metadata"].(map[string]any)
	meta["required"] = []string{"name"}
	meta["properties"].(map[string]any)["name"].(map[string]any)["pattern"] = `^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	spec := props["spec"].(map[string]any)
	spec["required"] = []string{"git"}
	spec["properties"].(map[string]any)["git"].(map[string]any)["required"] = []string{"url"}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

var durationType = reflect.TypeOf(Duration{})

// schemaOf is the schema of type t at path (see fieldDoc), with its description and default.
func schemaOf(t reflect.Type, path string) map[string]any {
	s := typeSchema(t, path)
	if d, ok := fieldDoc[path]; ok {
		if prev, ok := s["description"].(string); ok {
			d += " (" + prev + ")"
		}
		s["description"] = d
	}
	if v, ok := fieldDefault[path]; ok {
		s["default"] = v
	}
	return s
}

func typeSchema(t reflect.Type, path string) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch {
	case t == durationType:
		return map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`,
			"description": "a Go duration: 90s, 5m, 1h30m"}
	case t.Kind() == reflect.Struct:
		props := map[string]any{}
		for i := range t.NumField() {
			tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			props[tag] = schemaOf(t.Field(i).Type, join(tag))
		}
		return map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	case t.Kind() == reflect.Slice:
		return map[string]any{"type": "array", "items": typeSchema(t.Elem(), path+"[]")}
	case t.Kind() == reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": typeSchema(t.Elem(), path+".*")}
	case t.Kind() == reflect.String:
		return map[string]any{"type": "string"}
	case t.Kind() == reflect.Bool:
		return map[string]any{"type": "boolean"}
	case t.Kind() == reflect.Int:
		return map[string]any{"type": "integer", "minimum": 0}
	case t.Kind() == reflect.Float64:
		return map[string]any{"type": "number", "minimum": 0}
	}
	return map[string]any{}
}
