package testenv

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// tokenTTL is the lifetime of a bearer token, as on Docker Hub.
const tokenTTL = 300 * time.Second

// profileToken is what a bearer token grants; the token is its JSON and an HMAC of it.
type profileToken struct {
	Sub  string   `json:"sub,omitempty"` // the user; "" for anonymous
	Pull []string `json:"pull,omitempty"`
	Push []string `json:"push,omitempty"`
	Exp  int64    `json:"exp"`
}

func (p *ProfileRegistry) mac(label string, data []byte) []byte {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write(data)
	return m.Sum(nil)
}

func (p *ProfileRegistry) signToken(t profileToken) string {
	b, _ := json.Marshal(t)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(b) + "." + enc.EncodeToString(p.mac("token", b))
}

func (p *ProfileRegistry) verifyToken(s string) (profileToken, error) {
	var t profileToken
	payload, sig, ok := strings.Cut(s, ".")
	if !ok {
		return t, errors.New("malformed token")
	}
	b, err1 := base64.RawURLEncoding.DecodeString(payload)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, p.mac("token", b)) {
		return t, errors.New("bad token signature")
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("decoding token: %w", err)
	}
	if time.Now().Unix() >= t.Exp {
		return t, errors.New("token expired")
	}
	return t, nil
}

// serveToken is the token server: GET ?service=S&scope=repository:NAME:pull..., anonymous or
// with basic credentials, answering Docker Hub's token JSON. Anonymous tokens leave out pulls
// of private repositories, and only users get push.
func (p *ProfileRegistry) serveToken(w http.ResponseWriter, r *http.Request) {
	p.count(func(c *ProfileCounts) { c.TokenRequests++ })
	deny := func(status int, details string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"details": details})
	}
	if r.Method != http.MethodGet {
		deny(http.StatusMethodNotAllowed, "use GET")
		return
	}
	q := r.URL.Query()
	if s := q.Get("service"); s != "" && s != p.service {
		deny(http.StatusBadRequest, fmt.Sprintf("unknown service %q, this is %q", s, p.service))
		return
	}
	t := profileToken{Exp: time.Now().Add(tokenTTL).Unix()}
	if user, pass, ok := r.BasicAuth(); ok {
		if err := p.checkPassword(user, pass); err != nil {
			deny(http.StatusUnauthorized, "incorrect username or password")
			return
		}
		t.Sub = user
	} else if r.Header.Get("Authorization") != "" {
		deny(http.StatusUnauthorized, "unsupported Authorization header")
		return
	}
	for _, scope := range strings.Fields(strings.Join(q["scope"], " ")) {
		typ, rest, _ := strings.Cut(scope, ":")
		i := strings.LastIndex(rest, ":")
		if typ != "repository" || i < 0 {
			continue
		}
		repo, actions := rest[:i], strings.Split(rest[i+1:], ",")
		if slices.Contains(actions, "pull") && (t.Sub != "" || !p.isPrivate(repo)) {
			t.Pull = append(t.Pull, repo)
		}
		if slices.Contains(actions, "push") && t.Sub != "" {
			t.Push = append(t.Push, repo)
		}
	}
	tok := p.signToken(t)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token":        tok,
		"access_token": tok,
		"expires_in":   int(tokenTTL.Seconds()),
		"issued_at":    time.Now().UTC().Format(time.RFC3339Nano),
	})
}

// authorize checks r's credentials for what rp addresses and returns the identity the pull
// budget is kept for (the user, or the client's address when anonymous). When they fall
// short it answers 401 with a challenge and returns false.
func (p *ProfileRegistry) authorize(w http.ResponseWriter, r *http.Request, rp registryPath) (string, bool) {
	if p.Profile == ProfileECR {
		return p.authorizeBasic(w, r)
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	scope := ""
	if rp.repo != "" {
		scope = "repository:" + rp.repo + ":pull"
		if !read {
			scope += ",push"
		}
	}
	realm := p.Realm
	if p.Profile != ProfileDockerHub && r.Host != "" {
		realm = "http://" + r.Host + "/token" // on the registry's own host, by the name it was asked by
	}
	challenge := func(errCode string) {
		c := fmt.Sprintf("Bearer realm=%q,service=%q", realm, p.service)
		if scope != "" {
			c += fmt.Sprintf(",scope=%q", scope)
		}
		if errCode != "" {
			c += fmt.Sprintf(",error=%q", errCode)
		}
		w.Header().Set("WWW-Authenticate", c)
		writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		challenge("")
		return "", false
	}
	t, err := p.verifyToken(bearer)
	if err != nil {
		challenge("invalid_token")
		return "", false
	}
	if rp.repo != "" {
		granted := slices.Contains(t.Pull, rp.repo) && (t.Sub != "" || !p.isPrivate(rp.repo))
		if !read {
			granted = granted && slices.Contains(t.Push, rp.repo)
		}
		if !granted {
			challenge("insufficient_scope")
			return "", false
		}
	}
	if t.Sub != "" {
		return t.Sub, true
	}
	return clientIP(r), true
}

// authorizeBasic is ECR's auth: basic credentials as "AWS" with an unexpired password.
func (p *ProfileRegistry) authorizeBasic(w http.ResponseWriter, r *http.Request) (string, bool) {
	deny := func(message string) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q,service=%q", "http://"+p.Host+"/", "ecr.amazonaws.com"))
		writeRegistryError(w, http.StatusUnauthorized, "DENIED", message)
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		deny("Not Authorized")
		return "", false
	}
	switch err := p.checkPassword(user, pass); {
	case errors.Is(err, errPasswordExpired):
		deny("Your authorization token has expired. Reauthenticate and try again.")
		return "", false
	case err != nil:
		deny("Your authorization token is invalid.")
		return "", false
	}
	return user, true
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// isPrivate reports whether repo refuses anonymous tokens.
func (p *ProfileRegistry) isPrivate(repo string) bool {
	return slices.Contains(p.opts.Private, repo)
}
