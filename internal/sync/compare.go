package sync

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// prepare returns the configuration imagebot applies for obj: a copy with the owner label and
// annotation, without the server-owned metadata a manifest exported from a cluster may carry,
// without spec.replicas when stripReplicas, and with the checksum annotation of the result.
func prepare(obj *unstructured.Unstructured, owner string, stripReplicas bool) *unstructured.Unstructured {
	u := obj.DeepCopy()
	for _, f := range []string{"uid", "resourceVersion", "generation", "managedFields", "creationTimestamp", "selfLink"} {
		unstructured.RemoveNestedField(u.Object, "metadata", f)
	}
	if owner != "" {
		labels := u.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[LabelOwner] = owner
		u.SetLabels(labels)
	}
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	if owner != "" {
		ann[AnnotationOwner] = owner
	}
	delete(ann, AnnotationChecksum)
	u.SetAnnotations(ann)
	if stripReplicas {
		unstructured.RemoveNestedField(u.Object, "spec", "replicas")
	}
	ann[AnnotationChecksum] = checksum(u)
	u.SetAnnotations(ann)
	return u
}

// checksum hashes an object's JSON (encoding/json sorts map keys: stable).
func checksum(u *unstructured.Unstructured) string {
	js, err := json.Marshal(u.Object)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(js)
	return hex.EncodeToString(sum[:16])
}

// diffCached tells why live differs from the prepared configuration, or "" when applying it
// would change nothing that can be seen without asking the server. The reasons are
// "not found", "checksum", "managed fields of <manager>" and a field path.
func diffCached(prepared, live *unstructured.Unstructured, takeOver map[string]bool, fieldManager string) string {
	if live == nil {
		return "not found"
	}
	if live.GetAnnotations()[AnnotationChecksum] != prepared.GetAnnotations()[AnnotationChecksum] {
		return "checksum"
	}
	if mgr := takeOverManager(live.GetManagedFields(), takeOver, fieldManager); mgr != "" {
		return "managed fields of " + mgr
	}
	want := comparable(prepared)
	return subsetDiff(want, live.Object, "", "")
}

// takeOverManager returns the first manager of entries whose fields imagebot takes over.
func takeOverManager(entries []metav1.ManagedFieldsEntry, takeOver map[string]bool, fieldManager string) string {
	for _, e := range entries {
		if e.Subresource != "" {
			continue
		}
		if takeOver[e.Manager] || (e.Manager == fieldManager && e.Operation == metav1.ManagedFieldsOperationUpdate) {
			return e.Manager
		}
	}
	return ""
}

// comparable returns the part of a configuration compared with the live object: no status,
// metadata reduced to what can be declared, Secret stringData folded into data.
func comparable(u *unstructured.Unstructured) map[string]any {
	out := make(map[string]any, len(u.Object))
	for k, v := range u.Object {
		switch k {
		case "status":
		case "metadata":
			md, _ := v.(map[string]any)
			m := map[string]any{}
			for _, f := range []string{"name", "namespace", "labels", "annotations", "finalizers", "ownerReferences"} {
				if x, ok := md[f]; ok {
					m[f] = x
				}
			}
			out[k] = m
		default:
			out[k] = v
		}
	}
	if u.GetKind() == "Secret" && u.GroupVersionKind().Group == "" {
		if sd, ok := out["stringData"].(map[string]any); ok {
			data, _ := out["data"].(map[string]any)
			merged := make(map[string]any, len(data)+len(sd))
			for k, v := range data {
				merged[k] = v
			}
			for k, v := range sd {
				if s, ok := v.(string); ok {
					merged[k] = base64.StdEncoding.EncodeToString([]byte(s))
				}
			}
			out["data"] = merged
			delete(out, "stringData")
		}
	}
	return out
}

// quantityParents are the keys whose map values are resource quantities (ResourceLists).
var quantityParents = map[string]bool{
	"limits": true, "requests": true, "capacity": true, "hard": true, "allocatable": true,
	"default": true, "defaultRequest": true, "max": true, "min": true, "maxLimitRequestRatio": true,
	"overhead": true,
}

// subsetDiff returns the path of the first value of want that live does not have, "" when
// live holds all of want. Maps are compared key by key (live may have more keys); lists must
// have the same length and match item by item; numbers compare by value; quantities under
// ResourceList keys compare as quantities. A null or empty value in want matches an absent one.
//
// key is the map key want sits under; quantities are recognised by the key of the map that
// holds them (its container).
func subsetDiff(want, live any, path, key string) string {
	return subset(want, live, path, key, "")
}

func subset(want, live any, path, key, container string) string {
	switch w := want.(type) {
	case map[string]any:
		l, _ := live.(map[string]any)
		if len(w) == 0 {
			if live == nil || l != nil {
				return ""
			}
			return pathOr(path)
		}
		if l == nil {
			return pathOr(path)
		}
		for k, wv := range w {
			lv, ok := l[k]
			p := joinPath(path, k)
			if !ok {
				if isEmpty(wv) {
					continue
				}
				return p
			}
			if d := subset(wv, lv, p, k, key); d != "" {
				return d
			}
		}
		return ""
	case []any:
		l, _ := live.([]any)
		if len(w) != len(l) {
			return pathOr(path)
		}
		for i := range w {
			if d := subset(w[i], l[i], fmt.Sprintf("%s[%d]", path, i), key, container); d != "" {
				return d
			}
		}
		return ""
	case nil:
		if isEmpty(live) {
			return ""
		}
		return pathOr(path)
	}
	if scalarEqual(want, live, container) {
		return ""
	}
	return pathOr(path)
}

func scalarEqual(want, live any, parentKey string) bool {
	if reflect.DeepEqual(want, live) {
		return true
	}
	if wf, ok := toFloat(want); ok {
		if lf, ok := toFloat(live); ok {
			return wf == lf
		}
	}
	if quantityParents[parentKey] {
		wq, err1 := parseQuantity(want)
		lq, err2 := parseQuantity(live)
		return err1 == nil && err2 == nil && wq.Cmp(lq) == 0
	}
	return false
}

func parseQuantity(v any) (resource.Quantity, error) {
	switch x := v.(type) {
	case string:
		return resource.ParseQuantity(x)
	case int64:
		return *resource.NewQuantity(x, resource.DecimalSI), nil
	case float64:
		return resource.ParseQuantity(strconv.FormatFloat(x, 'f', -1, 64))
	}
	return resource.Quantity{}, fmt.Errorf("not a quantity: %v", v)
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case float64:
		return x, !math.IsNaN(x)
	}
	return 0, false
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func pathOr(path string) string {
	if path == "" {
		return "."
	}
	return path
}

// sameAfterDryRun reports whether a dry-run apply result equals the live object, ignoring
// what every write changes (managedFields timestamps, resourceVersion, generation).
func sameAfterDryRun(dryRun, live *unstructured.Unstructured) bool {
	return reflect.DeepEqual(forDryRunCompare(dryRun), forDryRunCompare(live))
}

func forDryRunCompare(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	for _, f := range []string{"resourceVersion", "generation", "managedFields"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	return c.Object
}
