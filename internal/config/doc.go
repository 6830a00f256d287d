// Package config reads imagebot's repository config files: one YAML file per git repository
// (several documents or a directory of files are fine), apiVersion imagebot.dev/v1alpha1,
// kind Repository. Parsing is strict: an unknown field, a wrong type, a bad duration, glob,
// policy or URL is an error naming the file, the line and the field. Secrets are never in
// the file, only the paths of the files that hold them.
//
// Defaults (applied by Parse where the file is silent; the rest are applied by the packages
// that use the values, and documented there and in the README):
//
//	spec.git.branch            main
//	spec.git.interval          1m    (git poll)
//	spec.git.timeout           60s   (per fetch or push)
//	spec.scan.interval         5m    (registry poll, with jitter)
//	spec.scan.platform         linux/amd64
//	spec.scan.tagCap           50000
//	spec.sync.enabled          true
//	spec.sync.prune            true
//	spec.sync.interval         10m   (full reconcile backstop; drift is corrected at once)
//	spec.sync.healthTimeout    2m
//	spec.sync.maxPruneFraction 0.5
//
// The JSON Schema for editors is config/schema/repository.schema.json; a test keeps it in
// step with these types.
package config
