package sync

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ObjectRef identifies an object in a cluster, whatever the version it is served at.
type ObjectRef struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// RefOf returns the identity of u.
func RefOf(u *unstructured.Unstructured) ObjectRef {
	gvk := u.GroupVersionKind()
	return ObjectRef{Group: gvk.Group, Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
}

// GroupKind returns the group and kind of r.
func (r ObjectRef) GroupKind() schema.GroupKind {
	return schema.GroupKind{Group: r.Group, Kind: r.Kind}
}

// String formats r as Kind/namespace/name (Kind/name when cluster-scoped), the prefix of
// every error about an object.
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// objectError is an error about one object: "Kind/ns/name: op: err".
type objectError struct {
	Ref ObjectRef
	Op  string
	Err error
}

func (e *objectError) Error() string {
	if e.Op == "" {
		return e.Ref.String() + ": " + e.Err.Error()
	}
	return e.Ref.String() + ": " + e.Op + ": " + e.Err.Error()
}

func (e *objectError) Unwrap() error { return e.Err }

func objErr(ref ObjectRef, op string, err error) error {
	if err == nil {
		return nil
	}
	return &objectError{Ref: ref, Op: op, Err: err}
}

func objErrf(ref ObjectRef, format string, args ...any) error {
	return &objectError{Ref: ref, Err: fmt.Errorf(format, args...)}
}

// Apply stages. Objects of a stage are applied after every object of the stages before it;
// prune goes in reverse.
const (
	stageDefinitions = iota // CRDs, Namespaces, cluster-scoped *Class kinds
	stageObjects            // everything else
	stageAdmission          // admission webhooks and policies, APIServices: last
)

func isCRD(gk schema.GroupKind) bool {
	return gk.Group == "apiextensions.k8s.io" && gk.Kind == "CustomResourceDefinition"
}

func isNamespace(gk schema.GroupKind) bool { return gk.Group == "" && gk.Kind == "Namespace" }

// stageOf returns the stage of an object; clusterScoped tells whether its kind is known to
// be cluster-scoped.
func stageOf(gk schema.GroupKind, clusterScoped bool) int {
	switch {
	case isCRD(gk), isNamespace(gk):
		return stageDefinitions
	case clusterScoped && strings.HasSuffix(gk.Kind, "Class"):
		return stageDefinitions // StorageClass, PriorityClass, IngressClass, RuntimeClass...
	case gk.Group == "admissionregistration.k8s.io", gk.Group == "apiregistration.k8s.io":
		return stageAdmission
	}
	return stageObjects
}

// kindRank orders kinds inside a stage so that what others refer to comes first (Flux v1's
// order, by hand).
func kindRank(kind string) int {
	switch kind {
	case "Namespace", "CustomResourceDefinition":
		return 0
	case "ServiceAccount", "ClusterRole", "Role", "PersistentVolume", "ResourceQuota", "LimitRange":
		return 1
	case "Secret", "ConfigMap", "RoleBinding", "ClusterRoleBinding", "PersistentVolumeClaim", "Service":
		return 2
	case "DaemonSet", "Deployment", "ReplicationController", "ReplicaSet", "Job", "CronJob", "StatefulSet":
		return 3
	case "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress", "NetworkPolicy":
		return 4
	}
	return 5
}

// sortKey is an object's place in the apply order.
type sortKey struct {
	stage, rank int
	ref         ObjectRef
}

func compareKeys(a, b sortKey) int {
	return cmp.Or(cmp.Compare(a.stage, b.stage), cmp.Compare(a.rank, b.rank),
		cmp.Compare(a.ref.Namespace, b.ref.Namespace), cmp.Compare(a.ref.Group, b.ref.Group),
		cmp.Compare(a.ref.Kind, b.ref.Kind), cmp.Compare(a.ref.Name, b.ref.Name))
}

// sortRefs sorts refs in apply order (by kind alone; scope unknown).
func sortRefs(refs []ObjectRef) {
	slices.SortFunc(refs, func(a, b ObjectRef) int {
		return compareKeys(sortKey{stageOf(a.GroupKind(), false), kindRank(a.Kind), a},
			sortKey{stageOf(b.GroupKind(), false), kindRank(b.Kind), b})
	})
}
