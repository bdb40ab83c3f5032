package controllers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBackoff(t *testing.T) {
	r := &ProxyReconciler{MinSyncPeriod: time.Second}
	var got []time.Duration
	for r.failures = 1; r.failures <= 7; r.failures++ {
		got = append(got, r.backoff())
	}
	assert.Equal(t, []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 30 * time.Second, 30 * time.Second}, got)
}
