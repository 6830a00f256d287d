package testenv_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"imagebot.dev/imagebot/internal/testenv"
)

// healthWait is how long TestWorldStaysHealthy watches a world: well past the node lifecycle
// controller's 50 s grace period and kwok's heartbeat and lease periods, several times over.
const healthWait = 5 * time.Minute

// TestWorldStaysHealthy starts a world with a Deployment of 2 replicas and watches it for
// healthWait: the kwok node must stay Ready the whole time with its Lease renewed (kube-node-lease),
// and the Deployment must keep 2 available replicas with both pods Ready. As a positive
// control, the node's Ready condition must have been re-written (lastHeartbeatTime advancing)
// during the wait, so a stale node would have been seen.
func TestWorldStaysHealthy(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, testenv.Options{Cluster: true})
	client := e.Cluster.Client
	ctx, cancel := context.WithTimeout(context.Background(), healthWait+3*time.Minute)
	defer cancel()

	dep := nginxDeployment("steady", 2)
	if _, err := client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rollout, cancelRollout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelRollout()
	for {
		d, err := client.AppsV1().Deployments("default").Get(rollout, "steady", metav1.GetOptions{})
		if err == nil && d.Status.AvailableReplicas == 2 {
			break
		}
		if rollout.Err() != nil {
			t.Fatalf("deployment steady did not become available: %v %+v", err, d.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("deployment steady available 2/2 after %v; watching for %v", time.Since(start).Round(time.Millisecond), healthWait)

	// Watch: the node through a watch (kwok answers a NotReady node within a second, so only a
	// watch sees a flap), the lease, Deployment and pods by one look every 5 s; a progress line
	// every 30 s; every unhealthy moment kept.
	var (
		problems []problem
		last     observation
		looks    int
	)
	watchStart := time.Now()
	since := func() time.Duration { return time.Since(watchStart).Round(time.Second) }
	node := watchNode(ctx, t, e, since)
	nextLog := watchStart
	for {
		last = observe(ctx, e)
		looks++
		if p := last.problem(); p != "" {
			problems = append(problems, problem{since(), p})
		}
		if time.Now().After(nextLog) {
			t.Logf("+%v: %s", since(), last)
			nextLog = nextLog.Add(30 * time.Second)
		}
		if time.Since(watchStart) >= healthWait || ctx.Err() != nil {
			break
		}
		time.Sleep(5 * time.Second)
	}
	heartbeats, notReady, updates := node.stop()
	problems = append(problems, notReady...)
	if ctx.Err() != nil {
		t.Fatalf("watch cut short after %v: %v", time.Since(watchStart).Round(time.Second), ctx.Err())
	}
	t.Logf("end +%v: %s", time.Since(watchStart).Round(time.Second), last)

	if len(problems) > 0 {
		t.Errorf("the world was unhealthy (%d looks, %d node updates watched):\n  %s",
			looks, updates, strings.Join(summarize(problems), "\n  "))
	}
	// Positive control: the node's status was being re-written while we watched, so a node
	// whose writer had stopped would have shown a stale heartbeat and, 50 s on, NotReady.
	if len(heartbeats) < 3 {
		t.Errorf("the node's Ready lastHeartbeatTime advanced %d times in %v (values %v), want at least 2: "+
			"the watch could not tell a live node from a stale one", max(len(heartbeats)-1, 0), healthWait, heartbeats)
	} else {
		t.Logf("the node's Ready lastHeartbeatTime advanced %d times during the wait (%d node updates watched)", len(heartbeats)-1, updates)
	}
	// The final state, checked afresh.
	final := observe(ctx, e)
	if p := final.problem(); p != "" {
		t.Errorf("after %v: %s", healthWait, p)
	}
}

// observation is one look at the world's health.
type observation struct {
	at                 time.Time
	nodeReady          string // the Ready condition's status, or the error getting the node
	heartbeat          time.Time
	leaseRenew         time.Time
	leaseErr           error
	available, podsRdy int
	pods               int
	depErr, podsErr    error
}

func observe(ctx context.Context, e *testenv.Env) observation {
	c := e.Cluster.Client
	o := observation{at: time.Now(), nodeReady: "missing"}
	if n, err := c.CoreV1().Nodes().Get(ctx, testenv.NodeName, metav1.GetOptions{}); err != nil {
		o.nodeReady = err.Error()
	} else {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				o.nodeReady = string(cond.Status)
				o.heartbeat = cond.LastHeartbeatTime.Time
			}
		}
	}
	if l, err := c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, testenv.NodeName, metav1.GetOptions{}); err != nil {
		o.leaseErr = err
	} else if l.Spec.RenewTime != nil {
		o.leaseRenew = l.Spec.RenewTime.Time
	}
	if d, err := c.AppsV1().Deployments("default").Get(ctx, "steady", metav1.GetOptions{}); err != nil {
		o.depErr = err
	} else {
		o.available = int(d.Status.AvailableReplicas)
	}
	if pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=steady"}); err != nil {
		o.podsErr = err
	} else {
		o.pods = len(pods.Items)
		for _, p := range pods.Items {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue &&
					p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == testenv.NodeName {
					o.podsRdy++
				}
			}
		}
	}
	return o
}

// problem says what is unhealthy, or "".
func (o observation) problem() string {
	var p []string
	if o.nodeReady != string(corev1.ConditionTrue) {
		p = append(p, "node Ready="+o.nodeReady)
	}
	switch {
	case o.leaseErr != nil:
		p = append(p, "node lease: "+o.leaseErr.Error())
	case o.leaseRenew.IsZero():
		p = append(p, "node lease never renewed")
	case o.at.Sub(o.leaseRenew) > 60*time.Second:
		p = append(p, fmt.Sprintf("node lease renewed %v ago", o.at.Sub(o.leaseRenew).Round(time.Second)))
	}
	if o.depErr != nil {
		p = append(p, "deployment: "+o.depErr.Error())
	} else if o.available != 2 {
		p = append(p, fmt.Sprintf("deployment available %d/2", o.available))
	}
	if o.podsErr != nil {
		p = append(p, "pods: "+o.podsErr.Error())
	} else if o.podsRdy != 2 || o.pods != 2 {
		p = append(p, fmt.Sprintf("pods Ready %d of %d (want 2 of 2)", o.podsRdy, o.pods))
	}
	return strings.Join(p, "; ")
}

func (o observation) String() string {
	lease := "none"
	if o.leaseErr == nil && !o.leaseRenew.IsZero() {
		lease = fmt.Sprintf("renewed %v ago", o.at.Sub(o.leaseRenew).Round(time.Second))
	}
	hb := "none"
	if !o.heartbeat.IsZero() {
		hb = fmt.Sprintf("%v ago", o.at.Sub(o.heartbeat).Round(time.Second))
	}
	return fmt.Sprintf("node Ready=%s (heartbeat %s), lease %s, deployment available %d/2, pods Ready %d/%d",
		o.nodeReady, hb, lease, o.available, o.podsRdy, o.pods)
}

// nodeWatch follows the node through a watch and keeps every Ready status other than True
// and every distinct lastHeartbeatTime of its Ready condition.
type nodeWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex

	heartbeats []time.Time
	notReady   []problem
	updates    int
}

func watchNode(ctx context.Context, t *testing.T, e *testenv.Env, since func() time.Duration) *nodeWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &nodeWatch{cancel: cancel, done: make(chan struct{})}
	nodes := e.Cluster.Client.CoreV1().Nodes()
	see := func(n *corev1.Node) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.updates++
		status, reason := "missing", ""
		for _, c := range n.Status.Conditions {
			if c.Type != corev1.NodeReady {
				continue
			}
			status, reason = string(c.Status), c.Reason
			hb := c.LastHeartbeatTime.Time
			if k := len(w.heartbeats); !hb.IsZero() && (k == 0 || !hb.Equal(w.heartbeats[k-1])) {
				w.heartbeats = append(w.heartbeats, hb)
			}
		}
		if status != string(corev1.ConditionTrue) {
			w.notReady = append(w.notReady, problem{since(), fmt.Sprintf("node Ready=%s (%s)", status, reason)})
		}
	}
	go func() {
		defer close(w.done)
		rv := ""
		for ctx.Err() == nil {
			if rv == "" {
				n, err := nodes.Get(ctx, testenv.NodeName, metav1.GetOptions{})
				if err != nil {
					if ctx.Err() == nil {
						t.Logf("get node: %v", err)
						time.Sleep(time.Second)
					}
					continue
				}
				see(n)
				rv = n.ResourceVersion
			}
			wi, err := nodes.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + testenv.NodeName, ResourceVersion: rv})
			if err != nil {
				rv = ""
				continue
			}
			for ev := range wi.ResultChan() {
				n, ok := ev.Object.(*corev1.Node)
				if !ok { // an error event (e.g. 410 Gone): start again from a fresh Get
					rv = ""
					break
				}
				if ev.Type == watch.Deleted {
					w.mu.Lock()
					w.notReady = append(w.notReady, problem{since(), "node deleted"})
					w.mu.Unlock()
					continue
				}
				see(n)
				rv = n.ResourceVersion
			}
			wi.Stop()
		}
	}()
	return w
}

func (w *nodeWatch) stop() (heartbeats []time.Time, notReady []problem, updates int) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.heartbeats, w.notReady, w.updates
}

// problem is something unhealthy seen at a time since the watch began.
type problem struct {
	at   time.Duration
	what string
}

// summarize orders problems by time and folds a run of the same problem into one line.
func summarize(ps []problem) []string {
	slices.SortStableFunc(ps, func(a, b problem) int { return cmp.Compare(a.at, b.at) })
	var out []string
	for i := 0; i < len(ps); {
		j := i + 1
		for j < len(ps) && ps[j].what == ps[i].what {
			j++
		}
		switch {
		case j-i == 1:
			out = append(out, fmt.Sprintf("at +%v: %s", ps[i].at, ps[i].what))
		case ps[i].at == ps[j-1].at:
			out = append(out, fmt.Sprintf("at +%v (%d times): %s", ps[i].at, j-i, ps[i].what))
		default:
			out = append(out, fmt.Sprintf("+%v to +%v (%d times): %s", ps[i].at, ps[j-1].at, j-i, ps[i].what))
		}
		i = j
	}
	return out
}
