package sync_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	ksync "imagebot.dev/imagebot/internal/sync"
)

func configMaps(ns string, names ...string) string {
	var docs []string
	for _, n := range names {
		docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: %s}\ndata: {k: v}\n", n, ns))
	}
	return strings.Join(docs, "---\n")
}

func cmRef(ns, name string) ksync.ObjectRef {
	return ksync.ObjectRef{Kind: "ConfigMap", Namespace: ns, Name: name}
}

// TestNoPruneOnEmptyOrFailedRender: an empty render and a failed render apply and prune
// nothing, and leave the inventory as it was.
func TestNoPruneOnEmptyOrFailedRender(t *testing.T) {
	c := cluster(t)
	ctx := ctxFor(t, time.Minute)
	ensureNamespace(t, "render-fail")
	m := newManager(t, c.Config)
	s := newSyncer(t, m, ksync.SyncerOptions{Name: "render-fail", Prune: true, AllowMassPrune: true})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"cms.yaml": configMaps("render-fail", "a", "b")})
	if _, err := s.SyncDir(ctx, "rev1", dir); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files map[string]string
		want  error
	}{
		{"empty directory", map[string]string{"cms.yaml": ""}, ksync.ErrEmptyRender},
		{"only comments", map[string]string{"cms.yaml": "# nothing here\n---\n"}, ksync.ErrEmptyRender},
		{"broken YAML", map[string]string{"cms.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n"}, ksync.ErrRender},
		{"object without a name", map[string]string{"cms.yaml": "apiVersion: v1\nkind: ConfigMap\n"}, ksync.ErrRender},
		{"unknown kind", map[string]string{"cms.yaml": "apiVersion: nope.example/v1\nkind: Nope\nmetadata: {name: x}\n"}, ksync.ErrRender},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFiles(t, dir, tt.files)
			res, err := s.SyncDir(ctx, "rev2", dir)
			if !errors.Is(err, tt.want) {
				t.Fatalf("want %v, got %v", tt.want, err)
			}
			if res.Status != ksync.Stalled || len(res.Changes.Entries) != 0 || res.LastAppliedRevision != "rev1" {
				t.Fatalf("status %s, changes %s, last applied %q", res.Status, res.Changes.Summary(), res.LastAppliedRevision)
			}
			for _, n := range []string{"a", "b"} {
				if get(t, cmGVR, "render-fail", n) == nil {
					t.Fatalf("configmap %s was deleted", n)
				}
			}
			inv, err := m.ReadInventory(ctx, inventoryNS, "render-fail")
			if err != nil || len(inv.Entries) != 2 || inv.LastAppliedRevision != "rev1" {
				t.Fatalf("inventory changed: %+v (%v)", inv, err)
			}
		})
	}
}

// TestPruneSafety: only objects still labelled as ours are deleted, opt-outs and protected
// kinds are kept, and a prune of most of the inventory needs the override.
func TestPruneSafety(t *testing.T) {
	c := cluster(t)
	m := newManager(t, c.Config)
	const ns = "prune-safety"
	nsDoc := "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns + "}\n---\n"
	tests := []struct {
		name      string
		before    string
		tamper    []string // kubectl args run between the syncs
		after     string
		opts      ksync.SyncerOptions
		want      map[ksync.ObjectRef]ksync.Action
		wantErr   error
		wantAlive []string // configmaps that must still exist
	}{{
		name:      "owner label removed: never deleted",
		before:    configMaps(ns, "keep", "unlabelled"),
		tamper:    []string{"-n", ns, "label", "configmap", "unlabelled", "imagebot.dev/owner-"},
		after:     configMaps(ns, "keep"),
		want:      map[ksync.ObjectRef]ksync.Action{cmRef(ns, "unlabelled"): ksync.Skipped},
		wantAlive: []string{"keep", "unlabelled"},
	}, {
		name:      "owner label of another syncer: never deleted",
		before:    configMaps(ns, "keep2", "moved"),
		tamper:    []string{"-n", ns, "label", "--overwrite", "configmap", "moved", "imagebot.dev/owner=other"},
		after:     configMaps(ns, "keep2"),
		want:      map[ksync.ObjectRef]ksync.Action{cmRef(ns, "moved"): ksync.Skipped},
		wantAlive: []string{"keep2", "moved"},
	}, {
		name:      "prune disabled annotation",
		before:    configMaps(ns, "keep3", "precious"),
		tamper:    []string{"-n", ns, "annotate", "configmap", "precious", "imagebot.dev/prune=disabled"},
		after:     configMaps(ns, "keep3"),
		want:      map[ksync.ObjectRef]ksync.Action{cmRef(ns, "precious"): ksync.Skipped},
		wantAlive: []string{"keep3", "precious"},
	}, {
		name:      "Flux v1 sync_only: applied, never pruned",
		before:    configMaps(ns, "keep4") + "---\n" + strings.Replace(configMaps(ns, "synconly"), "metadata: {", "metadata: {annotations: {fluxcd.io/ignore: sync_only}, ", 1),
		after:     configMaps(ns, "keep4"),
		want:      map[ksync.ObjectRef]ksync.Action{cmRef(ns, "synconly"): ksync.Skipped},
		wantAlive: []string{"keep4", "synconly"},
	}, {
		name:   "more than half of the inventory",
		before: configMaps(ns, "m1", "m2", "m3", "m4"),
		after:  configMaps(ns, "m1"),
		want: map[ksync.ObjectRef]ksync.Action{cmRef(ns, "m2"): ksync.Failed, cmRef(ns, "m3"): ksync.Failed,
			cmRef(ns, "m4"): ksync.Failed},
		wantErr:   ksync.ErrPruneLimit,
		wantAlive: []string{"m1", "m2", "m3", "m4"},
	}, {
		name:   "more than half of the inventory, with the override",
		before: configMaps(ns, "o1", "o2", "o3", "o4"),
		after:  configMaps(ns, "o1"),
		opts:   ksync.SyncerOptions{AllowMassPrune: true},
		want: map[ksync.ObjectRef]ksync.Action{cmRef(ns, "o2"): ksync.Deleted, cmRef(ns, "o3"): ksync.Deleted,
			cmRef(ns, "o4"): ksync.Deleted},
		wantAlive: []string{"o1"},
	}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxFor(t, time.Minute)
			opts := tt.opts
			opts.Name, opts.Prune = fmt.Sprintf("prune-%d", i), true
			s := newSyncer(t, m, opts)
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"a.yaml": nsDoc + tt.before})
			if _, err := s.SyncDir(ctx, "rev1", dir); err != nil {
				t.Fatal(err)
			}
			if len(tt.tamper) > 0 {
				kubectl(t, tt.tamper...)
			}
			writeFiles(t, dir, map[string]string{"a.yaml": nsDoc + tt.after})
			res, err := s.SyncDir(ctx, "rev2", dir)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("want error %v, got %v", tt.wantErr, err)
			}
			for ref, want := range tt.want {
				if ch, _ := res.Changes.Find(ref); ch.Action != want {
					t.Errorf("%s: %v, want %s", ref, ch, want)
				}
			}
			for _, n := range tt.wantAlive {
				if get(t, cmGVR, ns, n) == nil {
					t.Errorf("configmap %s was deleted", n)
				}
			}
			inv, err := m.ReadInventory(ctx, inventoryNS, opts.Name)
			if err != nil {
				t.Fatal(err)
			}
			wantInv := strings.Count(tt.after, "kind: ConfigMap") + 1 // + the namespace
			if tt.wantErr != nil {
				wantInv = strings.Count(tt.before, "kind: ConfigMap") + 1 // kept for a later prune
			}
			if len(inv.Entries) != wantInv {
				t.Errorf("inventory has %d entries, want %d: %v", len(inv.Entries), wantInv, inv.Refs())
			}
		})
	}
}

// TestProtectedKindsAndIgnore: a Namespace removed from git is not pruned; an object ignored
// in git is never applied; one ignored on the cluster is not changed.
func TestProtectedKindsAndIgnore(t *testing.T) {
	c := cluster(t)
	ctx := ctxFor(t, time.Minute)
	m := newManager(t, c.Config)
	s := newSyncer(t, m, ksync.SyncerOptions{Name: "protected", Prune: true, AllowMassPrune: true})
	dir := t.TempDir()
	const ns = "protected-ns"
	ignored := strings.Replace(configMaps(ns, "ignored"), "metadata: {", "metadata: {annotations: {flux.weave.works/ignore: \"true\"}, ", 1)
	writeFiles(t, dir, map[string]string{
		"ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns + "}\n",
		"cm.yaml": configMaps(ns, "tended") + "---\n" + ignored,
	})
	res, err := s.SyncDir(ctx, "rev1", dir)
	if err != nil {
		t.Fatal(err)
	}
	if ch, _ := res.Changes.Find(cmRef(ns, "ignored")); ch.Action != ksync.Skipped || get(t, cmGVR, ns, "ignored") != nil {
		t.Fatalf("an object ignored in git was applied: %v", ch)
	}
	// Ignored on the cluster: git changes are not applied to it.
	kubectl(t, "-n", ns, "annotate", "configmap", "tended", "fluxcd.io/ignore=true")
	writeFiles(t, dir, map[string]string{"cm.yaml": strings.Replace(configMaps(ns, "tended"), "{k: v}", "{k: changed}", 1)})
	if res, err = s.SyncDir(ctx, "rev2", dir); err != nil {
		t.Fatal(err)
	}
	if ch, _ := res.Changes.Find(cmRef(ns, "tended")); ch.Action != ksync.Skipped {
		t.Fatalf("an object ignored on the cluster: %v, want skipped", ch)
	}
	if got := nestedString(get(t, cmGVR, ns, "tended"), "data", "k"); got != "v" {
		t.Fatalf("an object ignored on the cluster was changed: data.k=%s", got)
	}
	// The namespace leaves git: protected, not pruned, forgotten.
	writeFiles(t, dir, map[string]string{"ns.yaml": ""})
	res, err = s.SyncDir(ctx, "rev3", dir)
	if err != nil {
		t.Fatal(err)
	}
	if ch, _ := res.Changes.Find(ksync.ObjectRef{Kind: "Namespace", Name: ns}); ch.Action != ksync.Skipped {
		t.Fatalf("namespace: %v, want skipped", ch)
	}
	if get(t, nsGVR, "", ns) == nil {
		t.Fatal("the namespace was pruned")
	}
}

// TestMassPruneOnce: the prune limit is lifted for the next sync only, then holds again; an
// override not spent yet can be withdrawn.
func TestMassPruneOnce(t *testing.T) {
	c := cluster(t)
	m := newManager(t, c.Config)
	const ns = "prune-once"
	nsDoc := "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns + "}\n---\n"
	ctx := ctxFor(t, time.Minute)
	s := newSyncer(t, m, ksync.SyncerOptions{Name: "prune-once", Prune: true})
	dir := t.TempDir()
	sync := func(rev, body string) error {
		t.Helper()
		writeFiles(t, dir, map[string]string{"a.yaml": nsDoc + body})
		_, err := s.SyncDir(ctx, rev, dir)
		return err
	}
	if err := sync("rev1", configMaps(ns, "a", "b", "c", "d")); err != nil {
		t.Fatal(err)
	}
	s.AllowMassPruneOnce()
	s.DisallowMassPrune() // withdrawn
	if err := sync("rev2", configMaps(ns, "a")); !errors.Is(err, ksync.ErrPruneLimit) {
		t.Fatalf("after the override was withdrawn: %v, want ErrPruneLimit", err)
	}
	s.AllowMassPruneOnce()
	if err := sync("rev2", configMaps(ns, "a")); err != nil {
		t.Fatalf("with the override: %v", err)
	}
	for _, n := range []string{"b", "c", "d"} {
		if get(t, cmGVR, ns, n) != nil {
			t.Errorf("configmap %s survived the overridden prune", n)
		}
	}
	if err := sync("rev3", configMaps(ns, "a", "e", "f", "g")); err != nil {
		t.Fatal(err)
	}
	if err := sync("rev4", configMaps(ns, "a")); !errors.Is(err, ksync.ErrPruneLimit) {
		t.Fatalf("after the override was spent: %v, want ErrPruneLimit", err)
	}
}
