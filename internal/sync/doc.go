// Package sync is imagebot's reconciler: it renders the manifests of a commit, applies them
// server-side, records an inventory, prunes what imagebot applied and git no longer declares,
// reverts drift and reports health. It shares its name with the standard library's sync;
// import it as ksync where both are needed (and this package imports the standard one as
// stdsync).
//
// # Pieces
//
//   - Read and (*Manager).Render turn a checkout directory into objects: plain YAML/JSON
//     directories (recursive, in lexical order of paths; hidden entries skipped; `kind: List`
//     flattened) and kustomize overlays (a directory holding kustomization.yaml, .yml or
//     Kustomization is built in process with kustomize's krusty, plugins off, loads confined
//     to the checkout). Render gives namespaced objects without a namespace the default
//     namespace, deciding what is namespaced through discovery (the RESTMapper) or, for a
//     custom resource whose CRD is in the same render, the CRD's spec.scope.
//   - (*Manager).Apply applies server-side (field manager "imagebot", conflicts forced) in
//     stages: CRDs, Namespaces and cluster-scoped *Class kinds; then a wait until the CRDs
//     are Established and a discovery refresh; then everything else; admission webhooks,
//     admission policies and APIServices last. Objects of a stage are applied Concurrency at
//     a time. It returns a ChangeSet: created, configured, recreated, unchanged, skipped,
//     failed, one entry per object, and errors.Join of the failures, each prefixed with
//     Kind/namespace/name. One failing object does not stop the others.
//   - (*Manager).Prune deletes inventory entries git no longer declares; (*Manager).Wait
//     computes health with kstatus; ReadInventory/WriteInventory keep the inventory.
//   - Syncer ties them together for one repository path: Sync(ctx, revision, objs) does
//     inventory → apply → prune → health and returns a Result; Start/Stop run the drift
//     watcher and the periodic full reconcile.
//
// # Ownership
//
// Every applied object carries the label and annotation imagebot.dev/owner=<syncer name>,
// plus imagebot.dev/checksum, a hash of the configuration imagebot last applied to it. The
// inventory of a Syncer is the ConfigMap imagebot-inv-<name> in the inventory namespace
// (default "imagebot-system"): the objects it applied and the last applied and attempted
// revisions. Before applying, the inventory is written as old ∪ new, so a crash between apply
// and prune leaks nothing. Prune deletes old − new, only when every apply succeeded and the
// render was neither failed nor empty, after re-reading each object (metadata only) and
// requiring the owner label to still name this Syncer. It never deletes more than
// MaxPruneFraction (default 0.5) of the inventory at once unless AllowMassPrune is set
// (ErrPruneLimit), skips objects annotated imagebot.dev/prune: disabled, and leaves
// Namespaces, CRDs and PersistentVolumeClaims alone unless PruneKinds allows them. Deletion is
// in reverse apply order with background propagation; NotFound counts as done; a failed
// deletion stays in the inventory and is retried on the next sync.
//
// # Taking over from kubectl
//
// Before applying to an existing object, imagebot merges the managedFields entries of the
// managers in Options.TakeOver (kubectl, kubectl-client-side-apply, kubectl-edit,
// kubectl-scale, kubectl-set, kubectl-patch, before-first-apply...) into its own apply entry
// (fluxcd/pkg/ssa does the same; client-go's csaupgrade does it for client-side apply only),
// so that fields a person added with `kubectl edit` and git does not declare are removed by
// the next apply, and fields git declares are set back. Subresource entries (`kubectl scale`
// writes through the scale subresource) are not merged: a forced apply takes spec.replicas
// back anyway. Annotations and labels added with `kubectl annotate/label` are left alone.
//
// # Comparison: no write when nothing changed
//
// Whether an object needs writing is decided from the live object without writing: its
// checksum annotation must equal the hash of the configuration about to be applied, no
// take-over manager may own fields, and every field the configuration declares must equal the
// live value (quantities compared as quantities, Secret stringData as data). When only that
// last check fails the object is dry-run applied and the result compared with the live object,
// which absorbs server-side normalisation. Live objects come from the drift watcher's
// informer caches when it runs (a no-change sync then makes no request but the inventory
// read), else from one LIST per kind and namespace (label-selected) plus a metadata-only LIST
// to spot existing objects without the owner label. CompareDryRun instead dry-run applies
// every object as fluxcd/pkg/ssa does; docs/benchmarks.md measures both (the cached
// comparison is the default: it makes no write and far fewer requests).
//
// # Annotations on objects
//
//	imagebot.dev/ignore: "true"     never applied (in git or on the live object) and never pruned
//	fluxcd.io/ignore                the same, Flux v1's spelling (also flux.weave.works/ignore)
//	imagebot.dev/ignore: sync_only  Flux v1's sync_only: applied as usual, but never pruned
//	                                (deleting it from git leaves it running). Any other value
//	                                is not an ignore.
//	imagebot.dev/force: "true"      an apply rejected because an immutable field changed
//	                                (a Deployment's selector, a Job's template) deletes and
//	                                recreates the object; without it the error is reported
//	                                (ErrImmutable)
//	imagebot.dev/prune: disabled    never pruned
//
// The ignore semantics are Flux v1's: `ignore: "true"` on the file or on the cluster object
// (kubectl annotate) keeps the sync from applying it and garbage collection from deleting it;
// `ignore: sync_only` only keeps garbage collection away.
//
// # Horizontal pod autoscalers
//
// When an HorizontalPodAutoscaler in the cluster (or in the same render) targets an existing
// object, imagebot leaves spec.replicas to it: the field is stripped from the applied
// configuration, imagebot's ownership of it is released (so the apply does not reset it), and
// replica differences are not drift. On creation the declared replicas are used.
//
// # Drift
//
// While a Syncer is started, informers (one per kind and namespace, selected by the owner
// label) watch the applied objects. An update that makes an object differ from its declared
// configuration (the comparison above, against the informer's copy), or a deletion, queues
// it; the queue is re-applied after DriftDebounce (100ms) of quiet, at most DriftMaxDelay (1s)
// after the first event. Status-only changes are not drift, nor are annotations and labels
// added by others (`kubectl rollout restart`, `kubectl annotate`): only what git declares is
// held. A full reconcile of the last desired set runs every ResyncInterval (default 5m) as a
// backstop. The informers hold whole objects, since telling drift needs the declared fields;
// what needs metadata only reads metadata only (prune's re-read, the LIST that finds existing
// objects without the owner label). While they run, they also serve Apply and Wait, so that an
// unchanged sync makes no request but the inventory's GET.
//
// # Health and status
//
// After applying, Sync waits up to HealthTimeout (default 2m; negative: no wait, a snapshot)
// for kstatus to report every object Current; drift corrections are not held up meanwhile.
// With WaitInBackground (what the daemon uses) Sync returns as soon as it has applied and
// pruned, Reconciling while rollouts go on, and the wait's outcome (Ready, or Stalled with
// ErrHealthTimeout or ErrUnhealthy) comes later as a second Result through OnResult; a newer
// Sync ends the older wait without a result.
// Result carries per-object health, the overall status (Ready, Reconciling, Stalled), the last
// applied and last attempted revisions (commit SHAs given by the caller), and the ChangeSet. Events go through the EventRecorder given in SyncerOptions
// (client-go's record.EventRecorder satisfies it): one per changed or failed object (up to
// MaxObjectEvents per sync), one per drift correction, and one summary on the inventory
// ConfigMap; a sync that changed nothing and whose status did not change records none.
//
// # Units and defaults
//
// Durations are time.Duration. Options: FieldManager "imagebot", QPS 200, Burst 400,
// Concurrency 8, CRDTimeout 30s. SyncerOptions: InventoryNamespace "imagebot-system",
// DefaultNamespace "default", HealthTimeout 2m, ResyncInterval 5m, MaxPruneFraction 0.5,
// MaxObjectEvents 20, DriftDebounce 100ms, DriftMaxDelay 1s, Prune off (as Flux v1's garbage
// collection: the daemon's config turns it on; without it, objects removed from git are left
// and dropped from the inventory). A failed drift correction is retried after 1s, doubling,
// 8 times; the resync takes over after that.
package sync

// Names imagebot writes on objects, and the annotations it reads.
const (
	DefaultFieldManager = "imagebot"

	LabelOwner         = "imagebot.dev/owner"
	AnnotationOwner    = "imagebot.dev/owner"
	AnnotationChecksum = "imagebot.dev/checksum"
	AnnotationIgnore   = "imagebot.dev/ignore"
	AnnotationForce    = "imagebot.dev/force"
	AnnotationPrune    = "imagebot.dev/prune"

	// Flux v1's ignore annotations, honoured as they were.
	AnnotationFluxIgnore        = "fluxcd.io/ignore"
	AnnotationWeaveFluxIgnore   = "flux.weave.works/ignore"
	IgnoreSyncOnly              = "sync_only"
	PruneDisabled               = "disabled"
	lastAppliedConfigAnnotation = "kubectl.kubernetes.io/last-applied-configuration"
)

// ignoreValue returns the value of the first ignore annotation set on an object.
func ignoreValue(annotations map[string]string) string {
	for _, k := range []string{AnnotationIgnore, AnnotationFluxIgnore, AnnotationWeaveFluxIgnore} {
		if v, ok := annotations[k]; ok {
			return v
		}
	}
	return ""
}
