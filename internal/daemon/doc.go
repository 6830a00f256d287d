// Package daemon runs imagebot: one bot per repository config, one registry scanner shared
// by all of them, and the HTTP endpoints (health, metrics, registry webhooks, status).
//
// Endpoints on Options.Listen (default ":8080"):
//
//	GET  /healthz                  200 while the process serves
//	GET  /readyz                   200 once every repository has finished one reconcile
//	GET  /metrics                  Prometheus metrics
//	POST /hooks/registry/FORMAT    registry webhooks: distribution, dockerhub, harbor, quay,
//	                               github, generic (see internal/scan); they need the token
//	                               or HMAC secret given in Options
//	GET  /api/v1/status            JSON: repositories, last commit and sync, per container the
//	                               current tag, the best candidate and why it is not applied;
//	                               the scanner's view of each image repository
//	POST /api/v1/release           fluxctl's release and its annotation edits (lock, automate,
//	POST /api/v1/annotate          policy …), committed and pushed by the repository's bot
//	                               (edit.go); they need the token, as POST /api/v1/sync does
//
// Config files are re-read every ConfigPoll (default 10s); a changed set restarts the bots
// of the repositories that changed, and a config that does not load keeps the last good one
// running (the error is logged and shown in the status).
package daemon
