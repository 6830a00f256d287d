package daemon

import (
	"context"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderElection makes replicas of the daemon take turns: only the holder of a Lease runs
// the bots (so two replicas never both write), the others serve health and metrics and
// wait. Durations default to Kubernetes' own (15s lease, 10s renew deadline, 2s retry).
type LeaderElection struct {
	Config    *rest.Config
	Namespace string // of the Lease
	Name      string // of the Lease; default "imagebot"
	Identity  string // default: hostname + pid

	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// lead runs work while this process holds the lease. Losing the lease after holding it
// cancels work and returns an error: the process should exit and start afresh, as
// controllers do, rather than risk a second writer.
func (d *Daemon) lead(ctx context.Context, le *LeaderElection, work func(context.Context)) error {
	client, err := kubernetes.NewForConfig(le.Config)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	id := le.Identity
	if id == "" {
		host, _ := os.Hostname()
		id = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	name := le.Name
	if name == "" {
		name = "imagebot"
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, le.Namespace, name, nil,
		client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: id})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	def := func(v, d time.Duration) time.Duration {
		if v <= 0 {
			return d
		}
		return v
	}
	led := false
	cfg := leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   def(le.LeaseDuration, 15*time.Second),
		RenewDeadline:   def(le.RenewDeadline, 10*time.Second),
		RetryPeriod:     def(le.RetryPeriod, 2*time.Second),
		ReleaseOnCancel: true,
		Name:            name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				led = true
				d.log.Info("leading: starting the repositories", "lease", le.Namespace+"/"+name, "identity", id)
				work(ctx)
			},
			OnStoppedLeading: func() { d.log.Info("not leading", "lease", le.Namespace+"/"+name, "identity", id) },
			OnNewLeader: func(leader string) {
				if leader != id {
					d.log.Info("another replica leads", "leader", leader)
				}
			},
		},
	}
	elector, err := leaderelection.NewLeaderElector(cfg)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	elector.Run(ctx) // returns when ctx ends or the lease is lost
	if ctx.Err() == nil && led {
		return fmt.Errorf("leader election: lost the lease %s/%s", le.Namespace, name)
	}
	return nil
}
