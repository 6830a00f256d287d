// Package scan talks to container registries: it lists tags, fetches the metadata a policy
// needs (digest, build time), authenticates, rate-limits per registry host, caches results and
// turns registry webhooks into scan triggers.
//
// Not built yet: see the scan issue. The test world's registry (internal/testenv) is what its
// tests run against.
package scan
