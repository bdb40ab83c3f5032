package framework

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestTail(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 5, "a\nb\nc"},
		{"a\nb\nc\n", 3, "a\nb\nc"},
		{"a\nb\nc\nd\n", 2, "[2 lines left out]\nc\nd"},
		{"", 2, ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tail(tt.in, tt.n), "tail(%q, %d)", tt.in, tt.n)
	}
}

func TestEventually(t *testing.T) {
	calls := 0
	Eventually(t, time.Minute, "the third call", func() bool { calls++; return calls == 3 })
	assert.Equal(t, 3, calls)
}

func TestIsTimeout(t *testing.T) {
	assert.True(t, IsTimeout(os.ErrDeadlineExceeded))
	assert.True(t, IsTimeout(fmt.Errorf("dialing: %w", context.DeadlineExceeded)))
	assert.False(t, IsTimeout(syscall.ECONNREFUSED))
	assert.False(t, IsTimeout(errors.New("reset")))
}
