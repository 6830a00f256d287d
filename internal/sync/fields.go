package sync

import (
	"bytes"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

var replicasPath = fieldpath.MakePathOrDie("spec", "replicas")

// managedFieldsPatch returns a JSON patch of live's managedFields, or nil when none is
// needed. It merges the fields of every take-over manager's entry (and of imagebot's own
// Update entries) of the main resource into imagebot's Apply entry, so that the next apply
// owns them: what git declares is set, what it does not declare is removed. With
// releaseReplicas, spec.replicas leaves imagebot's entry, so that no longer declaring it (an
// HPA owns it) does not remove it. The patch replaces resourceVersion too, so that it fails
// with a conflict if the object changed since live was read.
func managedFieldsPatch(live *unstructured.Unstructured, fieldManager string, takeOver map[string]bool, releaseReplicas bool) ([]byte, error) {
	entries := live.GetManagedFields()
	own := -1
	for i, e := range entries {
		if e.Manager == fieldManager && e.Operation == metav1.ManagedFieldsOperationApply && e.Subresource == "" {
			own = i
			break
		}
	}
	absorb := func(e metav1.ManagedFieldsEntry) bool {
		if e.Subresource != "" {
			return false
		}
		if e.Manager == fieldManager {
			return e.Operation == metav1.ManagedFieldsOperationUpdate
		}
		return takeOver[e.Manager]
	}
	var (
		ownSet  *fieldpath.Set
		ownAPI  string
		out     []metav1.ManagedFieldsEntry
		changed bool
	)
	if own >= 0 {
		s, err := decodeFieldSet(entries[own])
		if err != nil {
			return nil, fmt.Errorf("managed fields of %s: %w", fieldManager, err)
		}
		ownSet, ownAPI = s, entries[own].APIVersion
	}
	for i, e := range entries {
		if i == own {
			continue
		}
		// Field sets are per API version: merge only those of imagebot's version.
		if absorb(e) && (ownSet == nil || e.APIVersion == ownAPI) {
			s, err := decodeFieldSet(e)
			if err != nil {
				return nil, fmt.Errorf("managed fields of %s: %w", e.Manager, err)
			}
			if ownSet == nil {
				ownSet, ownAPI = s, e.APIVersion
			} else {
				ownSet = ownSet.Union(s)
			}
			changed = true
			continue
		}
		out = append(out, e)
	}
	if ownSet == nil {
		return nil, nil // nothing of ours, nothing to take over
	}
	if releaseReplicas && ownSet.Has(replicasPath) {
		ownSet = ownSet.Difference(fieldpath.NewSet(replicasPath))
		changed = true
	}
	if !changed {
		return nil, nil
	}
	js, err := ownSet.ToJSON()
	if err != nil {
		return nil, err
	}
	entry := metav1.ManagedFieldsEntry{
		Manager: fieldManager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: ownAPI,
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: js},
	}
	if own >= 0 {
		entry.Time = entries[own].Time
	}
	out = append(out, entry)
	return json.Marshal([]map[string]any{
		{"op": "replace", "path": "/metadata/managedFields", "value": out},
		{"op": "replace", "path": "/metadata/resourceVersion", "value": live.GetResourceVersion()},
	})
}

func decodeFieldSet(e metav1.ManagedFieldsEntry) (*fieldpath.Set, error) {
	s := &fieldpath.Set{}
	if e.FieldsV1 == nil {
		return s, nil
	}
	if err := s.FromJSON(bytes.NewReader(e.FieldsV1.Raw)); err != nil {
		return nil, err
	}
	return s, nil
}
