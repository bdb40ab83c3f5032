package commands

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"
)

// logLines collects the agent's JSON log lines.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *logLines) logger(t *testing.T) logr.Logger {
	return funcr.NewJSON(func(obj string) {
		var line map[string]any
		require.NoError(t, json.Unmarshal([]byte(obj), &line), "log line %s", obj)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, line)
	}, funcr.Options{})
}

// withMsg returns the lines whose message is msg.
func (l *logLines) withMsg(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range l.lines {
		if line["msg"] == msg {
			out = append(out, line)
		}
	}
	return out
}

// handshakeTimeout is an error like net/http's TLS handshake timeout.
type handshakeTimeout struct{}

func (handshakeTimeout) Error() string   { return "net/http: TLS handshake timeout" }
func (handshakeTimeout) Timeout() bool   { return true }
func (handshakeTimeout) Temporary() bool { return true }

func dialError(err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 96, 0, 1), Port: 443}, Err: err}
}

func TestHintFor(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"connection refused", dialError(&os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}), unreachableMsg},
		{"no route to host", dialError(&os.SyscallError{Syscall: "connect", Err: syscall.EHOSTUNREACH}), unreachableMsg},
		{"network unreachable", dialError(&os.SyscallError{Syscall: "connect", Err: syscall.ENETUNREACH}), unreachableMsg},
		{"dial timeout", dialError(os.ErrDeadlineExceeded), unreachableMsg},
		{"name does not resolve", dialError(&net.DNSError{Err: "no such host", Name: "cp.example", IsNotFound: true}), unreachableMsg},
		{"TLS handshake timeout", handshakeTimeout{}, unreachableMsg},
		{"address not in the certificate", &tls.CertificateVerificationError{
			Err: x509.HostnameError{Certificate: &x509.Certificate{}, Host: "10.96.0.1"},
		}, certificateMsg},
		{"certificate from an unknown authority", &tls.CertificateVerificationError{
			Err: x509.UnknownAuthorityError{Cert: &x509.Certificate{}},
		}, ""},
		{"request cancelled while dialling", dialError(context.Canceled), ""},
		{"connection reset after connecting", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, ""},
		{"some other error", errors.New("http2: server sent GOAWAY"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, hintFor(tt.err))
		})
	}
}

// scriptedTransport answers each request with the next error of its
// script; nil is a 200 response.
type scriptedTransport struct{ errs []error }

func (s *scriptedTransport) RoundTrip(*http.Request) (*http.Response, error) {
	err := s.errs[0]
	s.errs = s.errs[1:]
	if err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(""))}, nil
}

// TestUnreachableHintWhen checks when the hint is logged: at the first
// failure, again once a minute while the server never answered, and never
// once it has answered.
func TestUnreachableHintWhen(t *testing.T) {
	refused := dialError(&os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED})
	type attempt struct {
		after time.Duration // since the previous attempt
		err   error
	}
	tests := []struct {
		name     string
		attempts []attempt
		want     int
	}{
		{"first failure", []attempt{{0, refused}}, 1},
		{"repeated within a minute", []attempt{{0, refused}, {time.Second, refused}, {30 * time.Second, refused}}, 1},
		{"repeated after a minute", []attempt{{0, refused}, {30 * time.Second, refused}, {30 * time.Second, refused}}, 2},
		{"after the server answered", []attempt{{0, nil}, {0, refused}, {time.Hour, refused}}, 0},
		{"answered after the hint", []attempt{{0, refused}, {0, nil}, {time.Hour, refused}}, 1},
		{"not a reachability error", []attempt{{0, errors.New("http2: server sent GOAWAY")}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logLines
			now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			script := &scriptedTransport{}
			for _, a := range tt.attempts {
				script.errs = append(script.errs, a.err)
			}
			state := &hintState{log: logs.logger(t), server: "https://10.96.0.1:443", set: "X", now: func() time.Time { return now }}
			rt := &unreachableHinter{next: script, state: state}
			for _, a := range tt.attempts {
				now = now.Add(a.after)
				req, err := http.NewRequest(http.MethodGet, "https://10.96.0.1:443/api", nil)
				require.NoError(t, err)
				resp, err := rt.RoundTrip(req)
				if err == nil {
					resp.Body.Close()
				}
			}
			assert.Len(t, logs.withMsg(unreachableMsg), tt.want)
		})
	}
}

func TestCancelledRequestGivesNoHint(t *testing.T) {
	var logs logLines
	state := &hintState{log: logs.logger(t), now: time.Now}
	rt := &unreachableHinter{next: &scriptedTransport{errs: []error{dialError(os.ErrDeadlineExceeded)}}, state: state}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://10.96.0.1:443/api", nil)
	require.NoError(t, err)
	_, err = rt.RoundTrip(req)
	require.Error(t, err)
	assert.Empty(t, logs.withMsg(unreachableMsg), "a stopping agent is no wrong address")
}

// closedAddress returns a loopback address on which nothing listens: a
// connection to it is refused.
func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// TestUnreachableHintSays checks, through client-go's own transport and a
// real refused connection, that the hint names the address and the
// setting to change.
func TestUnreachableHintSays(t *testing.T) {
	tests := []struct {
		name string
		src  apiAddressSource
		want []string
	}{
		{"in a pod", apiAddressSource{}, []string{
			"apiServer.host", "apiServer.port", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "--kubeconfig",
		}},
		{"from a kubeconfig file", apiAddressSource{kubeconfig: "/etc/nftproxy/kubeconfig"}, []string{
			"/etc/nftproxy/kubeconfig", "--kubeconfig",
		}},
		{"from --master", apiAddressSource{kubeconfig: "/etc/nftproxy/kubeconfig", master: "https://192.0.2.1:6443"}, []string{
			"--master",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logLines
			server := "https://" + closedAddress(t)
			cfg := &rest.Config{Host: server, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
			hintWhenUnreachable(cfg, tt.src, logs.logger(t))
			client, err := rest.HTTPClientFor(cfg)
			require.NoError(t, err)
			_, err = client.Get(server + "/version")
			require.ErrorIs(t, err, syscall.ECONNREFUSED)

			hints := logs.withMsg(unreachableMsg)
			require.Len(t, hints, 1, "log: %v", logs.lines)
			assert.Equal(t, server, hints[0]["server"])
			assert.Contains(t, hints[0]["error"], "connection refused")
			for _, w := range tt.want {
				assert.Contains(t, hints[0]["set"], w)
			}
			if tt.src.kubeconfig != "" {
				assert.NotContains(t, hints[0]["set"], "KUBERNETES_SERVICE_HOST", "the environment does not matter with a kubeconfig")
			}
		})
	}
}

// TestUnreachableHintWhileHeld checks that the hint comes while a GET is
// held for a refused connection, not only when the hold ends: it must be
// wrapped inside holdWhileRefused, as run does.
func TestUnreachableHintWhileHeld(t *testing.T) {
	var logs logLines
	log := logs.logger(t)
	server := "https://" + closedAddress(t)
	cfg := &rest.Config{Host: server, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	hintWhenUnreachable(cfg, apiAddressSource{}, log)
	holdWhileRefused(stop, cfg, log)
	client, err := rest.HTTPClientFor(cfg)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		resp, err := client.Get(server + "/version")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for len(logs.withMsg(unreachableMsg)) == 0 {
		select {
		case err := <-done:
			t.Fatalf("the request ended (%v) before the hint was logged", err)
		default:
		}
		require.False(t, time.Now().After(deadline), "no hint while the request is held; log: %v", logs.lines)
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	require.ErrorIs(t, <-done, syscall.ECONNREFUSED)
	assert.Len(t, logs.withMsg(unreachableMsg), 1, "once per minute, not once per retry")
	assert.NotEmpty(t, logs.withMsg("the API server refuses connections; holding the request until it answers"))
}

// TestCertificateHint checks, through a real TLS handshake, that an
// address the API server's certificate does not name gets its own hint.
func TestCertificateHint(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	var logs logLines
	// The test server's certificate names example.com and 127.0.0.1, not
	// this name.
	cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca, ServerName: "api.other.example"}}
	hintWhenUnreachable(cfg, apiAddressSource{}, logs.logger(t))
	client, err := rest.HTTPClientFor(cfg)
	require.NoError(t, err)
	_, err = client.Get(srv.URL + "/version")
	require.Error(t, err)

	hints := logs.withMsg(certificateMsg)
	require.Len(t, hints, 1, "log: %v", logs.lines)
	assert.Contains(t, hints[0]["error"], "api.other.example")
	assert.Contains(t, hints[0]["set"], "apiServer.host")
}
