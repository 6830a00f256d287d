package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// ErrHealthTimeout is returned when objects are not all Current when the wait ends.
var ErrHealthTimeout = errors.New("health check timed out")

// ErrUnhealthy is returned when an object's status is Failed.
var ErrUnhealthy = errors.New("unhealthy")

// Health is the kstatus status of one object: Current, InProgress, Failed, Terminating,
// NotFound or Unknown, with kstatus's message.
type Health struct {
	Ref     ObjectRef
	Status  status.Status
	Message string
}

// WaitOptions tunes Wait.
type WaitOptions struct {
	// Timeout bounds the wait (default 2m); Interval is the time between polls (default 500ms).
	Timeout, Interval time.Duration
	// Owner scopes the LISTs that read objects (see ApplyOptions.Owner).
	Owner string

	cache cacheSource
}

// Wait polls objs until kstatus reports each Current, one Failed, or the timeout; it returns
// every object's last health, and ErrUnhealthy or ErrHealthTimeout (joined with the objects
// concerned, Kind/ns/name: status: message).
func (m *Manager) Wait(ctx context.Context, objs []*unstructured.Unstructured, opts WaitOptions) ([]Health, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.Interval <= 0 {
		opts.Interval = 500 * time.Millisecond
	}
	deadline := time.Now().Add(opts.Timeout)
	for {
		hs := m.Health(ctx, objs, opts)
		var failed, pending []error
		for _, h := range hs {
			switch h.Status {
			case status.CurrentStatus:
			case status.FailedStatus:
				failed = append(failed, objErrf(h.Ref, "%s: %s", h.Status, h.Message))
			default:
				pending = append(pending, objErrf(h.Ref, "%s: %s", h.Status, h.Message))
			}
		}
		switch {
		case len(failed) > 0:
			return hs, fmt.Errorf("%w: %w", ErrUnhealthy, errors.Join(failed...))
		case len(pending) == 0:
			return hs, nil
		case ctx.Err() != nil:
			return hs, fmt.Errorf("%w: %w", context.Cause(ctx), errors.Join(pending...))
		case time.Now().After(deadline):
			return hs, fmt.Errorf("%w after %v: %w", ErrHealthTimeout, opts.Timeout, errors.Join(pending...))
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(opts.Interval, time.Until(deadline)+time.Millisecond)):
		}
	}
}

// Health reads objs once and computes each one's health.
func (m *Manager) Health(ctx context.Context, objs []*unstructured.Unstructured, opts WaitOptions) []Health {
	r := m.newReader(opts.Owner, opts.cache)
	out := make([]Health, len(objs))
	m.forEach(ctx, len(objs), func(i int) {
		out[i] = m.healthOf(ctx, r, objs[i])
	})
	for i, o := range objs {
		if out[i].Status == "" {
			out[i] = Health{Ref: RefOf(o), Status: status.UnknownStatus, Message: "not read"}
		}
	}
	return out
}

func (m *Manager) healthOf(ctx context.Context, r *liveReader, obj *unstructured.Unstructured) Health {
	h := Health{Ref: RefOf(obj), Status: status.UnknownStatus}
	mp, err := m.mapping(obj.GroupVersionKind())
	if err != nil {
		h.Message = err.Error()
		return h
	}
	live, err := r.get(ctx, mp, obj.GetNamespace(), obj.GetName())
	switch {
	case err != nil:
		h.Message = err.Error()
	case live == nil:
		h.Status, h.Message = status.NotFoundStatus, "not found"
	default:
		res, err := status.Compute(live)
		if err != nil {
			h.Message = err.Error()
			return h
		}
		h.Status, h.Message = res.Status, res.Message
	}
	return h
}
