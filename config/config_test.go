package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const header = "apiVersion: nftproxy.io/v1alpha1\nkind: NftproxyConfiguration\n"

func duration(d time.Duration) metav1.Duration { return metav1.Duration{Duration: d} }

// modified returns the defaults changed by fn.
func modified(fn func(*Configuration)) Configuration {
	c := Default()
	fn(&c)
	return c
}

func TestDefault(t *testing.T) {
	d := Default()
	require.NoError(t, d.Validate())
	assert.Equal(t, Configuration{
		APIVersion:         "nftproxy.io/v1alpha1",
		Kind:               "NftproxyConfiguration",
		ClusterCIDRs:       []string{},
		DetectLocalMode:    "ClusterCIDR",
		ServiceCIDRs:       []string{},
		IPFamilies:         []string{"IPv4", "IPv6"},
		NodePortAddresses:  []string{},
		MinSyncPeriod:      duration(time.Second),
		SyncPeriod:         duration(30 * time.Second),
		MetricsBindAddress: "127.0.0.1:10249",
		HealthzBindAddress: "0.0.0.0:10256",
		MasqueradeBit:      14,
		LoggingFormat:      "text",
		KubeAPIQPS:         50,
		KubeAPIBurst:       100,
		// kube-proxy's defaults.
		Conntrack: ConntrackConfiguration{
			MaxPerCore:            32768,
			Min:                   131072,
			TCPEstablishedTimeout: duration(24 * time.Hour),
			TCPCloseWaitTimeout:   duration(time.Hour),
		},
	}, d)

	// Each call returns fresh slices: changing one result leaves the next
	// one alone.
	d.IPFamilies[0] = "changed"
	assert.Equal(t, "IPv4", Default().IPFamilies[0])
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    Configuration
		wantErr []string
	}{{
		name: "header only keeps the defaults",
		data: header,
		want: Default(),
	}, {
		name: "fields set, others default",
		data: header + `
nodeName: node-1
clusterCIDRs: [10.244.0.0/16, "fd00:10:244::/56"]
ipFamilies: [IPv6]
minSyncPeriod: 250ms
masqueradeBit: 3
`,
		want: modified(func(c *Configuration) {
			c.NodeName = "node-1"
			c.ClusterCIDRs = []string{"10.244.0.0/16", "fd00:10:244::/56"}
			c.IPFamilies = []string{"IPv6"}
			c.MinSyncPeriod = duration(250 * time.Millisecond)
			c.MasqueradeBit = 3
		}),
	}, {
		name: "JSON",
		data: `{"apiVersion": "nftproxy.io/v1alpha1", "kind": "NftproxyConfiguration", "syncPeriod": "1m", "logVerbosity": 4}`,
		want: modified(func(c *Configuration) {
			c.SyncPeriod = duration(time.Minute)
			c.LogVerbosity = 4
		}),
	}, {
		name: "empty list clears a default",
		data: header + "ipFamilies: []\n",
		want: modified(func(c *Configuration) { c.IPFamilies = []string{} }),
	}, {
		name: "a section keeps the defaults of the fields it leaves out",
		data: header + "conntrack:\n  maxPerCore: 0\n  udpTimeout: 30s\n  tcpBeLiberal: true\n",
		want: modified(func(c *Configuration) {
			c.Conntrack.MaxPerCore = 0
			c.Conntrack.UDPTimeout = duration(30 * time.Second)
			c.Conntrack.TCPBeLiberal = true
		}),
	}, {
		name:    "unknown field in a section",
		data:    header + "conntrack:\n  maxPerCPU: 1\n",
		wantErr: []string{`unknown field "conntrack.maxPerCPU"`},
	}, {
		name:    "wrong type in a section",
		data:    header + "conntrack:\n  min: lots\n",
		wantErr: []string{`conntrack.min: got a string, want an integer`},
	}, {
		name:    "a section that is not a mapping",
		data:    header + "conntrack: 5\n",
		wantErr: []string{`conntrack: want a mapping of field names to values`},
	}, {
		name:    "duplicate key in a section",
		data:    header + "conntrack:\n  min: 1\n  min: 2\n",
		wantErr: []string{`"min" already set`},
	}, {
		name:    "number as a string",
		data:    header + "kubeAPIQPS: fast\n",
		wantErr: []string{`kubeAPIQPS: got a string, want a number`},
	}, {
		name:    "unknown field",
		data:    header + "clusterCIDR: 10.0.0.0/8\n",
		wantErr: []string{`unknown field "clusterCIDR"`},
	}, {
		name:    "field names are case-sensitive",
		data:    header + "SyncPeriod: 10s\n",
		wantErr: []string{`unknown field "SyncPeriod"`},
	}, {
		name:    "every unknown field is named",
		data:    header + "foo: 1\nbar: 2\n",
		wantErr: []string{`unknown field "bar"`, `unknown field "foo"`},
	}, {
		name:    "wrong apiVersion",
		data:    "apiVersion: nftproxy.io/v1\nkind: NftproxyConfiguration\nnewField: 1\n",
		wantErr: []string{`apiVersion "nftproxy.io/v1" is not supported: want "nftproxy.io/v1alpha1"`},
	}, {
		name:    "missing apiVersion",
		data:    "kind: NftproxyConfiguration\n",
		wantErr: []string{`apiVersion is missing`},
	}, {
		name:    "wrong kind",
		data:    "apiVersion: nftproxy.io/v1alpha1\nkind: KubeProxyConfiguration\n",
		wantErr: []string{`kind "KubeProxyConfiguration" is not supported: want "NftproxyConfiguration"`},
	}, {
		name:    "duration as a number",
		data:    header + "minSyncPeriod: 5\n",
		wantErr: []string{`minSyncPeriod: got a number, want a duration`},
	}, {
		name:    "bad duration",
		data:    header + "syncPeriod: 5x\n",
		wantErr: []string{`syncPeriod: `, `"5x"`},
	}, {
		name:    "list as a string",
		data:    header + "clusterCIDRs: 10.0.0.0/8\n",
		wantErr: []string{`clusterCIDRs: got a string, want a list of strings`},
	}, {
		name:    "integer as a string",
		data:    header + "masqueradeBit: fourteen\n",
		wantErr: []string{`masqueradeBit: got a string, want an integer`},
	}, {
		name:    "null",
		data:    header + "nodeName: null\n",
		wantErr: []string{`nodeName: got null, want a string`},
	}, {
		name:    "duplicate key",
		data:    header + "syncPeriod: 1s\nsyncPeriod: 2s\n",
		wantErr: []string{`"syncPeriod" already set`},
	}, {
		name:    "empty",
		data:    "\n",
		wantErr: []string{"empty"},
	}, {
		name:    "not a mapping",
		data:    "- a\n",
		wantErr: []string{"not a mapping"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load([]byte(tt.data))
			if tt.wantErr != nil {
				require.Error(t, err)
				for _, want := range tt.wantErr {
					assert.Contains(t, err.Error(), want)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(header+"nodeName: n1\n"), 0o600))
	got, err := LoadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "n1", got.NodeName)

	require.NoError(t, os.WriteFile(path, []byte(header+"bogus: 1\n"), 0o600))
	_, err = LoadFile(path)
	assert.ErrorContains(t, err, path)
	assert.ErrorContains(t, err, `unknown field "bogus"`)

	_, err = LoadFile(filepath.Join(t.TempDir(), "missing.yaml"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Configuration)
		// want lists the expected errors, one a line of the joined error, in
		// order; nil means valid.
		want []string
	}{
		{name: "defaults", modify: func(*Configuration) {}},
		{name: "everything set", modify: func(c *Configuration) {
			c.NodeName = "node-1.example"
			c.ClusterCIDRs = []string{"10.244.0.0/16", "fd00:10:244::/56"}
			c.IPFamilies = []string{"IPv6", "IPv4"}
			c.NodePortAddresses = []string{"192.168.0.0/24", "::/0"}
			c.MinSyncPeriod, c.SyncPeriod = duration(time.Minute), duration(time.Minute)
			c.MetricsBindAddress = "[::1]:9000"
			c.HealthzBindAddress = ":10256"
			c.MasqueradeBit, c.LogVerbosity = 31, 10
		}},
		{name: "nodePortAddresses primary", modify: func(c *Configuration) { c.NodePortAddresses = []string{"primary"} }},
		{name: "masqueradeBit 0", modify: func(c *Configuration) { c.MasqueradeBit = 0 }},
		{name: "metricsBindAddress empty turns metrics off", modify: func(c *Configuration) { c.MetricsBindAddress = "" }},
		{name: "healthzBindAddress empty", modify: func(c *Configuration) { c.HealthzBindAddress = "" },
			want: []string{`healthzBindAddress: "" is not host:port`}},
		{name: "detect-local NodeCIDR, masqueradeAll, service CIDRs", modify: func(c *Configuration) {
			c.DetectLocalMode, c.MasqueradeAll = "NodeCIDR", true
			c.ServiceCIDRs = []string{"10.96.0.0/12", "fd00:96::/108"}
		}},
		{name: "detect-local InterfaceNamePrefix", modify: func(c *Configuration) {
			c.DetectLocalMode, c.DetectLocalInterfaceNamePrefix = "InterfaceNamePrefix", "veth"
		}},
		{name: "detect-local BridgeInterface", modify: func(c *Configuration) {
			c.DetectLocalMode, c.DetectLocalBridgeInterface = "BridgeInterface", "cbr0"
		}},
		{name: "detectLocalMode unknown", modify: func(c *Configuration) { c.DetectLocalMode = "PodCIDR" },
			want: []string{`detectLocalMode: "PodCIDR" is not a mode: want "ClusterCIDR", "NodeCIDR", "InterfaceNamePrefix" or "BridgeInterface"`}},
		{name: "detect-local interface missing", modify: func(c *Configuration) { c.DetectLocalMode = "InterfaceNamePrefix" },
			want: []string{`detectLocalInterfaceNamePrefix: must be set for detectLocalMode "InterfaceNamePrefix"`}},
		{name: "detect-local bridge missing", modify: func(c *Configuration) { c.DetectLocalMode = "BridgeInterface" },
			want: []string{`detectLocalBridgeInterface: must be set for detectLocalMode "BridgeInterface"`}},
		{name: "detect-local interface names", modify: func(c *Configuration) {
			c.DetectLocalInterfaceNamePrefix, c.DetectLocalBridgeInterface = `veth"`, "a-bridge-name-too-long"
		}, want: []string{`detectLocalInterfaceNamePrefix: "veth\"" is not an interface name: it has '"'`,
			`detectLocalBridgeInterface: "a-bridge-name-too-long" is longer than 15 characters`}},
		{name: "serviceCIDRs", modify: func(c *Configuration) { c.ServiceCIDRs = []string{"10.96.0.0/12", "10.96.0.1/12"} },
			want: []string{`serviceCIDRs[1]: "10.96.0.1/12" has bits set past its prefix length: did you mean "10.96.0.0/12"?`}},

		{name: "apiVersion", modify: func(c *Configuration) { c.APIVersion = "v1" },
			want: []string{`apiVersion "v1" is not supported: want "nftproxy.io/v1alpha1"`}},
		{name: "kind", modify: func(c *Configuration) { c.Kind = "" },
			want: []string{`kind is missing: want "NftproxyConfiguration"`}},
		{name: "nodeName", modify: func(c *Configuration) { c.NodeName = "Node_1" },
			want: []string{`nodeName: "Node_1" is not a valid node name: `}},
		{name: "clusterCIDRs", modify: func(c *Configuration) { c.ClusterCIDRs = []string{"10.0.0.0/8", "10.0.0.0/33", "10.0.0.1"} },
			want: []string{`clusterCIDRs[1]: "10.0.0.0/33" is not a valid CIDR`, `clusterCIDRs[2]: "10.0.0.1" is not a valid CIDR`}},
		{name: "clusterCIDRs host bits", modify: func(c *Configuration) { c.ClusterCIDRs = []string{"10.244.1.0/16"} },
			want: []string{`clusterCIDRs[0]: "10.244.1.0/16" has bits set past its prefix length: did you mean "10.244.0.0/16"?`}},
		{name: "ipFamilies empty", modify: func(c *Configuration) { c.IPFamilies = nil },
			want: []string{`ipFamilies: must list at least one of "IPv4" and "IPv6"`}},
		{name: "ipFamilies unknown and duplicate", modify: func(c *Configuration) { c.IPFamilies = []string{"IPv4", "ipv6", "IPv4"} },
			want: []string{`ipFamilies[1]: "ipv6" is not an IP family: want "IPv4" or "IPv6"`, `ipFamilies[2]: "IPv4" is listed twice`}},
		{name: "nodePortAddresses", modify: func(c *Configuration) { c.NodePortAddresses = []string{"eth0"} },
			want: []string{`nodePortAddresses[0]: "eth0" is not a valid CIDR (or use "primary")`}},
		{name: "nodePortAddresses primary with others", modify: func(c *Configuration) { c.NodePortAddresses = []string{"10.0.0.0/8", "primary"} },
			want: []string{`nodePortAddresses[1]: "primary" must be the only entry`}},
		{name: "minSyncPeriod zero", modify: func(c *Configuration) { c.MinSyncPeriod = duration(0) },
			want: []string{`minSyncPeriod: must be greater than 0, got 0s`}},
		{name: "syncPeriod negative", modify: func(c *Configuration) { c.SyncPeriod = duration(-time.Second) },
			want: []string{`syncPeriod: must be greater than 0, got -1s`}},
		{name: "minSyncPeriod longer than syncPeriod", modify: func(c *Configuration) { c.MinSyncPeriod = duration(time.Minute) },
			want: []string{`minSyncPeriod: 1m0s is longer than syncPeriod (30s)`}},
		{name: "metricsBindAddress no port", modify: func(c *Configuration) { c.MetricsBindAddress = "127.0.0.1" },
			want: []string{`metricsBindAddress: "127.0.0.1" is not host:port`}},
		{name: "metricsBindAddress host name", modify: func(c *Configuration) { c.MetricsBindAddress = "localhost:10249" },
			want: []string{`metricsBindAddress: "localhost:10249": host "localhost" is not an IP address`}},
		{name: "healthzBindAddress port", modify: func(c *Configuration) { c.HealthzBindAddress = "0.0.0.0:70000" },
			want: []string{`healthzBindAddress: "0.0.0.0:70000": port "70000" is not a number from 1 to 65535`}},
		{name: "healthzBindAddress port 0", modify: func(c *Configuration) { c.HealthzBindAddress = "0.0.0.0:0" },
			want: []string{`healthzBindAddress: "0.0.0.0:0": port "0" is not a number from 1 to 65535`}},
		{name: "masqueradeBit", modify: func(c *Configuration) { c.MasqueradeBit = 32 },
			want: []string{`masqueradeBit: 32 is out of range: want 0 to 31`}},
		{name: "masqueradeBit negative", modify: func(c *Configuration) { c.MasqueradeBit = -1 },
			want: []string{`masqueradeBit: -1 is out of range: want 0 to 31`}},
		{name: "logVerbosity", modify: func(c *Configuration) { c.LogVerbosity = 11 },
			want: []string{`logVerbosity: 11 is out of range: want 0 to 10`}},
		{name: "loggingFormat", modify: func(c *Configuration) { c.LoggingFormat = "JSON" },
			want: []string{`loggingFormat: "JSON" is not a log format: want "text" or "json"`}},
		{name: "loggingFormat json", modify: func(c *Configuration) { c.LoggingFormat = "json" }},
		{name: "kubeAPIQPS", modify: func(c *Configuration) { c.KubeAPIQPS = 0 },
			want: []string{`kubeAPIQPS: must be greater than 0, got 0`}},
		{name: "kubeAPIBurst", modify: func(c *Configuration) { c.KubeAPIBurst = -1 },
			want: []string{`kubeAPIBurst: must be greater than 0, got -1`}},
		{name: "conntrack zeros leave the kernel alone", modify: func(c *Configuration) { c.Conntrack = ConntrackConfiguration{} }},
		{name: "conntrack negative", modify: func(c *Configuration) {
			c.Conntrack = ConntrackConfiguration{MaxPerCore: -1, Min: -2, TCPEstablishedTimeout: duration(-time.Second)}
		}, want: []string{
			`conntrack.maxPerCore: must not be negative, got -1`,
			`conntrack.min: must not be negative, got -2`,
			`conntrack.tcpEstablishedTimeout: must not be negative, got -1s`,
		}},
		{name: "conntrack timeouts in whole seconds", modify: func(c *Configuration) {
			c.Conntrack.TCPCloseWaitTimeout = duration(1500 * time.Millisecond)
			c.Conntrack.UDPTimeout = duration(time.Millisecond)
			c.Conntrack.UDPStreamTimeout = duration(2 * time.Minute)
		}, want: []string{
			`conntrack.tcpCloseWaitTimeout: 1.5s is not a whole number of seconds`,
			`conntrack.udpTimeout: 1ms is not a whole number of seconds`,
		}},
		{name: "all problems are reported", modify: func(c *Configuration) {
			c.ClusterCIDRs = []string{"x"}
			c.MasqueradeBit = 40
			c.LogVerbosity = -1
		}, want: []string{
			`clusterCIDRs[0]: "x" is not a valid CIDR`,
			`masqueradeBit: 40 is out of range: want 0 to 31`,
			`logVerbosity: -1 is out of range: want 0 to 10`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := modified(tt.modify).Validate()
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			got := strings.Split(err.Error(), "\n")
			require.Len(t, got, len(tt.want), "errors: %q", got)
			for i, want := range tt.want {
				assert.True(t, strings.HasPrefix(got[i], want), "error %d:\n got %q\nwant %q...", i, got[i], want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	fileContent := header + `
nodeName: from-file
clusterCIDRs: [10.244.0.0/16]
syncPeriod: 1m
masqueradeBit: 5
`
	tests := []struct {
		name    string
		args    []string
		file    string // written to a temporary file passed with --config
		env     string // NODE_NAME
		want    Configuration
		wantErr []string
	}{{
		name: "defaults and env",
		env:  "from-env",
		want: modified(func(c *Configuration) { c.NodeName = "from-env" }),
	}, {
		name: "file only",
		file: fileContent,
		env:  "from-env",
		want: modified(func(c *Configuration) {
			c.NodeName = "from-file"
			c.ClusterCIDRs = []string{"10.244.0.0/16"}
			c.SyncPeriod = duration(time.Minute)
			c.MasqueradeBit = 5
		}),
	}, {
		name: "flags override the file, unset flags do not",
		file: fileContent,
		args: []string{"--node-name=from-flag", "--cluster-cidr=10.1.0.0/16, fd00::/64", "--masquerade-bit", "14", "--v=3"},
		want: modified(func(c *Configuration) {
			c.NodeName = "from-flag"
			c.ClusterCIDRs = []string{"10.1.0.0/16", "fd00::/64"}
			c.SyncPeriod = duration(time.Minute)
			c.MasqueradeBit = 14 // the default, but set explicitly
			c.LogVerbosity = 3
		}),
	}, {
		name: "an empty flag clears a list from the file",
		file: fileContent,
		args: []string{"--cluster-cidr="},
		want: modified(func(c *Configuration) {
			c.NodeName = "from-file"
			c.SyncPeriod = duration(time.Minute)
			c.MasqueradeBit = 5
		}),
	}, {
		name: "every flag",
		args: []string{
			"--node-name=n1", "--cluster-cidr=10.0.0.0/8", "--ip-families=IPv4",
			"--nodeport-addresses=primary", "--min-sync-period=2s", "--sync-period=3s",
			"--metrics-bind-address=0.0.0.0:1", "--healthz-bind-address=127.0.0.1:2",
			"--masquerade-bit=0", "--v=10", "--logging-format=json", "--kubeconfig=/k",
			"--kube-api-qps=7.5", "--kube-api-burst=9",
			"--conntrack-max-per-core=0", "--conntrack-min=1", "--conntrack-tcp-timeout-established=1m",
			"--conntrack-tcp-timeout-close-wait=2m", "--conntrack-tcp-be-liberal", "--conntrack-udp-timeout=3s",
			"--conntrack-udp-timeout-stream=4s",
		},
		want: Configuration{
			APIVersion: APIVersion, Kind: Kind,
			NodeName: "n1", ClusterCIDRs: []string{"10.0.0.0/8"}, IPFamilies: []string{"IPv4"},
			NodePortAddresses: []string{"primary"}, MinSyncPeriod: duration(2 * time.Second), SyncPeriod: duration(3 * time.Second),
			MetricsBindAddress: "0.0.0.0:1", HealthzBindAddress: "127.0.0.1:2",
			MasqueradeBit: 0, LogVerbosity: 10, LoggingFormat: "json", Kubeconfig: "/k",
			KubeAPIQPS: 7.5, KubeAPIBurst: 9,
			Conntrack: ConntrackConfiguration{
				MaxPerCore: 0, Min: 1, TCPEstablishedTimeout: duration(time.Minute), TCPCloseWaitTimeout: duration(2 * time.Minute),
				TCPBeLiberal: true, UDPTimeout: duration(3 * time.Second), UDPStreamTimeout: duration(4 * time.Second),
			},
			DetectLocalMode: DetectLocalClusterCIDR, ServiceCIDRs: []string{},
		},
	}, {
		name: "kube-proxy's spellings",
		args: []string{
			"--hostname-override", "n2", "-v", "4", "--nodeport-addresses", "10.0.0.0/8", "--nodeport-addresses", "fd00::/64,192.168.0.0/16",
			"--metrics-bind-address", "0.0.0.0", "--healthz-bind-address=::1",
		},
		want: modified(func(c *Configuration) {
			c.NodeName = "n2"
			c.LogVerbosity = 4
			c.MetricsBindAddress = "0.0.0.0:10249"
			c.HealthzBindAddress = "[::1]:10256"
			c.NodePortAddresses = []string{"10.0.0.0/8", "fd00::/64", "192.168.0.0/16"}
		}),
	}, {
		name: "a flag overrides one field of a section of the file",
		file: header + "nodeName: n1\nconntrack:\n  min: 5\n  udpTimeout: 10s\n",
		args: []string{"--conntrack-udp-timeout=0s"},
		want: modified(func(c *Configuration) {
			c.NodeName = "n1"
			c.Conntrack.Min = 5
		}),
	}, {
		name:    "no node name anywhere",
		wantErr: []string{"nodeName: not set", "NODE_NAME"},
	}, {
		name:    "invalid result",
		args:    []string{"--node-name=n1", "--min-sync-period=1h"},
		wantErr: []string{"invalid configuration", "minSyncPeriod: 1h0m0s is longer than syncPeriod (30s)"},
	}, {
		name:    "bad file",
		file:    header + "nope: 1\n",
		env:     "n1",
		wantErr: []string{`unknown field "nope"`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(NodeNameEnv, tt.env)
			args := tt.args
			if tt.file != "" {
				path := filepath.Join(t.TempDir(), "config.yaml")
				require.NoError(t, os.WriteFile(path, []byte(tt.file), 0o600))
				args = append([]string{"--config", path}, args...)
			}
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			f := BindFlags(fs)
			require.NoError(t, fs.Parse(args))

			got, err := f.Resolve()
			if tt.wantErr != nil {
				require.Error(t, err)
				for _, want := range tt.wantErr {
					assert.Contains(t, err.Error(), want)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestResolveBeforeParse(t *testing.T) {
	f := BindFlags(pflag.NewFlagSet("test", pflag.ContinueOnError))
	_, err := f.Resolve()
	assert.ErrorContains(t, err, "not parsed")
}

func TestFlagParseErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--masquerade-bit=4294967310"}, // would wrap to 14 as an int32
		{"--min-sync-period=soon"},
		{"--v=x"},
	} {
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		fs.SetOutput(&strings.Builder{})
		BindFlags(fs)
		assert.Error(t, fs.Parse(args), "%v", args)
	}
}

// TestFlagTags checks that the `flag` tags on Configuration and the flags
// registered by BindFlags name the same flags, and that each flag sets
// exactly the field that carries its tag.
func TestFlagTags(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	BindFlags(fs)
	var registered []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "config" && f.Name != "master" {
			registered = append(registered, f.Name)
		}
	})
	var tagged []string
	for _, tf := range TaggedFields() {
		tagged = append(tagged, tf.Flags...)
	}
	sort.Strings(registered)
	sort.Strings(tagged)
	require.Equal(t, tagged, registered, "flags registered by BindFlags and `flag` tags on Configuration")

	// A value for each flag that differs from the default.
	values := map[string]string{
		"node-name": "n", "hostname-override": "n", "cluster-cidr": "10.0.0.0/8", "ip-families": "IPv6",
		"nodeport-addresses": "primary", "min-sync-period": "2s", "sync-period": "3s",
		"metrics-bind-address": ":1", "metrics-secure-serving": "true", "healthz-bind-address": ":2", "masquerade-bit": "1",
		"v": "1", "logging-format": "json", "kubeconfig": "/k", "kube-api-qps": "1", "kube-api-burst": "1",
		"conntrack-max-per-core": "1", "conntrack-min": "1", "conntrack-tcp-timeout-established": "1s",
		"conntrack-tcp-timeout-close-wait": "1s", "conntrack-tcp-be-liberal": "true",
		"conntrack-udp-timeout": "1s", "conntrack-udp-timeout-stream": "1s",
		"masquerade-all": "true", "detect-local-mode": "NodeCIDR", "pod-interface-name-prefix": "veth",
		"pod-bridge-interface": "cbr0", "service-cidrs": "10.96.0.0/16",
	}
	fields := TaggedFields()
	for _, tf := range fields {
		for _, name := range tf.Flags {
			t.Run(name, func(t *testing.T) {
				t.Setenv(NodeNameEnv, "env")
				value, ok := values[name]
				require.True(t, ok, "no test value for --%s", name)
				fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
				f := BindFlags(fs)
				require.NoError(t, fs.Parse([]string{"--" + name + "=" + value}))
				got, err := f.Resolve()
				require.NoError(t, err)
				want := Default()
				want.NodeName = "env"
				gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
				for _, other := range fields {
					g, w := gv.FieldByIndex(other.Index).Interface(), wv.FieldByIndex(other.Index).Interface()
					if other.Path == tf.Path {
						assert.NotEqual(t, w, g, "--%s did not change %s", name, other.Path)
					} else {
						assert.Equal(t, w, g, "--%s changed %s", name, other.Path)
					}
				}
			})
		}
	}
}

// TestTaggedFields checks that every field of Configuration, in sections
// too, is either set by a flag or known to have none.
func TestTaggedFields(t *testing.T) {
	noFlag := []string{"apiVersion", "kind"}
	var paths []string
	for _, tf := range TaggedFields() {
		paths = append(paths, tf.Path)
	}
	assert.Contains(t, paths, "conntrack.udpStreamTimeout")
	data, err := json.Marshal(Default())
	require.NoError(t, err)
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data, &top))
	var conntrack map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(top["conntrack"], &conntrack))
	delete(top, "conntrack")
	var want []string
	for name := range top {
		if !slices.Contains(noFlag, name) {
			want = append(want, name)
		}
	}
	for name := range conntrack {
		want = append(want, "conntrack."+name)
	}
	assert.ElementsMatch(t, want, paths)
}

func TestMasterFlag(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f := BindFlags(fs)
	require.NoError(t, fs.Parse([]string{"--master=https://192.0.2.1:6443"}))
	assert.Equal(t, "https://192.0.2.1:6443", f.Master())
}

func TestResolveIgnoresOtherFlags(t *testing.T) {
	t.Setenv(NodeNameEnv, "n1")
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f := BindFlags(fs)
	fs.Bool("version", false, "registered by someone else")
	require.NoError(t, fs.Parse([]string{"--version"}))
	_, err := f.Resolve()
	assert.NoError(t, err)
}
