// Package testenv starts imagebot's test world on loopback: a Kubernetes control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok managing a fake node, so
// Deployments really roll out), a container registry (Debian's docker-registry, the CNCF
// distribution server, with webhook notifications; or go-containerregistry's in-process
// registry) and a git server (Debian's openssh-server with git-shell, a deploy key and a
// known_hosts file; more keys, hooks and repository config can be added, and Crash kills it
// mid-operation). The same repositories can be served over HTTPS (ServeHTTPS): Git's own
// `git http-backend` run through net/http/cgi behind an httptest TLS server on loopback, with
// basic auth (passwords or tokens) checked in front; its self-signed certificate is in
// CABundle for clients to trust.
//
// StartProfileRegistry runs registries that behave as the public ones do where a scanner
// can notice: Docker Hub (a token server on another host, a pull budget with ratelimit-*
// headers and 429s past it), GHCR, Quay (tag pages capped at 100) and ECR (expiring basic
// auth passwords), each redirecting blob GETs to a "CDN" that refuses a request carrying
// Authorization, and counting what clients did. The registry is 127.0.0.1:PORT; the CDN and
// the token server are localhost:PORT, because go-containerregistry refuses redirects and
// token realms that name a private IP literal (a CDN at 127.0.0.2 would be refused).
//
// Everything runs as child processes on free loopback ports in the caller's temp dirs and is
// stopped by Stop (or t.Cleanup): children get SIGTERM, then SIGKILL after a grace period, and
// die with the parent (Pdeathsig) if it is killed. Several environments can run at once.
//
// Binaries come from hack/tools.sh, which installs missing Debian packages with apt-get (as
// root) and builds the Kubernetes binaries and kwok from Go modules into a versioned cache dir
// ($IMAGEBOT_CACHE, default ~/.cache/imagebot) once per machine. A missing prerequisite is a
// loud error naming the command to run, never a skipped test.
package testenv
