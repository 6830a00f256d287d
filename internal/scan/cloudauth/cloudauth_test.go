package cloudauth

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestHosts(t *testing.T) {
	ecrHost := func(h string) bool { return ECR().(*cached).serves(h) }
	for _, tc := range []struct {
		host                   string
		isECR, isGoogle, isACR bool
	}{
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com", true, false, false},
		{"123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", true, false, false},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", true, false, false},
		{"gcr.io", false, true, false},
		{"eu.gcr.io", false, true, false},
		{"europe-west1-docker.pkg.dev", false, true, false},
		{"myreg.azurecr.io", false, false, true},
		{"myreg.azurecr.me", false, false, false},
		{"index.docker.io", false, false, false},
		{"ghcr.io", false, false, false},
		{"evil.gcr.io.example.com", false, false, false},
		{"127.0.0.1:5000", false, false, false},
	} {
		if ecrHost(tc.host) != tc.isECR || isGoogle(tc.host) != tc.isGoogle || acrHost.MatchString(tc.host) != tc.isACR {
			t.Errorf("%s: ecr %v google %v acr %v, want %v %v %v", tc.host, ecrHost(tc.host), isGoogle(tc.host),
				acrHost.MatchString(tc.host), tc.isECR, tc.isGoogle, tc.isACR)
		}
	}
}

type countingKeychain struct{ n atomic.Int64 }

func (k *countingKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	n := k.n.Add(1)
	return &authn.Basic{Username: "AWS", Password: "token-" + string(rune('0'+n))}, nil
}

func TestCachedResolvesOnlyItsHostsAndReuses(t *testing.T) {
	inner := &countingKeychain{}
	c := newCached(func(h string) bool { return h == "cloud.example.com" }, inner, time.Hour)
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	other, _ := name.NewRepository("index.docker.io/library/nginx")
	if a, _ := c.Resolve(other); a != authn.Anonymous || inner.n.Load() != 0 {
		t.Fatalf("another host: %v, %d calls", a, inner.n.Load())
	}
	mine, _ := name.NewRepository("cloud.example.com/app")
	first, _ := c.Resolve(mine)
	again, _ := c.Resolve(mine)
	if inner.n.Load() != 1 || first != again {
		t.Errorf("%d calls within the TTL, want 1", inner.n.Load())
	}
	now = now.Add(2 * time.Hour)
	later, _ := c.Resolve(mine)
	cfg, _ := later.Authorization()
	if inner.n.Load() != 2 || cfg.Password != "token-2" {
		t.Errorf("after the TTL: %d calls, %+v", inner.n.Load(), cfg)
	}
}

func TestKeychainWithoutCloudIsAnonymous(t *testing.T) {
	// No cloud credentials in the test environment: every host resolves anonymously
	// and no error surfaces.
	t.Setenv("AZURE_CLIENT_ID", "")
	repo, _ := name.NewRepository("myreg.azurecr.io/app")
	a, err := Azure().Resolve(repo)
	if err != nil || a != authn.Anonymous {
		t.Errorf("Azure without credentials: %v, %v", a, err)
	}
}
