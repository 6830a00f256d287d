package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ErrInventoryTooLarge is returned when an inventory would not fit in its ConfigMap.
var ErrInventoryTooLarge = errors.New("inventory too large for a ConfigMap")

// maxInventoryBytes keeps the ConfigMap under the API's 1 MiB object limit (bytes).
const maxInventoryBytes = 900 << 10

// InventoryEntry is one object imagebot applied, with the API version to reach it at.
type InventoryEntry struct {
	ObjectRef
	Version string `json:"version"`
}

// Inventory is what one Syncer applied, kept in the ConfigMap imagebot-inv-<Name> of
// Namespace: the objects, and the last applied and attempted revisions.
type Inventory struct {
	Namespace, Name string
	Entries         []InventoryEntry
	// LastAppliedRevision is the last revision whose every object applied; LastAttempted the
	// last one Sync was given.
	LastAppliedRevision, LastAttemptedRevision string

	loaded []byte // the stored entries, to skip writes that change nothing
	stored [2]string
}

// Inventory ConfigMap keys.
const (
	invKeyEntries   = "entries"
	invKeyApplied   = "lastAppliedRevision"
	invKeyAttempted = "lastAttemptedRevision"
)

// InventoryName returns the ConfigMap name of the inventory of Syncer name.
func InventoryName(name string) string { return "imagebot-inv-" + name }

// ValidName reports whether name can name a Syncer: a DNS-1123 label (it is a label value and
// part of the inventory's name).
func ValidName(name string) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("invalid name %q: %v", name, errs)
	}
	if len(InventoryName(name)) > validation.DNS1123SubdomainMaxLength {
		return fmt.Errorf("invalid name %q: too long", name)
	}
	return nil
}

// Refs returns the entries' identities.
func (inv *Inventory) Refs() []ObjectRef {
	out := make([]ObjectRef, len(inv.Entries))
	for i, e := range inv.Entries {
		out[i] = e.ObjectRef
	}
	return out
}

func (inv *Inventory) ref() ObjectRef {
	return ObjectRef{Kind: "ConfigMap", Namespace: inv.Namespace, Name: InventoryName(inv.Name)}
}

// entriesOf returns the inventory entries of objs.
func entriesOf(objs []*unstructured.Unstructured) []InventoryEntry {
	out := make([]InventoryEntry, 0, len(objs))
	for _, o := range objs {
		out = append(out, InventoryEntry{ObjectRef: RefOf(o), Version: o.GroupVersionKind().Version})
	}
	return out
}

// union returns a ∪ b by identity, sorted, b's version winning.
func union(a, b []InventoryEntry) []InventoryEntry {
	idx := map[ObjectRef]int{}
	var out []InventoryEntry
	for _, list := range [][]InventoryEntry{a, b} {
		for _, e := range list {
			if i, ok := idx[e.ObjectRef]; ok {
				out[i] = e
				continue
			}
			idx[e.ObjectRef] = len(out)
			out = append(out, e)
		}
	}
	sortEntries(out)
	return out
}

// minus returns a − b by identity.
func minus(a, b []InventoryEntry) []InventoryEntry {
	in := map[ObjectRef]bool{}
	for _, e := range b {
		in[e.ObjectRef] = true
	}
	var out []InventoryEntry
	for _, e := range a {
		if !in[e.ObjectRef] {
			out = append(out, e)
		}
	}
	return out
}

func sortEntries(es []InventoryEntry) {
	slices.SortFunc(es, func(a, b InventoryEntry) int {
		return compareKeys(sortKey{stageOf(a.GroupKind(), false), kindRank(a.Kind), a.ObjectRef},
			sortKey{stageOf(b.GroupKind(), false), kindRank(b.Kind), b.ObjectRef})
	})
}

var configMapGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// ReadInventory reads the inventory of Syncer name from namespace; a missing one is empty.
func (m *Manager) ReadInventory(ctx context.Context, namespace, name string) (*Inventory, error) {
	inv := &Inventory{Namespace: namespace, Name: name}
	u, err := m.dynamic.Resource(configMapGVR).Namespace(namespace).Get(ctx, InventoryName(name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return inv, nil
	}
	if err != nil {
		return nil, objErr(inv.ref(), "read inventory", err)
	}
	var cm corev1.ConfigMap
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &cm); err != nil {
		return nil, objErr(inv.ref(), "read inventory", err)
	}
	if s := cm.Data[invKeyEntries]; s != "" {
		if err := json.Unmarshal([]byte(s), &inv.Entries); err != nil {
			return nil, objErr(inv.ref(), "read inventory", fmt.Errorf("key %s: %w", invKeyEntries, err))
		}
	}
	inv.LastAppliedRevision, inv.LastAttemptedRevision = cm.Data[invKeyApplied], cm.Data[invKeyAttempted]
	inv.loaded = []byte(cm.Data[invKeyEntries])
	inv.stored = [2]string{inv.LastAppliedRevision, inv.LastAttemptedRevision}
	return inv, nil
}

// WriteInventory stores inv (server-side apply of its ConfigMap), unless nothing changed
// since it was read or last written. The namespace must exist.
func (m *Manager) WriteInventory(ctx context.Context, inv *Inventory) error {
	sortEntries(inv.Entries)
	if inv.Entries == nil {
		inv.Entries = []InventoryEntry{}
	}
	js, err := json.Marshal(inv.Entries)
	if err != nil {
		return objErr(inv.ref(), "write inventory", err)
	}
	if len(js) > maxInventoryBytes {
		return objErr(inv.ref(), "write inventory", fmt.Errorf("%w: %d entries, %d bytes", ErrInventoryTooLarge, len(inv.Entries), len(js)))
	}
	if string(js) == string(inv.loaded) && inv.stored == [2]string{inv.LastAppliedRevision, inv.LastAttemptedRevision} {
		return nil
	}
	cm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{
			"name": InventoryName(inv.Name), "namespace": inv.Namespace,
			"labels": map[string]any{"app.kubernetes.io/managed-by": "imagebot", "imagebot.dev/inventory": inv.Name},
		},
		"data": map[string]any{
			invKeyEntries: string(js), invKeyApplied: inv.LastAppliedRevision, invKeyAttempted: inv.LastAttemptedRevision,
		},
	}}
	_, err = m.dynamic.Resource(configMapGVR).Namespace(inv.Namespace).Apply(ctx, cm.GetName(), cm,
		metav1.ApplyOptions{FieldManager: m.opts.FieldManager, Force: true})
	if err != nil {
		return objErr(inv.ref(), "write inventory", err)
	}
	inv.loaded = js
	inv.stored = [2]string{inv.LastAppliedRevision, inv.LastAttemptedRevision}
	return nil
}
