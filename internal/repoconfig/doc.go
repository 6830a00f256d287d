// Package repoconfig turns a repository's config (internal/config) into the parts that
// automate it: the update.Finder (spec.git.paths, spec.markers), the image filter
// (spec.images.include/exclude), the registry credentials (spec.registries[].dockerConfigFile)
// and the scanner's options (spec.registries[] hosts, limits, page sizes, insecure, caFile;
// spec.scan.platform; spec.scan.tagCap goes to each scan's Need, per repository).
//
// The daemon and the CLI's commands on a local checkout (plan, release, list-workloads with
// --config) both build their parts here, so that what the CLI shows is what the daemon
// does. Nothing here reads the cluster: a workload's imagePullSecrets, which win over the
// config's credentials in the daemon, are the daemon's own (scan.KeychainProvider).
//
// Defaults are the scan package's (see scan.Options): a setting the config leaves out is
// left zero here.
package repoconfig
