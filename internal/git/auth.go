package git

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHAuth is how to reach a repository over SSH: a deploy key from a file and, by default,
// strict host key checking against a known_hosts file.
type SSHAuth struct {
	User           string // default "git"
	KeyFile        string // private key: ed25519, ECDSA or RSA, OpenSSH or PEM format
	PassphraseFile string // optional; the passphrase of an encrypted key
	KnownHosts     string // known_hosts file; required unless InsecureIgnoreHostKey
	// InsecureIgnoreHostKey accepts any host key. It exists for throwaway setups only; the
	// daemon logs a loud warning at every start when it is on.
	InsecureIgnoreHostKey bool
}

// HTTPSAuth is how to reach a repository over HTTPS: a token or a user and password, read
// from files (never from flags).
type HTTPSAuth struct {
	Username     string // with a token, any non-empty name works for most hosts; default "git"
	PasswordFile string // a password or token
}

// Method builds the go-git auth method. Errors name the file that could not be used.
func (a SSHAuth) Method() (transport.AuthMethod, error) {
	user := a.User
	if user == "" {
		user = "git"
	}
	signer, err := readSigner(a.KeyFile, a.PassphraseFile)
	if err != nil {
		return nil, err
	}
	keys := &gitssh.PublicKeys{User: user, Signer: signer}
	fp := ssh.FingerprintSHA256(keys.Signer.PublicKey())
	switch {
	case a.InsecureIgnoreHostKey:
		keys.HostKeyCallback = ssh.InsecureIgnoreHostKey() //nolint:gosec // explicit opt-out
	case a.KnownHosts == "":
		return nil, fmt.Errorf("ssh auth: no known_hosts file given (strict host key checking is the default; set one, or opt out explicitly)")
	default:
		cb, err := knownhosts.New(a.KnownHosts)
		if err != nil {
			return nil, fmt.Errorf("load known_hosts %s: %w", a.KnownHosts, err)
		}
		keys.HostKeyCallback = hostKeyCallback(cb, a.KnownHosts)
	}
	return &deployKey{PublicKeys: keys, fingerprint: fp}, nil
}

// readSigner reads a private key file, decrypting it with the passphrase in passphraseFile
// when it is encrypted. Its errors start "deploy key FILE" and say what to fix; they never
// show the passphrase.
func readSigner(keyFile, passphraseFile string) (ssh.Signer, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("deploy key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		if err != nil {
			return nil, fmt.Errorf("deploy key %s: %w", keyFile, err)
		}
		return signer, nil // not encrypted: a passphrase file, if any, is not needed
	}
	if passphraseFile == "" {
		return nil, fmt.Errorf("deploy key %s is encrypted and no passphrase file is given", keyFile)
	}
	pb, err := os.ReadFile(passphraseFile)
	if err != nil {
		return nil, fmt.Errorf("deploy key %s: read its passphrase: %w", keyFile, err)
	}
	pass := strings.TrimRight(string(pb), "\r\n")
	if pass == "" {
		return nil, fmt.Errorf("deploy key %s is encrypted and its passphrase file %s is empty", keyFile, passphraseFile)
	}
	signer, err = ssh.ParsePrivateKeyWithPassphrase(b, []byte(pass))
	switch {
	case errors.Is(err, x509.IncorrectPasswordError):
		return nil, fmt.Errorf("deploy key %s: wrong passphrase (in %s)", keyFile, passphraseFile)
	case err != nil:
		return nil, fmt.Errorf("deploy key %s: decrypt with the passphrase in %s: %w", keyFile, passphraseFile, err)
	}
	return signer, nil
}

// deployKey remembers the key's fingerprint so that errors can name it.
type deployKey struct {
	*gitssh.PublicKeys
	fingerprint string
}

// hostKeyCallback wraps known_hosts errors with what to do about them.
func hostKeyCallback(cb ssh.HostKeyCallback, file string) ssh.HostKeyCallback {
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(host, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			if len(ke.Want) == 0 {
				return fmt.Errorf("%w: host key %s %s of %s is not in %s", ErrHostKey, key.Type(), ssh.FingerprintSHA256(key), host, file)
			}
			return fmt.Errorf("%w: host key %s %s of %s does not match %s (it may have changed, or this is not the expected server)", ErrHostKey, key.Type(), ssh.FingerprintSHA256(key), host, file)
		}
		return err
	}
}

// Method builds the go-git auth method.
func (a HTTPSAuth) Method() (transport.AuthMethod, error) {
	b, err := os.ReadFile(a.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("read https password or token: %w", err)
	}
	user := a.Username
	if user == "" {
		user = "git"
	}
	return &httpsCreds{BasicAuth: &http.BasicAuth{Username: user, Password: strings.TrimRight(string(b), "\r\n")},
		file: a.PasswordFile}, nil
}

// httpsCreds remembers where the password came from so that errors can name the file (never
// the password).
type httpsCreds struct {
	*http.BasicAuth
	file string
}

// explainAuth turns transport errors into ones that say what to check, naming the deploy key
// by fingerprint (never its content).
func explainAuth(err error, auth transport.AuthMethod) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrHostKey) {
		return err
	}
	msg := err.Error()
	if dk, ok := auth.(*deployKey); ok && (strings.Contains(msg, "unable to authenticate") || errors.Is(err, transport.ErrAuthorizationFailed) || errors.Is(err, transport.ErrAuthenticationRequired)) {
		return fmt.Errorf("%w: the server refused deploy key %s (is it added to the repository, with write access?): %v", ErrAuth, dk.fingerprint, err)
	}
	refused := errors.Is(err, transport.ErrAuthorizationFailed) || errors.Is(err, transport.ErrAuthenticationRequired)
	if hc, ok := auth.(*httpsCreds); ok && refused {
		return fmt.Errorf("%w: the server refused user %q with the password or token in %s (is it current, with write access?): %s",
			ErrAuth, hc.Username, hc.file, strings.TrimSpace(err.Error()))
	}
	if refused {
		return fmt.Errorf("%w: %s", ErrAuth, strings.TrimSpace(err.Error()))
	}
	return err
}

// KeyType names the kinds of deploy key GenerateKey makes.
type KeyType string

const (
	KeyEd25519 KeyType = "ed25519"
	KeyECDSA   KeyType = "ecdsa" // P-256
	KeyRSA     KeyType = "rsa"   // 4096 bits
)

// GenerateKey writes a new private key (OpenSSH format, mode 0600) to path and its public
// half to path.pub, and returns the public key in authorized_keys format. It refuses to
// overwrite an existing key.
func GenerateKey(path string, kind KeyType, comment string) (string, error) {
	var priv any
	switch kind {
	case KeyEd25519, "":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", err
		}
		priv = k
	case KeyECDSA:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", err
		}
		priv = k
	case KeyRSA:
		k, err := rsa.GenerateKey(rand.Reader, 4096)
		if err != nil {
			return "", err
		}
		priv = k
	default:
		return "", fmt.Errorf("generate key: unknown key type %q (want ed25519, ecdsa or rsa)", kind)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	if _, err := f.Write(pem.EncodeToMemory(block)); err != nil {
		f.Close()
		return "", fmt.Errorf("generate key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("generate key %s: %w", path, err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	if comment != "" {
		line += " " + comment
	}
	if err := os.WriteFile(path+".pub", []byte(line+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("generate key %s.pub: %w", path, err)
	}
	return line, nil
}

// PublicKey reads a private key file and returns its public half in authorized_keys format
// and its SHA256 fingerprint, as `ssh-keygen -l` prints it.
func PublicKey(keyFile, passphraseFile string) (authorized, fingerprint string, err error) {
	signer, err := readSigner(keyFile, passphraseFile)
	if err != nil {
		return "", "", err
	}
	pub := signer.PublicKey()
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))), ssh.FingerprintSHA256(pub), nil
}

// ReadSigningKey reads an armored OpenPGP private key for signing commits, decrypting it
// with the passphrase in passphraseFile when one is given.
func ReadSigningKey(keyFile, passphraseFile string) (*openpgp.Entity, error) {
	f, err := os.Open(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	defer f.Close()
	ring, err := openpgp.ReadArmoredKeyRing(f)
	if err != nil {
		return nil, fmt.Errorf("read signing key %s: %w", keyFile, err)
	}
	if len(ring) == 0 || ring[0].PrivateKey == nil {
		return nil, fmt.Errorf("read signing key %s: no private key in it", keyFile)
	}
	key := ring[0]
	if key.PrivateKey.Encrypted {
		if passphraseFile == "" {
			return nil, fmt.Errorf("signing key %s is encrypted and no passphrase file is given", keyFile)
		}
		pass, err := os.ReadFile(passphraseFile)
		if err != nil {
			return nil, fmt.Errorf("read signing key passphrase: %w", err)
		}
		if err := key.PrivateKey.Decrypt([]byte(strings.TrimRight(string(pass), "\r\n"))); err != nil {
			return nil, fmt.Errorf("decrypt signing key %s: %w", keyFile, err)
		}
	}
	return key, nil
}
