package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWaitForStop(t *testing.T) {
	for _, tc := range []struct {
		name    string
		signals []os.Signal
	}{
		{name: "SIGTERM", signals: []os.Signal{syscall.SIGTERM}},
		{name: "SIGINT", signals: []os.Signal{syscall.SIGINT}},
		{name: "children exit first", signals: []os.Signal{syscall.SIGCHLD, syscall.SIGCHLD, syscall.SIGTERM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signals := make(chan os.Signal, len(tc.signals))
			for _, s := range tc.signals {
				signals <- s
			}
			waitForStop(signals) // returns, or the test times out
			assert.Empty(t, signals, "returned before the stopping signal")
		})
	}
}

// TestReap starts a child that exits at once, waits until it is a zombie,
// and checks that reap collects it.
func TestReap(t *testing.T) {
	pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
	require.NoError(t, err)
	stat := "/proc/" + strconv.Itoa(pid) + "/stat"
	// The state follows the parenthesised command name: "Z" once exited.
	deadline := time.Now().Add(time.Minute)
	for {
		data, err := os.ReadFile(stat)
		require.NoError(t, err)
		if _, rest, _ := strings.Cut(string(data), ") "); strings.HasPrefix(rest, "Z") {
			break
		}
		require.True(t, time.Now().Before(deadline), "child %d never exited", pid)
		time.Sleep(10 * time.Millisecond)
	}
	reap()
	_, err = os.Stat(stat)
	assert.True(t, os.IsNotExist(err), "child %d is still a zombie after reap", pid)
}
