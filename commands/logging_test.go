package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2"
)

func TestLoggerFormats(t *testing.T) {
	// The header of Kubernetes' text format: severity and date, time,
	// thread, file:line.
	const textHeader = `^[IE]\d{4} \d{2}:\d{2}:\d{2}\.\d{6}\s+\d+ \S+\.go:\d+\] `
	for _, tc := range []struct {
		format string
		check  func(t *testing.T, lines []string)
	}{
		{"text", func(t *testing.T, lines []string) {
			require.Len(t, lines, 4)
			assert.Regexp(t, textHeader+`"synced" kind="full" took="1s"$`, lines[0])
			assert.Regexp(t, textHeader+`"at level 1"$`, lines[1])
			assert.Regexp(t, textHeader+`"sync failed" err="no netlink"$`, lines[2])
			assert.Regexp(t, textHeader+`"from client-go"$`, lines[3])
			assert.True(t, strings.HasPrefix(lines[2], "E"), "errors are marked E")
		}},
		{"json", func(t *testing.T, lines []string) {
			require.Len(t, lines, 4)
			var m []map[string]any
			for _, l := range lines {
				var obj map[string]any
				require.NoError(t, json.Unmarshal([]byte(l), &obj), l)
				m = append(m, obj)
			}
			assert.Equal(t, "synced", m[0]["msg"])
			assert.Equal(t, "full", m[0]["kind"])
			assert.Equal(t, "at level 1", m[1]["msg"])
			assert.EqualValues(t, 1, m[1]["level"])
			assert.Equal(t, "sync failed", m[2]["msg"])
			assert.Equal(t, "no netlink", m[2]["error"])
			assert.Equal(t, "from client-go", m[3]["msg"])
		}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			var out bytes.Buffer
			log := newLogger(&out, tc.format, 1)
			log.Info("synced", "kind", "full", "took", "1s")
			log.V(1).Info("at level 1")
			log.V(2).Info("at level 2, left out")
			log.Error(errors.New("no netlink"), "sync failed")
			// client-go logs through klog, which goes the same way.
			klog.V(1).InfoS("from client-go")
			klog.V(2).InfoS("from client-go at level 2, left out")
			tc.check(t, strings.Split(strings.TrimSpace(out.String()), "\n"))
		})
	}
	klog.ClearLogger()
}
