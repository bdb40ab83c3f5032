package health

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestHealthy follows kube-proxy's meaning: unhealthy only when changes
// wait and the last success is older than twice the sync period.
func TestHealthy(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewState(10 * time.Second)
	s.now = func() time.Time { return now }

	assert.True(t, s.Healthy(), "nothing pending yet")
	assert.False(t, s.Ready(), "not ready before the first sync")

	s.Queued()
	assert.False(t, s.Healthy(), "pending and never synced")

	start := now
	now = now.Add(time.Second)
	s.Synced(start, nil)
	assert.True(t, s.Healthy())
	assert.True(t, s.Ready())

	// A change queued while a sync runs stays pending after it.
	start = now
	now = now.Add(time.Second)
	s.Queued()
	now = now.Add(time.Second)
	s.Synced(start, nil)
	now = now.Add(25 * time.Second)
	assert.False(t, s.Healthy(), "a change the sync did not see is still pending")

	// A failed sync keeps its work pending.
	start = now
	s.Synced(start, nil)
	assert.True(t, s.Healthy())
	s.Synced(now, errors.New("commit failed"))
	now = now.Add(21 * time.Second)
	assert.False(t, s.Healthy(), "failing for over twice the sync period")
}

// TestHandler answers GET and HEAD on its paths only.
func TestHandler(t *testing.T) {
	s := NewState(time.Second)
	s.Synced(time.Now(), nil)
	h := s.Handler()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodHead, "/readyz", http.StatusOK},
		{http.MethodGet, "/livez", http.StatusOK},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/readyz", http.StatusMethodNotAllowed},
		{http.MethodGet, "/metrics", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		assert.Equal(t, tc.want, rec.Code, "%s %s", tc.method, tc.path)
	}
}

// TestOnAnswer: each answer to GET or HEAD is told with its path and
// status, for kube-proxy's probe counters; refused methods are not.
func TestOnAnswer(t *testing.T) {
	s := NewState(time.Second)
	var got []string
	s.OnAnswer(func(path string, code int) { got = append(got, fmt.Sprintf("%s %d", path, code)) })
	h := s.Handler()
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/healthz"}, {http.MethodPost, "/healthz"}, {http.MethodHead, "/livez"}, {http.MethodGet, "/readyz"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.path, nil))
	}
	s.Synced(time.Now(), nil)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/readyz", nil))
	assert.Equal(t, []string{"/healthz 200", "/livez 200", "/readyz 503", "/readyz 200"}, got)
}
