package daemon

import (
	"context"
	"fmt"
	"strings"
	gosync "sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"imagebot.dev/imagebot/internal/scan"
)

// pullSecrets is a scan.KeychainProvider over the cluster: a workload's imagePullSecrets
// and its service account's, read through the API and cached for ttl (a rotated secret is
// seen within that time).
type pullSecrets struct {
	client kubernetes.Interface
	ttl    time.Duration

	mu    gosync.Mutex
	cache map[string]cachedCreds
}

type cachedCreds struct {
	creds scan.Credentials
	at    time.Time
}

// PullSecretKeychains reads pull secrets through client, caching them for a minute.
func PullSecretKeychains(client kubernetes.Interface) scan.KeychainProvider {
	return &pullSecrets{client: client, ttl: time.Minute, cache: map[string]cachedCreds{}}
}

func (p *pullSecrets) Credentials(ctx context.Context, w scan.Workload) (scan.Credentials, error) {
	sa := w.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	key := w.Namespace + "/" + sa + "/" + strings.Join(w.PullSecrets, ",")
	p.mu.Lock()
	c, ok := p.cache[key]
	p.mu.Unlock()
	if ok && time.Since(c.at) < p.ttl {
		return c.creds, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	names := append([]string(nil), w.PullSecrets...)
	acct, err := p.client.CoreV1().ServiceAccounts(w.Namespace).Get(ctx, sa, metav1.GetOptions{})
	switch {
	case err == nil:
		for _, ref := range acct.ImagePullSecrets {
			names = append(names, ref.Name)
		}
	case apierrors.IsNotFound(err):
	default:
		return scan.Credentials{}, fmt.Errorf("pull secrets of %s/%s: serviceaccount: %w", w.Namespace, sa, err)
	}
	var secrets []scan.Secret
	for _, n := range names {
		s, err := p.client.CoreV1().Secrets(w.Namespace).Get(ctx, n, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // as the kubelet does: a missing pull secret is not fatal
		}
		if err != nil {
			return scan.Credentials{}, fmt.Errorf("pull secret %s/%s: %w", w.Namespace, n, err)
		}
		if s.Type == corev1.SecretTypeDockerConfigJson || s.Type == corev1.SecretTypeDockercfg {
			secrets = append(secrets, scan.Secret{Namespace: s.Namespace, Name: s.Name, Type: string(s.Type), Data: s.Data})
		}
	}
	creds := scan.Credentials{}
	if len(secrets) > 0 {
		if creds, err = scan.SecretsCredentials(secrets...); err != nil {
			return scan.Credentials{}, err
		}
	}
	p.mu.Lock()
	p.cache[key] = cachedCreds{creds: creds, at: time.Now()}
	p.mu.Unlock()
	return creds, nil
}
