package testenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Cluster is a Kubernetes control plane on loopback: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, and kwok managing the fake node NodeName.
type Cluster struct {
	Dir string
	// Kubeconfig is the path of an admin kubeconfig; Config the same as a *rest.Config.
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface

	server string
	caData []byte
	procs  []*process // in start order
}

// NodeName is the fake node kwok manages in every cluster.
const NodeName = "kwok-node-0"

// StartCluster starts a control plane with its state in dir.
func StartCluster(ctx context.Context, dir string) (c *Cluster, err error) {
	bins := map[string]string{}
	for _, b := range []struct{ name, fallback string }{
		{"etcd", "/usr/bin/etcd"}, {"kube-apiserver", ""}, {"kube-controller-manager", ""},
		{"kube-scheduler", ""}, {"kwok", ""},
	} {
		if bins[b.name], err = binary(b.name, b.fallback); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(7)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort, kcmPort, schedPort, kwokPort, kwokMetrics := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]
	c = &Cluster{Dir: dir, server: fmt.Sprintf("https://127.0.0.1:%d", apiPort)}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()

	// etcd
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd, err := c.start("etcd", bins["etcd"],
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := etcd.waitFor(ctx, "etcd healthy", httpCheck(http.DefaultClient, etcdURL+"/health", "")); err != nil {
		return nil, err
	}

	// kube-apiserver
	token := randomHex(16)
	saKey, saPub := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := writeServiceAccountKeys(saKey, saPub); err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "certs")
	api, err := c.start("kube-apiserver", bins["kube-apiserver"],
		"--etcd-servers", etcdURL,
		"--secure-port", strconv.Itoa(apiPort), "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--cert-dir", certDir,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saPub, "--service-account-signing-key-file", saKey,
		"--token-auth-file", tokens, "--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.0.0.0/24",
		"--disable-admission-plugins", "ServiceAccount",
		"--allow-privileged", "--profiling=false", "--v", "1")
	if err != nil {
		return nil, err
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // readiness probes only
	if err := api.waitFor(ctx, "kube-apiserver ready", httpCheck(insecure, c.server+"/readyz", token)); err != nil {
		return nil, err
	}
	if c.caData, err = os.ReadFile(filepath.Join(certDir, "apiserver.crt")); err != nil {
		return nil, fmt.Errorf("read the apiserver's certificate: %w", err)
	}
	c.Config = &rest.Config{Host: c.server, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: c.caData}, QPS: 100, Burst: 200}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.server, c.caData, "admin", token); err != nil {
		return nil, err
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, err
	}

	// Controllers, scheduler and kwok.
	common := []string{"--kubeconfig", c.Kubeconfig, "--authentication-kubeconfig", c.Kubeconfig,
		"--authorization-kubeconfig", c.Kubeconfig, "--bind-address", "127.0.0.1", "--leader-elect=false"}
	kcm, err := c.start("kube-controller-manager", bins["kube-controller-manager"], append(common,
		"--secure-port", strconv.Itoa(kcmPort),
		"--cert-dir", filepath.Join(dir, "kcm-certs"),
		"--service-account-private-key-file", saKey, "--root-ca-file", filepath.Join(certDir, "apiserver.crt"),
		"--controllers", "*", "--use-service-account-credentials=false", "--v", "1")...)
	if err != nil {
		return nil, err
	}
	sched, err := c.start("kube-scheduler", bins["kube-scheduler"], append(common,
		"--secure-port", strconv.Itoa(schedPort), "--cert-dir", filepath.Join(dir, "sched-certs"), "--v", "1")...)
	if err != nil {
		return nil, err
	}
	// --node-lease-duration-seconds keeps the node alive, as a kubelet does: kwok holds a Lease
	// in kube-node-lease and renews it every quarter of the duration (10 s), which the node
	// lifecycle controller (50 s grace) takes as the heartbeat; it also makes kwok v0.7.0 pick
	// its 20-25 s node-status heartbeat Stage. Without it (the flag defaults to 0 in kwok, 40
	// only in kwokctl), kwok keeps no Lease and, its default Stages choosing the 10-minute
	// "heartbeat-with-lease" one, lets the node go Unknown 50 s after start and every ~55 s
	// after (re-initialized at once), and the controller marks the pods NotReady for good.
	kwok, err := c.start("kwok", bins["kwok"],
		"--kubeconfig", c.Kubeconfig, "--manage-all-nodes=false",
		"--node-lease-duration-seconds", "40",
		"--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
		"--manage-nodes-with-label-selector=",
		"--disregard-status-with-annotation-selector", "kwok.x-k8s.io/status=custom",
		"--cidr", "10.0.0.1/24", "--node-ip", "10.0.0.1",
		"--node-port", strconv.Itoa(kwokPort),
		"--server-address", fmt.Sprintf("127.0.0.1:%d", kwokMetrics))
	if err != nil {
		return nil, err
	}
	if err := kcm.waitFor(ctx, "kube-controller-manager healthy", httpCheck(insecure, fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort), "")); err != nil {
		return nil, err
	}
	if err := sched.waitFor(ctx, "kube-scheduler healthy", httpCheck(insecure, fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort), "")); err != nil {
		return nil, err
	}
	if err := c.createNode(ctx); err != nil {
		return nil, err
	}
	err = kwok.waitFor(ctx, "node "+NodeName+" Ready", func(ctx context.Context) error {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("node not Ready yet")
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(name, bin string, args ...string) (*process, error) {
	p, err := startProcess(c.Dir, name, bin, args...)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

// Stop stops every component, newest first.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(10 * time.Second)
	}
}

// Pids returns the process ids this cluster started.
func (c *Cluster) Pids() []int {
	var pids []int
	for _, p := range c.procs {
		pids = append(pids, p.Pid())
	}
	return pids
}

func (c *Cluster) createNode(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        NodeName,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{"type": "kwok", "kubernetes.io/hostname": NodeName,
				"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
		},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"),
				corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("250")},
			Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"),
				corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("250")},
		},
	}
	_, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create node %s: %w", NodeName, err)
	}
	return nil
}

// ServiceAccountConfig creates (if missing) the namespace and ServiceAccount namespace/name,
// mints a one-hour token for it and returns a *rest.Config and a kubeconfig file with that
// identity: a restricted credential whose rights are what Grant gives it.
func (c *Cluster) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, "", fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if _, err := c.Client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, "", fmt.Errorf("create serviceaccount %s/%s: %w", namespace, name, err)
	}
	exp := int64(3600)
	tr, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("mint a token for serviceaccount %s/%s: %w", namespace, name, err)
	}
	path := filepath.Join(c.Dir, "kubeconfig-"+namespace+"-"+name)
	if err := writeKubeconfig(path, c.server, c.caData, "system:serviceaccount:"+namespace+":"+name, tr.Status.Token); err != nil {
		return nil, "", err
	}
	cfg := &rest.Config{Host: c.server, BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: c.caData}}
	return cfg, path, nil
}

// Grant gives the ServiceAccount namespace/name the rules: in scope (a namespace) through a
// Role and RoleBinding, or cluster-wide through a ClusterRole and ClusterRoleBinding when scope
// is empty.
func (c *Cluster) Grant(ctx context.Context, namespace, name, scope string, rules []rbacv1.PolicyRule) error {
	roleName := "testenv-" + namespace + "-" + name
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}}
	rbac := c.Client.RbacV1()
	if scope == "" {
		_, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: roleName}, Rules: rules}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create clusterrole %s: %w", roleName, err)
		}
		_, err = rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: roleName},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roleName}, Subjects: subject}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create clusterrolebinding %s: %w", roleName, err)
		}
		return nil
	}
	_, err := rbac.Roles(scope).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: roleName}, Rules: rules}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create role %s/%s: %w", scope, roleName, err)
	}
	_, err = rbac.RoleBindings(scope).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: roleName},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: roleName}, Subjects: subject}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create rolebinding %s/%s: %w", scope, roleName, err)
	}
	return nil
}

func writeKubeconfig(path, server string, caData []byte, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testenv"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caData}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["testenv"] = &clientcmdapi.Context{Cluster: "testenv", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "testenv"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

func writeServiceAccountKeys(keyPath, pubPath string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)
}

// httpCheck returns a check that GETs url (with a bearer token when set) and wants 200.
func httpCheck(client *http.Client, url, token string) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}
