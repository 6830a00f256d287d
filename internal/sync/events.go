package sync

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// EventRecorder records Kubernetes Events; client-go's record.EventRecorder satisfies it.
type EventRecorder interface {
	Eventf(object runtime.Object, eventtype, reason, messageFmt string, args ...any)
}

// Event reasons.
const (
	ReasonCreated        = "Created"
	ReasonConfigured     = "Configured"
	ReasonRecreated      = "Recreated"
	ReasonPruned         = "Pruned"
	ReasonFailed         = "SyncFailed"
	ReasonDriftCorrected = "DriftCorrected"
	ReasonSynced         = "Synced"
)

// events records one event per changed or failed object (at most MaxObjectEvents) and a
// summary on the inventory ConfigMap. A sync that changed nothing and stayed as it was
// records nothing (no write when nothing changed). s.mu is held.
func (s *Syncer) events(res *Result, kind string) {
	rec := s.opts.Recorder
	if rec == nil {
		return
	}
	var interesting []Change
	for _, c := range res.Changes.Entries {
		switch c.Action {
		case Created, Configured, Recreated, Deleted, Failed:
			interesting = append(interesting, c)
		}
	}
	prev := s.last
	if len(interesting) == 0 && res.Err == nil && prev != nil && prev.Status == res.Status && prev.Revision == res.Revision {
		return
	}
	versions := map[ObjectRef]string{}
	for _, o := range s.desired {
		versions[RefOf(o)] = o.GetAPIVersion()
	}
	for i, c := range interesting {
		if i == s.opts.MaxObjectEvents {
			break
		}
		if c.Ref.Kind == "" {
			continue
		}
		apiVersion := versions[c.Ref]
		if apiVersion == "" {
			apiVersion = schema.GroupVersion{Group: c.Ref.Group, Version: c.Version}.String()
		}
		obj := objectForEvent(apiVersion, c)
		etype, reason, msg := corev1.EventTypeNormal, "", ""
		switch c.Action {
		case Created:
			reason, msg = ReasonCreated, "created"
		case Configured:
			reason, msg = ReasonConfigured, "configured"
			if c.Reason != "" {
				msg += " (" + c.Reason + ")"
			}
		case Recreated:
			reason, msg = ReasonRecreated, "deleted and recreated: an immutable field changed"
		case Deleted:
			reason, msg = ReasonPruned, "pruned: no longer in git"
		case Failed:
			etype, reason, msg = corev1.EventTypeWarning, ReasonFailed, c.Err.Error()
		}
		if kind == "drift" && c.Action != Failed {
			reason, msg = ReasonDriftCorrected, "drift corrected ("+c.Reason+"): set back to git"
		}
		rec.Eventf(obj, etype, reason, "%s by imagebot %s at revision %s", msg, s.opts.Name, shortRev(res.Revision))
	}
	if kind == "drift" {
		return
	}
	inv := objectForEvent("v1", Change{Ref: ObjectRef{Kind: "ConfigMap", Namespace: s.opts.InventoryNamespace, Name: InventoryName(s.opts.Name)}})
	etype := corev1.EventTypeNormal
	if res.Status == Stalled {
		etype = corev1.EventTypeWarning
	}
	rec.Eventf(inv, etype, ReasonSynced, "revision %s: %s: %s", shortRev(res.Revision), res.Status, firstLines(fmt.Sprint(res.Message), 3))
}

func objectForEvent(apiVersion string, c Change) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(c.Ref.Kind)
	u.SetNamespace(c.Ref.Namespace)
	u.SetName(c.Ref.Name)
	u.SetUID(c.UID)
	return u
}

func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
