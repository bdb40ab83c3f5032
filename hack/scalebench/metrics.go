package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// scrape reads a Prometheus text endpoint into "name{labels}" → value,
// and keeps a copy of the text in save when it is not empty.
func scrape(ctx context.Context, c *http.Client, url, save string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading metrics %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading metrics %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading metrics %s: %w", url, err)
	}
	if save != "" {
		_ = os.WriteFile(save, body, 0o644)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// Sync metrics of both proxies: name of the histogram, and the label
// selector that picks full and partial syncs.
var syncMetrics = map[string]map[string]string{
	"nftproxy": {
		"full":    `nftproxy_sync_duration_seconds_%s{kind="full"}`,
		"partial": `nftproxy_sync_duration_seconds_%s{kind="partial"}`,
	},
	"kube-proxy": {
		"full":    `kubeproxy_sync_full_proxy_rules_duration_seconds_%s{ip_family="IPv4"}`,
		"partial": `kubeproxy_sync_partial_proxy_rules_duration_seconds_%s{ip_family="IPv4"}`,
	},
}

// syncCounts returns the number of full and partial syncs, and the
// duration of the first full sync when only one has run.
func syncCounts(proxy string, m map[string]float64) (counts map[string]float64, firstFull float64) {
	counts = map[string]float64{}
	for kind, pattern := range syncMetrics[proxy] {
		counts[kind] = m[fmt.Sprintf(pattern, "count")]
		counts[kind+"_seconds"] = round(m[fmt.Sprintf(pattern, "sum")], 3)
	}
	if counts["full"] == 1 {
		firstFull = counts["full_seconds"]
	}
	return counts, firstFull
}

// firstSyncFromLog finds nftproxy's first full sync in its JSON log (the
// "synced" line of V-level 1) and returns when it started and ended,
// relative to the process start.
func firstSyncFromLog(path string, start time.Time) (began, ended float64, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			TS   string `json:"ts"`
			Kind string `json:"kind"`
			Took string `json:"took"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "synced" || line.Kind != "full" {
			continue
		}
		end, err1 := time.ParseInLocation("2006-01-02 15:04:05.999999", line.TS, time.Local)
		took, err2 := time.ParseDuration(line.Took)
		if err1 != nil || err2 != nil {
			return 0, 0, false
		}
		return round(end.Add(-took).Sub(start).Seconds(), 3), round(end.Sub(start).Seconds(), 3), true
	}
	return 0, 0, false
}

// firstSyncFromMetrics finds kube-proxy's first full sync from its
// metrics, while it is the only IPv4 sync that has run: its end is the
// last sync's timestamp.
func firstSyncFromMetrics(m map[string]float64, start time.Time) (began, ended float64, ok bool) {
	const fam = `{ip_family="IPv4"}`
	if m["kubeproxy_sync_full_proxy_rules_duration_seconds_count"+fam] != 1 ||
		m["kubeproxy_sync_partial_proxy_rules_duration_seconds_count"+fam] != 0 {
		return 0, 0, false
	}
	endUnix := m["kubeproxy_sync_proxy_rules_last_timestamp_seconds"+fam]
	if endUnix == 0 {
		return 0, 0, false
	}
	end := time.Unix(0, int64(endUnix*1e9))
	took := time.Duration(m["kubeproxy_sync_full_proxy_rules_duration_seconds_sum"+fam] * 1e9)
	return round(end.Add(-took).Sub(start).Seconds(), 3), round(end.Sub(start).Seconds(), 3), true
}
