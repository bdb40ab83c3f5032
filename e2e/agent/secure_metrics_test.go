package agent

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// TestSecureMetrics: with --metrics-secure-serving, /metrics is served over
// HTTPS and the API server decides who reads it: no token is 401, the token
// of a ServiceAccount that may not get /metrics is 403, and one that may
// gets the metrics.
func TestSecureMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{Backends: 1}, "--metrics-secure-serving")
	e.waitReady(30 * time.Second)
	ctx := context.Background()
	cs := e.cluster.Clientset()

	// scraper may get /metrics; stranger is a ServiceAccount all the same,
	// authenticated but allowed nothing.
	const ns = "default"
	for _, name := range []string{"scraper", "stranger"} {
		_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		require.NoError(t, err, "creating ServiceAccount %s", name)
	}
	_, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "nftproxy-metrics-reader"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "nftproxy-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "nftproxy-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "scraper", Namespace: ns}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	// The API server's authorizer sees a new binding a little after it is
	// stored, and the agent caches a denial for 30 s: ask the API server
	// first, so that the agent's first question already gets a yes.
	framework.Eventually(t, 30*time.Second, "the API server allows scraper get /metrics", func() bool {
		sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User:                  "system:serviceaccount:" + ns + ":scraper",
				Groups:                []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
				NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"},
			},
		}, metav1.CreateOptions{})
		return err == nil && sar.Status.Allowed
	})

	token := func(sa string) string {
		t.Helper()
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
		}, metav1.CreateOptions{})
		require.NoError(t, err, "a token of %s", sa)
		return tr.Status.Token
	}
	// The certificate is the agent's own, self-signed: what is tested here
	// is who may read, not who serves.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	get := func(bearer string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+e.metricsAddr+"/metrics", nil)
		if err != nil {
			return 0, "", err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp.StatusCode, string(b), err
	}

	tests := []struct {
		name   string
		bearer string
		want   int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a ServiceAccount without get on /metrics", token("stranger"), http.StatusForbidden},
		{"a ServiceAccount with get on /metrics", token("scraper"), http.StatusOK},
	}
	for _, tt := range tests {
		var body string
		// Waits for the server to listen; the answer, once there is one,
		// must be the expected one.
		framework.EventuallyState(t, 60*time.Second, tt.name+": an answer", func() (bool, string) {
			code, b, err := get(tt.bearer)
			if err != nil {
				return false, err.Error()
			}
			require.Equal(t, tt.want, code, "%s: %s", tt.name, b)
			body = b
			return true, ""
		})
		if tt.want == http.StatusOK {
			require.Contains(t, body, "# TYPE nftproxy_sync_duration_seconds histogram", tt.name)
			require.Contains(t, body, "# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram", tt.name)
		} else {
			require.NotContains(t, body, "nftproxy_", "%s: no metrics", tt.name)
		}
	}

	// Plain HTTP gets Go's refusal of HTTP on an HTTPS port, and no
	// metrics.
	code, body, err := framework.HTTPGet("http://" + e.metricsAddr + "/metrics")
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, code, "plain HTTP to the HTTPS port: %s", body)
	require.NotContains(t, body, "nftproxy_")
}
