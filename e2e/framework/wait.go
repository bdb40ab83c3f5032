package framework

import (
	"testing"
	"time"
)

// pollInterval is how often Eventually tries its condition.
const pollInterval = 20 * time.Millisecond

// Eventually tries cond every 20 ms until it holds, and returns how long
// that took; it fails the test, saying what was awaited, if cond does not
// hold within the given time.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return EventuallyState(t, within, what, func() (bool, string) { return cond(), "" })
}

// EventuallyState is Eventually for a condition that also describes what
// it saw, for the failure message.
func EventuallyState(t testing.TB, within time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var state string
	for time.Since(start) < within {
		var ok bool
		if ok, state = cond(); ok {
			return time.Since(start)
		}
		time.Sleep(pollInterval)
	}
	if state != "" {
		t.Fatalf("%s: not within %s; last seen: %s", what, within, state)
	}
	t.Fatalf("%s: not within %s", what, within)
	return 0
}
