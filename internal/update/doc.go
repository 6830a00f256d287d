// Package update finds the image references that automation may change in the YAML of a
// git checkout (automation targets), and rewrites them by splicing bytes, so that a
// commit changes nothing but those values. It also edits the automation annotations of a
// workload for the CLI. It reads and writes the local filesystem only: no cluster, no
// git, no network.
//
// # Finding targets
//
//	f := &update.Finder{Paths: []string{"apps"}, Markers: markers}
//	res, err := f.Find(ctx, checkoutDir) // res.Targets, res.Problems
//
// Find walks Paths (default: the whole checkout) for *.yaml and *.yml files, skipping .git,
// the templates/ and charts/ directories of Helm charts (Go templates, not YAML), files
// larger than MaxFileSize (default 4 MiB; a warning Problem) and symlinks (never followed;
// one that leaves the checkout is a warning Problem; the file a link points to inside the
// checkout is read where it lives). A file is parsed only if it contains "image" or
// "fluxcd.io/" (no target can be in one that does not). Files are parsed in parallel
// (Workers, default GOMAXPROCS), and each file's result is cached by the SHA-256 of its
// content for the Finder's lifetime, so a daemon's next run re-parses only changed files.
// Plain block-style files without marker comments are read by a fast parser that gives the
// same nodes as yaml.v3 for that subset and hands anything else to yaml.v3 (see
// docs/benchmarks.md); editing always uses yaml.v3.
//
// Every YAML document of a file is read (multi-document files, kind: *List items, top-level
// sequences). A target is:
//
//   - a container or init container of a workload: apps (and extensions) Deployment,
//     StatefulSet, DaemonSet, ReplicaSet; batch Job and CronJob
//     (spec.jobTemplate.spec.template); core v1 Pod. Every container with a valid image
//     is a target; Automated says whether automation may change it.
//   - an image in a HelmRelease's spec.values (helm.fluxcd.io, flux.weave.works and
//     helm.toolkit.fluxcd.io), in the shapes Flux v1 understood, at the top level
//     (container "chart-image") or one key down (container = the key): "image: repo:tag";
//     "image: repo" + "tag: v1" (+ "registry: host"); "image: {repository, tag}" (+
//     registry, + digest). A tag written as a YAML number (tag: 1.19) counts, and is
//     written back quoted. Flux v1's annotation mappings name the values paths for an
//     alias: repository.fluxcd.io/<alias>, tag.fluxcd.io/<alias>, registry.fluxcd.io/<alias>
//     (dot-separated paths below spec.values); they win over a shape found for the same
//     fields.
//   - a scalar carrying a marker comment (see below), in any file.
//
// # Annotations
//
// Each setting may be spelled with any of three prefixes, highest precedence first:
// imagebot.dev/, fluxcd.io/, flux.weave.works/ (Flux v1's two). The suffixes are:
//
//	automated: "true"            automation may change this workload's images
//	tag.<container>: <policy>    the policy of one container (filter.fluxcd.io/<container>
//	                             too, with the lowest precedence)
//	locked: "true"               a human holds the images (locked_msg, locked_user say why, who)
//	ignore: "true"               the workload is ignored ("sync_only" ignores it for sync only)
//
// As in Flux v1 a boolean is on only for the exact string "true". Spellings that disagree
// give a warning; the higher precedence wins. A container with no tag policy on an
// automated workload gets DefaultPolicy ("glob:*", Flux v1's default). Policies are kept as
// the raw spec string (Target.Policy) and checked with Finder.ValidatePolicy (default:
// policy.Parse). A tag annotation naming no container, or an invalid policy, is a Problem
// (ErrUnknownContainer, ErrInvalidPolicy) and the target carries PolicyErr: automation must
// skip it, never fall back to a default.
//
// # Markers
//
// For files that are not workloads (kustomization.yaml images:, Helm values, compose
// files) a line comment puts a policy on a scalar:
//
//	newTag: 6.0.0 # {"$imagepolicy": "flux-system:podinfo:tag"}
//	image: ghcr.io/org/web:1.2.0 # {"$imagebot": "semver:~1.2"}
//
// Flux v2's "$imagepolicy" names a policy, "namespace:name", resolved through
// Finder.Markers (from the repository's config; an unknown name is
// ErrUnknownMarkerPolicy). A ":tag", ":name" or ":digest" suffix says the scalar holds only
// that part; without one it holds a whole reference.
//
// imagebot's inline "$imagebot" carries the policy itself. Optional keys: "part" (ref,
// name, registry, repository, tag, digest: what the scalar holds; by default tag for keys
// named tag or newTag, name for newName or repository, digest for digest, else a whole
// reference) and "image" (the repository, for a scalar that holds only a tag or digest).
// Markers of one mapping with the same policy make one target (repository: + tag:, newName:
// + newTag:). The repository of a tag-only target comes from the marker ("image", or
// MarkerPolicy.Image) or else from the mapping: kustomize's newName (or name), or a Helm
// map's repository (and registry). A marker target is automated; a marker on a workload's
// container image wins over the annotations for that container.
//
// # Editing
//
//	cs, err := f.Apply(ctx, checkoutDir, []update.Decision{{Target: t, Image: ref}})
//	if !cs.Empty() { commit(cs.Message()) }
//
// The editor never re-serialises YAML. It parses for positions (kyaml / yaml.v3 nodes),
// finds each value's bytes from its line and column (columns count characters; CRLF, CR,
// NEL, LS and PS end lines; a byte order mark is skipped), checks that those bytes decode to
// the node's value, and splices the new value in, escaped for the value's existing style
// (plain, 'single' or "double" quoted; a plain value that YAML would read as something other
// than that string, like 1.20, is double-quoted). Only the value bytes change: comments,
// quoting, indentation, key order, blank lines, ---, anchors, block scalars, CRLF, trailing
// spaces and a missing final newline survive. A repository the decision names differently
// but canonically the same (index.docker.io/library/nginx for nginx) is written as the file
// spells it. Block scalars, multi-line scalars and values that are anchored or reached
// through an alias are not edited (ErrUnsupported): changing them would change other places
// or need re-formatting. Find applies the same check: a target whose tag or digest is
// written so carries Target.EditErr (automation must skip it, as for PolicyErr) and, when
// it is automated, is a Problem naming file:line, the field, the workload, the container
// and why, so that one such value never blocks the updates of the others. Apply still
// refuses such a target if a decision names it.
//
// Every edit is verified: the new bytes are re-parsed and must give the same documents
// (kinds, values, tags, styles, anchors, comments, lines, columns of unedited lines) except
// the edited values, which must read the new strings. Apply computes and verifies the edits
// of every file before writing any; it writes each file atomically (temp file in the same
// directory, fsync, rename, mode kept) and puts back the files already written if a write
// fails. A decision whose target changed since Find is ErrStale; one for a target no longer
// in its file is ErrTargetNotFound.
//
// AnnotateBytes and Annotate set or remove automated, locked (+ locked_msg, locked_user) and
// tag.<container> on a named workload in the same byte-preserving way: an existing spelling
// is edited in place, a new annotation uses the prefix the workload (else the file) already
// uses (imagebot.dev/ otherwise) and goes into the existing annotations map with its
// indentation, or into a new annotations: map under metadata.
//
// # Bad input
//
// A file that is binary (NUL bytes, ErrBinary), not UTF-8 (ErrNotUTF8), malformed
// (ErrMalformed), has duplicate keys (ErrDuplicateKey) or expands through aliases to more
// than MaxAliasExpansion nodes (ErrAliasLimit) is one Problem naming the file and line; it
// yields no targets and is never edited, and the other files are still found and updated.
// Problems and edit errors say file:line: field: reason and wrap the sentinel errors of this
// package, for errors.Is.
//
// Results are data: the package does not log.
package update
