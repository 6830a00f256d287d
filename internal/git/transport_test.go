package git_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"imagebot.dev/imagebot/internal/git"
	"imagebot.dev/imagebot/internal/testenv"
)

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeEncryptedKey writes a new ed25519 key in OpenSSH format, encrypted with passphrase,
// and returns its public half in authorized_keys format.
func writeEncryptedKey(t *testing.T, path, passphrase string) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "encrypted", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(signer.PublicKey()))
}

// writePEMRSAKey writes a new RSA key in the PEM (PKCS#1) format older tools make.
func writePEMRSAKey(t *testing.T, path string) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(signer.PublicKey()))
}

// TestDeployKeyTypes: ECDSA and RSA deploy keys (OpenSSH format, and RSA in PEM format) and
// a passphrase-protected key each fetch, commit and push through the real sshd with strict
// host key checking. Each key is authorized on its own, and each pushes its own commit.
func TestDeployKeyTypes(t *testing.T) {
	files := map[string]string{"keys.yaml": "ecdsa: 0\nrsa: 0\nrsa-pem: 0\nencrypted: 0\n"}
	w := newWorld(t, files)
	dir := t.TempDir()
	for _, c := range []struct {
		name       string
		make       func(path string) string // writes the key, returns its public half
		passphrase string                   // file content; "" = no passphrase file
	}{
		{"ecdsa", func(p string) string { return generate(t, p, git.KeyECDSA) }, ""},
		{"rsa", func(p string) string { return generate(t, p, git.KeyRSA) }, ""},
		{"rsa-pem", func(p string) string { return writePEMRSAKey(t, p) }, ""},
		// The passphrase file ends in a newline, as `echo secret > file` writes it.
		{"encrypted", func(p string) string { return writeEncryptedKey(t, p, "correct horse") }, "correct horse\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := filepath.Join(dir, c.name)
			pub := c.make(key)
			if err := w.srv.AuthorizeKey(pub); err != nil {
				t.Fatal(err)
			}
			auth := git.SSHAuth{User: w.srv.User, KeyFile: key, KnownHosts: w.srv.KnownHosts}
			if c.passphrase != "" {
				auth.PassphraseFile = writeFile(t, dir, c.name+".pass", c.passphrase)
			}
			m, err := auth.Method()
			if err != nil {
				t.Fatal(err)
			}
			r, err := git.Open(ctxT(t), git.Options{URL: w.url, Dir: filepath.Join(dir, c.name+".data"), Auth: m})
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Update(ctxT(t), replaceEdit("keys.yaml", c.name, c.name+": 0", c.name+": 1"))
			if err != nil || res.Commit.IsZero() {
				t.Fatalf("update with a %s key: %+v %v", c.name, res, err)
			}
			head, err := testenv.Head(w.path, "main")
			if err != nil {
				t.Fatal(err)
			}
			if head.Hash != res.Commit {
				t.Errorf("server head %s, pushed %s", head.Hash, res.Commit)
			}
			if got, _ := testenv.ReadFile(w.path, "main", "keys.yaml"); !strings.Contains(got, c.name+": 1\n") {
				t.Errorf("keys.yaml on the server:\n%s", got)
			}
		})
	}
}

func generate(t *testing.T, path string, kind git.KeyType) string {
	t.Helper()
	pub, err := git.GenerateKey(path, kind, "test-"+string(kind))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestEncryptedKeyErrors: a wrong passphrase, or none for an encrypted key, is refused up
// front with an error naming the key file (and never the passphrase).
func TestEncryptedKeyErrors(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "deploy_key")
	writeEncryptedKey(t, key, "correct horse")
	known := writeFile(t, dir, "known_hosts", "")
	for _, c := range []struct {
		name, passphrase string // "" = no passphrase file
		want             string
	}{
		{"wrong passphrase", "battery staple\n", "wrong passphrase"},
		{"no passphrase file", "", "encrypted"},
	} {
		t.Run(c.name, func(t *testing.T) {
			auth := git.SSHAuth{User: "git", KeyFile: key, KnownHosts: known}
			if c.passphrase != "" {
				auth.PassphraseFile = writeFile(t, dir, "pass", c.passphrase)
			}
			_, err := auth.Method()
			if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v; want one naming %s and saying %q", err, key, c.want)
			}
			if strings.Contains(err.Error(), "battery") {
				t.Errorf("the error shows the passphrase: %v", err)
			}
			t.Logf("%s: %v", c.name, err)
			// PublicKey (the CLI's key command) says the same.
			if _, _, err := git.PublicKey(key, auth.PassphraseFile); err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("PublicKey: err = %v; want one naming %s and saying %q", err, key, c.want)
			}
		})
	}
	// The right passphrase opens it.
	auth := git.SSHAuth{User: "git", KeyFile: key, KnownHosts: known, PassphraseFile: writeFile(t, dir, "pass", "correct horse")}
	if _, err := auth.Method(); err != nil {
		t.Errorf("right passphrase: %v", err)
	}
}

// TestHTTPS: fetch, update and push over HTTPS (git http-backend behind TLS with a test CA
// given through Options.CABundle) with a user and password, and with a token as the
// password; a wrong password and an untrusted certificate give clear errors.
func TestHTTPS(t *testing.T) {
	w := newWorld(t, seed(t))
	hs, err := w.srv.ServeHTTPS(testenv.GitHTTPOptions{
		Users:  map[string]string{"alice": "correct horse"},
		Tokens: []string{"tok-8f14e45fceea167a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hs.Close)
	url := hs.URL("config")
	dir := t.TempDir()
	open := func(t *testing.T, auth git.HTTPSAuth, ca []byte) *git.Repo {
		t.Helper()
		m, err := auth.Method()
		if err != nil {
			t.Fatal(err)
		}
		r, err := git.Open(ctxT(t), git.Options{URL: url, Dir: t.TempDir(), Auth: m, CABundle: ca})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	t.Run("password", func(t *testing.T) {
		r := open(t, git.HTTPSAuth{Username: "alice", PasswordFile: writeFile(t, dir, "password", "correct horse\n")}, hs.CABundle)
		head, err := r.Fetch(ctxT(t))
		if err != nil {
			t.Fatalf("fetch: %v\n%s", err, hs.Log())
		}
		if server, _ := testenv.Head(w.path, "main"); head != server.Hash {
			t.Fatalf("fetched %s, the server has %s", head, server.Hash)
		}
		res, err := r.Update(ctxT(t), setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1"))
		if err != nil || res.Commit.IsZero() {
			t.Fatalf("update: %+v %v\n%s", res, err, hs.Log())
		}
		// A human pushes meanwhile; the next update fetches it and pushes on top.
		human, err := testenv.CommitFiles(w.path, "main", map[string]string{"NOTES.md": "hi\n"}, "human")
		if err != nil {
			t.Fatal(err)
		}
		res, err = r.Update(ctxT(t), setImage("nginx", "nginx:1.17"))
		if err != nil || res.Commit.IsZero() || res.Base != human {
			t.Fatalf("second update: %+v %v (want it based on %s)", res, err, human)
		}
		server, _ := testenv.Head(w.path, "main")
		if server.Hash != res.Commit || server.ParentHashes[0] != human {
			t.Errorf("server head %s (parents %v), pushed %s on %s", server.Hash, server.ParentHashes, res.Commit, human)
		}
		got, _ := testenv.ReadFile(w.path, "main", "apps/flask.yaml")
		if !strings.Contains(got, "flaskapp:develop-v1.8.1") || !strings.Contains(got, "nginx:1.17") {
			t.Errorf("apps/flask.yaml on the server:\n%s", got)
		}
	})

	t.Run("token", func(t *testing.T) {
		// No user name: any works with a token (the default is "git").
		r := open(t, git.HTTPSAuth{PasswordFile: writeFile(t, dir, "token", "tok-8f14e45fceea167a\n")}, hs.CABundle)
		before, _ := testenv.Head(w.path, "main")
		res, err := r.Update(ctxT(t), replaceEdit("README.md", "readme", "demo", "demo (token)"))
		if err != nil || res.Commit.IsZero() || res.Base != before.Hash {
			t.Fatalf("update with a token: %+v %v", res, err)
		}
		if got, _ := testenv.ReadFile(w.path, "main", "README.md"); got != "demo (token)\n" {
			t.Errorf("README.md = %q", got)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		before, _ := testenv.Head(w.path, "main")
		refused := hs.Refused()
		pass := writeFile(t, dir, "wrong", "battery staple\n")
		r := open(t, git.HTTPSAuth{Username: "alice", PasswordFile: pass}, hs.CABundle)
		_, err := r.Update(ctxT(t), setImage("flask", "registry.example.com/team/flaskapp:develop-v9"))
		if !errors.Is(err, git.ErrAuth) || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), `"alice"`) || !strings.Contains(err.Error(), pass) {
			t.Fatalf("err = %v; want ErrAuth naming %s, the user and the password file", err, url)
		}
		if strings.Contains(err.Error(), "battery") {
			t.Errorf("the error shows the password: %v", err)
		}
		t.Logf("wrong password: %v", err)
		if hs.Refused() == refused {
			t.Error("the server refused nothing: the request never reached it")
		}
		if after, _ := testenv.Head(w.path, "main"); after.Hash != before.Hash {
			t.Errorf("the branch moved to %s", after.Hash)
		}
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		// Without the test CA the server's certificate is not trusted: a clear TLS error,
		// never a silent downgrade.
		r := open(t, git.HTTPSAuth{Username: "alice", PasswordFile: writeFile(t, dir, "password2", "correct horse")}, nil)
		_, err := r.Fetch(ctxT(t))
		if err == nil || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v; want a certificate error naming %s", err, url)
		}
		t.Logf("untrusted certificate: %v", err)
	})
}
