package testenv

import (
	"bytes"
	"crypto/subtle"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// GitHTTPServer is Git's own smart-HTTP server, `git http-backend`, run through Go's CGI
// handler behind TLS on loopback, with HTTP basic auth checked in front of it. It serves the
// bare repositories of a directory (a GitServer's, so one repository is reachable over SSH
// and HTTPS at once), fetch and push alike; server-side hooks run as they do over SSH.
type GitHTTPServer struct {
	// CABundle is the PEM certificate the server's TLS certificate chains to (it is
	// self-signed for 127.0.0.1): what a client must trust, e.g. git.Options.CABundle.
	CABundle []byte
	// CAFile is CABundle written to a file.
	CAFile string

	srv      *httptest.Server
	backend  string
	reposDir string
	users    map[string]string
	tokens   []string

	mu      sync.Mutex
	refused int
	stderr  bytes.Buffer
}

// GitHTTPOptions are the credentials a GitHTTPServer accepts.
type GitHTTPOptions struct {
	Users  map[string]string // user name → password
	Tokens []string          // accepted as the password with any user name (as GitHub does)
}

// StartGitHTTPServer serves the bare repositories in reposDir (name.git) over HTTPS on
// 127.0.0.1. Every request must carry basic-auth credentials that opts accepts, else it is
// answered 401 with a WWW-Authenticate challenge. The server's CGI output goes to Log.
func StartGitHTTPServer(reposDir string, opts GitHTTPOptions) (*GitHTTPServer, error) {
	gitBin, err := binary("git", "/usr/bin/git")
	if err != nil {
		return nil, err
	}
	// http-backend lives in git's exec path (Debian: /usr/lib/git-core), not on PATH.
	out, err := exec.Command(gitBin, "--exec-path").Output()
	if err != nil {
		return nil, fmt.Errorf("git http server: %s --exec-path: %w", gitBin, err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if !isExec(backend) {
		return nil, fmt.Errorf("git http server: %s not found (Debian's git package installs it)", backend)
	}
	s := &GitHTTPServer{backend: backend, reposDir: reposDir, users: opts.Users, tokens: opts.Tokens}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ErrorLog = discardLogger()
	s.srv.StartTLS()
	s.CABundle = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	f, err := os.CreateTemp("", "imagebot-githttp-ca-*.pem")
	if err != nil {
		s.srv.Close()
		return nil, err
	}
	s.CAFile = f.Name()
	_, err = f.Write(s.CABundle)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// ServeHTTPS starts a GitHTTPServer over this server's repositories: the repository name is
// then at both URL(name) and the HTTPS server's URL(name).
func (g *GitServer) ServeHTTPS(opts GitHTTPOptions) (*GitHTTPServer, error) {
	return StartGitHTTPServer(filepath.Join(g.Dir, "repos"), opts)
}

// URL is the https:// URL of the bare repository name.
func (s *GitHTTPServer) URL(name string) string { return s.srv.URL + "/" + name + ".git" }

// Addr is the server's "127.0.0.1:PORT".
func (s *GitHTTPServer) Addr() string { return s.srv.Listener.Addr().String() }

// Refused counts the requests answered 401 (missing or wrong credentials).
func (s *GitHTTPServer) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Log returns what git http-backend wrote to its stderr.
func (s *GitHTTPServer) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// Close stops the server (waiting for requests in flight) and removes the CA file.
func (s *GitHTTPServer) Close() {
	s.srv.Close()
	if s.CAFile != "" {
		os.Remove(s.CAFile)
	}
}

func (s *GitHTTPServer) serve(w http.ResponseWriter, r *http.Request) {
	user, ok := s.authorize(r)
	if !ok {
		s.mu.Lock()
		s.refused++
		s.mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Basic realm="imagebot test git"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return
	}
	h := &cgi.Handler{
		Path: s.backend,
		Dir:  s.reposDir,
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.reposDir,
			"GIT_HTTP_EXPORT_ALL=1",
			// http-backend enables receive-pack for an authenticated REMOTE_USER; say so
			// explicitly as well, and keep the machine's own git config out.
			"REMOTE_USER=" + user,
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_CONFIG_COUNT=2",
			"GIT_CONFIG_KEY_0=http.receivepack", "GIT_CONFIG_VALUE_0=true",
			"GIT_CONFIG_KEY_1=safe.directory", "GIT_CONFIG_VALUE_1=*",
		},
		Stderr: lockedWriter{&s.mu, &s.stderr},
		Logger: discardLogger(),
	}
	h.ServeHTTP(w, r)
}

// authorize checks r's basic-auth credentials and returns the user name.
func (s *GitHTTPServer) authorize(r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok || user == "" || strings.ContainsAny(user, "\r\n") {
		return "", false
	}
	if want, ok := s.users[user]; ok && subtle.ConstantTimeCompare([]byte(want), []byte(pass)) == 1 {
		return user, true
	}
	for _, tok := range s.tokens {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(pass)) == 1 {
			return user, true
		}
	}
	return "", false
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}
