package scan_test

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func dockerSecret(json string) scan.Secret {
	return scan.Secret{Namespace: "ns", Name: "pull", Type: scan.SecretTypeDockerConfigJSON,
		Data: map[string][]byte{".dockerconfigjson": []byte(json)}}
}

func TestSecretsCredentials(t *testing.T) {
	cfg := `{"auths": {
		"https://index.docker.io/v1/": {"auth": "` + b64("hubuser:hubpass") + `"},
		"registry.example.com": {"username": "u1", "password": "p1"},
		"registry.example.com/team": {"username": "u2", "password": "p2"},
		"*.azurecr.io": {"auth": "` + b64("acr:secret:with:colons") + `"},
		"localhost:5000": {"identitytoken": "idtok"}
	}}`
	legacy := scan.Secret{Namespace: "ns", Name: "old", Type: scan.SecretTypeDockercfg,
		Data: map[string][]byte{".dockercfg": []byte(`{"quay.io": {"auth": "` + b64("quser:qpass") + `"}}`)}}
	other := scan.Secret{Namespace: "ns", Name: "tls", Type: "kubernetes.io/tls", Data: map[string][]byte{"tls.crt": []byte("x")}}
	creds, err := scan.SecretsCredentials(dockerSecret(cfg), legacy, other)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		repo string
		want authn.AuthConfig // zero: anonymous
	}{
		{"nginx", authn.AuthConfig{Username: "hubuser", Password: "hubpass"}},
		{"docker.io/library/nginx", authn.AuthConfig{Username: "hubuser", Password: "hubpass"}},
		{"registry.example.com/app", authn.AuthConfig{Username: "u1", Password: "p1"}},
		{"registry.example.com/team/app", authn.AuthConfig{Username: "u2", Password: "p2"}},
		{"registry.example.com/teamster/app", authn.AuthConfig{Username: "u1", Password: "p1"}},
		{"myreg.azurecr.io/app", authn.AuthConfig{Username: "acr", Password: "secret:with:colons"}},
		{"a.b.azurecr.io/app", authn.AuthConfig{}}, // "*" is one label
		{"localhost:5000/app", authn.AuthConfig{IdentityToken: "idtok"}},
		{"localhost:5001/app", authn.AuthConfig{}},
		{"quay.io/org/app", authn.AuthConfig{Username: "quser", Password: "qpass"}},
		{"ghcr.io/org/app", authn.AuthConfig{}},
	}
	for _, tc := range cases {
		t.Run(tc.repo, func(t *testing.T) {
			repo, err := name.NewRepository(tc.repo)
			if err != nil {
				t.Fatal(err)
			}
			a, err := creds.Keychain.Resolve(repo)
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.Authorization()
			if err != nil {
				t.Fatal(err)
			}
			if *got != tc.want {
				t.Errorf("resolved %+v, want %+v", *got, tc.want)
			}
		})
	}
	// Equal content, equal ID (one listing); different content, different ID.
	again, _ := scan.SecretsCredentials(dockerSecret(cfg), legacy)
	diff, _ := scan.SecretsCredentials(dockerSecret(strings.Replace(cfg, "p1", "p9", 1)), legacy)
	if again.ID != creds.ID || diff.ID == creds.ID || creds.ID == "" {
		t.Errorf("IDs: %q %q %q", creds.ID, again.ID, diff.ID)
	}
	if strings.Contains(creds.ID, "p1") || strings.Contains(creds.ID, b64("hubuser:hubpass")) {
		t.Errorf("ID %q shows a secret", creds.ID)
	}
}

func TestSecretsCredentialsErrorsHideValues(t *testing.T) {
	for _, tc := range []struct{ name, cfg, want string }{
		{"not json", `{"auths": {"r.io": {"auth": "c2VjcmV0` /* truncated */, "secret ns/pull: docker config: not JSON"},
		{"auth not base64", `{"auths": {"r.io": {"auth": "hunter2!!"}}}`, `auths["r.io"].auth: not base64 of user:password`},
		{"auth without colon", `{"auths": {"r.io": {"auth": "` + b64("hunter2") + `"}}}`, `auths["r.io"].auth: not base64`},
		{"entry not an object", `{"auths": {"r.io": "hunter2"}}`, `auths["r.io"]: not a JSON object`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scan.SecretsCredentials(dockerSecret(tc.cfg))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

// TestBasicAuth scans the htpasswd-protected distribution registry: the right password
// (from a pull secret and from a config.json) lists tags; a wrong one is ErrUnauthorized and
// the password appears nowhere in the error.
func TestBasicAuth(t *testing.T) {
	env := testenv.New(t, testenv.Options{Registry: true, RegistryOptions: testenv.RegistryOptions{Auth: true}})
	reg := env.Registry
	if _, err := reg.Push(ctxT(t), "private/app", "v1", testenv.ImageSpec{Created: base}); err != nil {
		t.Fatal(err)
	}
	repo := repoOf(t, reg.Host, "private/app")
	good, err := scan.SecretsCredentials(dockerSecret(`{"auths": {"` + reg.Host + `": {"auth": "` + b64(reg.Username+":"+reg.Password) + `"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, []byte(`{"auths": {"http://`+reg.Host+`": {"username": "`+reg.Username+`", "password": "`+reg.Password+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile, err := scan.DockerConfigFile(file)
	if err != nil {
		t.Fatal(err)
	}
	const wrongPass = "not-the-password-1234"
	bad, _ := scan.SecretsCredentials(dockerSecret(`{"auths": {"` + reg.Host + `": {"auth": "` + b64(reg.Username+":"+wrongPass) + `"}}}`))

	sc := scan.New(scan.Options{})
	for _, c := range []scan.Credentials{good, fromFile} {
		res, err := sc.Scan(ctxT(t), repo, scan.Need{Credentials: c, Match: func(string) bool { return true }, BuildTime: true})
		if err != nil {
			t.Fatalf("credentials %s: %v", c.ID, err)
		}
		if len(res.Tags) != 1 || !res.Images["v1"].Created.Equal(base) {
			t.Errorf("credentials %s: %+v", c.ID, res)
		}
	}
	for _, c := range []scan.Credentials{bad, {}} {
		_, err = sc.Scan(ctxT(t), repo, scan.Need{Credentials: c})
		if !errors.Is(err, scan.ErrUnauthorized) {
			t.Fatalf("credentials %q: err = %v, want ErrUnauthorized", c.ID, err)
		}
		if !strings.Contains(err.Error(), "401 Unauthorized") {
			t.Errorf("err = %q, want it to say 401", err)
		}
		for _, secret := range []string{wrongPass, reg.Password, b64(reg.Username + ":" + wrongPass)} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows a credential", err)
			}
		}
	}
}
