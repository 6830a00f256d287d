package sync

import (
	"context"
	"errors"
	"fmt"
	stdsync "sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Options configures a Manager. The zero value gets the defaults in doc.go.
type Options struct {
	// FieldManager is the server-side apply field manager (default "imagebot").
	FieldManager string
	// QPS and Burst bound the client's request rate. A config with lower limits is raised to
	// these (defaults 200 and 400): bulk applies of thousands of objects need them (at the
	// client-go default of 5, 1,000 objects take minutes; at 100, 9s; at 200, the API server is
	// the limit). Priority and fairness on the server keeps other clients served.
	QPS   float32
	Burst int
	// Concurrency is how many objects are applied, compared or deleted at once (default 8).
	Concurrency int
	// TakeOver lists the field managers whose fields imagebot takes over, so that what git
	// declares wins over `kubectl edit/apply/scale/set` (default DefaultTakeOver). Entries of
	// subresources (the scale and status subresources) are left alone.
	TakeOver []string
	// CRDTimeout bounds the wait for applied CRDs to be Established (default 30s).
	CRDTimeout time.Duration
}

// DefaultTakeOver is the default Options.TakeOver: the managers kubectl writes as.
var DefaultTakeOver = []string{
	"kubectl", "kubectl-client-side-apply", "kubectl-edit", "kubectl-scale", "kubectl-set",
	"kubectl-patch", "kubectl-replace", "kubectl-create", "before-first-apply",
}

func (o Options) withDefaults() Options {
	if o.FieldManager == "" {
		o.FieldManager = DefaultFieldManager
	}
	if o.QPS == 0 {
		o.QPS = 200
	}
	if o.Burst == 0 {
		o.Burst = 400
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.TakeOver == nil {
		o.TakeOver = DefaultTakeOver
	}
	if o.CRDTimeout == 0 {
		o.CRDTimeout = 30 * time.Second
	}
	return o
}

// Manager applies, compares, prunes and health-checks objects in one cluster. It is safe for
// concurrent use; one Manager serves every Syncer of a cluster.
type Manager struct {
	opts     Options
	dynamic  dynamic.Interface
	metadata metadata.Interface
	disco    discovery.CachedDiscoveryInterface
	mapper   *restmapper.DeferredDiscoveryRESTMapper

	resetMu   stdsync.Mutex
	lastReset time.Time
	mappings  stdsync.Map // schema.GroupVersionKind → *meta.RESTMapping, cleared on reset
}

// New returns a Manager for the cluster cfg points at.
func New(cfg *rest.Config, opts Options) (*Manager, error) {
	opts = opts.withDefaults()
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS < opts.QPS {
		cfg.QPS = opts.QPS
	}
	if cfg.Burst < opts.Burst {
		cfg.Burst = opts.Burst
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second // every request has a deadline; watches are exempt
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	md, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("metadata client: %w", err)
	}
	cached := memory.NewMemCacheClient(dc)
	return &Manager{
		opts:     opts,
		dynamic:  dyn,
		metadata: md,
		disco:    cached,
		mapper:   restmapper.NewDeferredDiscoveryRESTMapper(cached),
	}, nil
}

// FieldManager returns the name imagebot applies as.
func (m *Manager) FieldManager() string { return m.opts.FieldManager }

// mapping returns the REST mapping of gvk, refreshing discovery once when the kind is unknown
// (a CRD applied since the last look).
func (m *Manager) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	if mp, ok := m.mappings.Load(gvk); ok {
		return mp.(*meta.RESTMapping), nil
	}
	mp, err := m.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil && meta.IsNoMatchError(err) && m.resetDiscovery(time.Second) {
		mp, err = m.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, err
	}
	m.mappings.Store(gvk, mp)
	return mp, nil
}

// resetDiscovery forgets cached discovery unless that was done less than minAge ago, and
// reports whether it did.
func (m *Manager) resetDiscovery(minAge time.Duration) bool {
	m.resetMu.Lock()
	defer m.resetMu.Unlock()
	if minAge > 0 && time.Since(m.lastReset) < minAge {
		return false
	}
	m.mapper.Reset()
	m.mappings.Clear()
	m.lastReset = time.Now()
	return true
}

// resource returns the client for one object of mapping mp in namespace ns.
func (m *Manager) resource(mp *meta.RESTMapping, ns string) dynamic.ResourceInterface {
	if mp.Scope.Name() == meta.RESTScopeNameNamespace {
		return m.dynamic.Resource(mp.Resource).Namespace(ns)
	}
	return m.dynamic.Resource(mp.Resource)
}

// forEach runs fn on 0..n-1 with at most Concurrency at once, stopping early when ctx ends.
func (m *Manager) forEach(ctx context.Context, n int, fn func(i int)) {
	sem := make(chan struct{}, m.opts.Concurrency)
	var wg stdsync.WaitGroup
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

// errUnknownKind is returned when neither the cluster nor the render defines a kind.
var errUnknownKind = errors.New("unknown kind: no such API in the cluster (is its CRD applied?)")
