// Package sync is imagebot's reconciler: it renders the manifests of a commit, applies them
// server-side, records an inventory, prunes what imagebot applied and git no longer declares,
// and reverts drift. (It shares its name with the standard library's sync; import it under an
// alias such as ksync where both are needed.)
//
// Not built yet: see the sync issue.
package sync
