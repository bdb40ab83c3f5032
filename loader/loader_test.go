package loader

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// kubectlList is what `kubectl get services,endpointslices,nodes -A -o yaml`
// prints, cut down to one of each kind.
const kubectlList = `apiVersion: v1
items:
- apiVersion: v1
  kind: Service
  metadata:
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: |
        {"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"name":"web","namespace":"shop"}}
    creationTimestamp: "2026-01-12T09:14:03Z"
    labels:
      app: web
    managedFields:
    - apiVersion: v1
      fieldsType: FieldsV1
      fieldsV1:
        f:metadata:
          f:labels:
            .: {}
            f:app: {}
        f:spec:
          f:ports:
            .: {}
            k:{"port":80,"protocol":"TCP"}:
              .: {}
              f:name: {}
      manager: kubectl-client-side-apply
      operation: Update
      time: "2026-01-12T09:14:03Z"
    name: web
    namespace: shop
    resourceVersion: "1234"
    uid: 6f1c2a9e-8d0b-4c3e-9a53-2f7d0c1b9e44
  spec:
    clusterIP: 10.96.120.7
    clusterIPs:
    - 10.96.120.7
    internalTrafficPolicy: Cluster
    ipFamilies:
    - IPv4
    ipFamilyPolicy: SingleStack
    ports:
    - name: http
      port: 80
      protocol: TCP
      targetPort: http
    - name: metrics
      port: 9090
      protocol: TCP
      targetPort: 9090
    selector:
      app: web
    sessionAffinity: None
    type: ClusterIP
  status:
    loadBalancer: {}
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 10.244.1.5
    conditions:
      ready: true
      serving: true
      terminating: false
    nodeName: worker-1
    targetRef:
      kind: Pod
      name: web-7c9f8d6b5-x2x4k
      namespace: shop
      uid: 0b2c7e1a-5f44-4d8e-b7a1-93e2c4d6f701
  - addresses:
    - 10.244.2.9
    conditions:
      ready: false
      serving: true
      terminating: true
    nodeName: worker-2
  kind: EndpointSlice
  metadata:
    creationTimestamp: "2026-01-12T09:14:03Z"
    generateName: web-
    generation: 3
    labels:
      endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
      kubernetes.io/service-name: web
    managedFields:
    - apiVersion: discovery.k8s.io/v1
      fieldsType: FieldsV1
      fieldsV1:
        f:addressType: {}
        f:endpoints: {}
      manager: kube-controller-manager
      operation: Update
      time: "2026-01-12T09:15:40Z"
    name: web-8xk2p
    namespace: shop
    ownerReferences:
    - apiVersion: v1
      blockOwnerDeletion: true
      controller: true
      kind: Service
      name: web
      uid: 6f1c2a9e-8d0b-4c3e-9a53-2f7d0c1b9e44
    resourceVersion: "1301"
    uid: 3d5e7f90-1a2b-4c6d-8e0f-a1b2c3d4e5f6
  ports:
  - name: http
    port: 8080
    protocol: TCP
  - name: metrics
    port: 9090
    protocol: TCP
- apiVersion: v1
  kind: Node
  metadata:
    labels:
      kubernetes.io/hostname: worker-1
      kubernetes.io/os: linux
    name: worker-1
    resourceVersion: "998"
  spec:
    podCIDR: 10.244.1.0/24
    podCIDRs:
    - 10.244.1.0/24
  status:
    addresses:
    - address: 172.18.0.3
      type: InternalIP
    - address: worker-1
      type: Hostname
    capacity:
      cpu: "8"
      memory: 16331208Ki
      pods: "110"
    conditions:
    - lastHeartbeatTime: "2026-01-12T10:00:00Z"
      lastTransitionTime: "2026-01-12T09:00:00Z"
      message: kubelet is posting ready status
      reason: KubeletReady
      status: "True"
      type: Ready
kind: List
metadata:
  resourceVersion: ""
`

// jsonList is what `kubectl get services,nodes -o json` prints, cut down.
const jsonList = `{
    "apiVersion": "v1",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default"
            },
            "spec": {
                "clusterIP": "10.96.0.1",
                "ports": [
                    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}
                ],
                "type": "ClusterIP"
            }
        },
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "control-plane"},
            "status": {"capacity": {"cpu": "4"}}
        }
    ],
    "kind": "List",
    "metadata": {"resourceVersion": ""}
}
`

const webService = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 80
`

func TestLoad(t *testing.T) {
	tests := []struct {
		name  string
		input string
		// want names every loaded object, Services first, then
		// EndpointSlices, then Nodes, each kind in input order.
		want []string
		// wantProblems must match in order; Message need only be contained
		// in the problem's message, so parser wording may change.
		wantProblems []Problem
		check        func(t *testing.T, objs *Objects)
	}{
		{
			name:  "single Service gets the default namespace",
			input: webService,
			want:  []string{"Service default/web"},
			check: func(t *testing.T, objs *Objects) {
				svc := objs.Services[0]
				assert.Equal(t, "v1", svc.APIVersion)
				assert.Equal(t, "Service", svc.Kind)
				assert.Equal(t, int32(80), svc.Spec.Ports[0].Port)
			},
		},
		{
			name:  "kubectl get -o yaml List",
			input: kubectlList,
			want:  []string{"Service shop/web", "EndpointSlice shop/web-8xk2p", "Node worker-1"},
			check: checkKubectlList,
		},
		{
			name:  "kubectl get -o json List",
			input: jsonList,
			want:  []string{"Service default/kubernetes", "Node control-plane"},
			check: func(t *testing.T, objs *Objects) {
				assert.Equal(t, intstr.FromInt32(6443), objs.Services[0].Spec.Ports[0].TargetPort)
				assert.Equal(t, "4", objs.Nodes[0].Status.Capacity.Cpu().String())
			},
		},
		{
			name: "concatenated JSON objects",
			input: `{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a"}}
{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "b"}}`,
			want: []string{"Node a", "Node b"},
		},
		{
			name: "JSON object then YAML documents",
			input: `{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a"}}
---
apiVersion: v1
kind: Node
metadata:
  name: b
`,
			want: []string{"Node a", "Node b"},
		},
		{
			name: "multi-document YAML with a ConfigMap",
			input: `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  mode: fast
---
` + webService + `---
# only a comment: not counted as a document
---
apiVersion: v1
kind: Node
metadata:
  name: worker-1
`,
			want: []string{"Service default/web", "Node worker-1"},
			wantProblems: []Problem{
				{Object: "ConfigMap shop/settings", Message: "ignored: kind ConfigMap is not used"},
			},
		},
		{
			name: "broken document between two good ones",
			input: `apiVersion: v1
kind: Node
metadata:
  name: worker-1
---
apiVersion: v1
kind: Service
metadata:
  name: broken
   namespace: shop
---
apiVersion: v1
kind: Node
metadata:
  name: worker-2
`,
			want: []string{"Node worker-1", "Node worker-2"},
			wantProblems: []Problem{
				{Object: "document 2", Message: "not valid YAML at line 10: "},
			},
		},
		{
			name:  "broken JSON after a good object",
			input: `{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a"}} {"kind": "Node",, }`,
			want:  []string{"Node a"},
			wantProblems: []Problem{
				{Object: "document 2", Message: "not valid JSON at line 1, column 82: invalid character ','"},
			},
		},
		{
			name:  "truncated JSON",
			input: `{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a"}`,
			wantProblems: []Problem{
				{Object: "document 1", Message: "not valid JSON: the input ends in the middle of a value"},
			},
		},
		{
			name:  "flow-style YAML that is not JSON",
			input: `{apiVersion: v1, kind: Node, metadata: {name: a},}`,
			want:  []string{"Node a"},
		},
		{
			name: "Service with a string port",
			input: `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  ports:
  - port: 80
  - port: "abc"
---
apiVersion: v1
kind: Service
metadata:
  name: other
`,
			want: []string{"Service default/other"},
			wantProblems: []Problem{{
				Object:  "Service shop/web",
				Field:   "spec.ports[1].port",
				Message: `want an integer (int32), got "abc"; object skipped`,
			}},
		},
		{
			name: "decoding error inside a type's own decoder",
			input: `apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80, targetPort: [8080]}]}
`,
			wantProblems: []Problem{{
				Object:  "Service default/web",
				Field:   "spec.ports.targetPort",
				Message: "got a list; object skipped",
			}},
		},
		{
			name: "decoding error with no field to name",
			input: `apiVersion: v1
kind: Node
metadata: {name: worker-1}
status: {capacity: {cpu: lots}}
`,
			wantProblems: []Problem{{
				Object:  "Node worker-1",
				Message: "cannot decode: quantities must match the regular expression",
			}},
		},
		{
			name:  "metadata that is not an object",
			input: "apiVersion: v1\nkind: Service\nmetadata: web\n",
			wantProblems: []Problem{{
				Object:  "Service in document 1",
				Field:   "metadata",
				Message: `want an object, got "web"; object skipped`,
			}},
		},
		{
			name: "typed list whose items leave out kind and apiVersion",
			input: `apiVersion: discovery.k8s.io/v1
kind: EndpointSliceList
items:
- metadata: {name: web-1, namespace: shop}
  addressType: IPv4
- metadata: {name: web-2}
  addressType: IPv6
`,
			want: []string{"EndpointSlice shop/web-1", "EndpointSlice default/web-2"},
			check: func(t *testing.T, objs *Objects) {
				assert.Equal(t, "EndpointSlice", objs.EndpointSlices[1].Kind)
				assert.Equal(t, "discovery.k8s.io/v1", objs.EndpointSlices[1].APIVersion)
			},
		},
		{
			name: "problems inside a List name the item",
			input: `apiVersion: v1
kind: List
items:
- 42
- metadata: {name: nameless-kind}
- apiVersion: discovery.k8s.io/v1beta1
  kind: EndpointSlice
  metadata: {name: old, namespace: shop}
- apiVersion: v1
  kind: Service
  metadata: {namespace: shop}
- apiVersion: v1
  kind: List
  items: []
- ` + strings.ReplaceAll(webService, "\n", "\n  "),
			want: []string{"Service default/web"},
			wantProblems: []Problem{
				{Object: "document 1, items[0]", Message: "not a Kubernetes object: want a mapping with apiVersion and kind, got a number"},
				{Object: "document 1, items[1]", Field: "kind", Message: "missing kind; object skipped"},
				{Object: "EndpointSlice shop/old", Field: "apiVersion", Message: "ignored: EndpointSlice discovery.k8s.io/v1beta1 is not used, only discovery.k8s.io/v1"},
				{Object: "Service in document 1, items[3]", Field: "metadata.name", Message: "missing name; object skipped"},
				{Object: "document 1, items[4]", Message: "ignored: a List inside a List is not supported"},
			},
		},
		{
			name:  "items that are not a list",
			input: "apiVersion: v1\nkind: List\nitems: {a: b}\n",
			wantProblems: []Problem{
				{Object: "document 1", Field: "items", Message: "want a list of objects, got an object; List skipped"},
			},
		},
		{
			name:  "missing apiVersion",
			input: "kind: Service\nmetadata: {name: web}\n",
			wantProblems: []Problem{
				{Object: "Service default/web", Field: "apiVersion", Message: "missing apiVersion, want v1; object skipped"},
			},
		},
		{
			name:  "kind that is not a string",
			input: "apiVersion: v1\nkind: [Service]\n",
			wantProblems: []Problem{
				{Object: "document 1", Field: "kind", Message: "want a string, got a list; object skipped"},
			},
		},
		{
			name:  "duplicate object keeps the first",
			input: webService + "---\n" + strings.Replace(webService, "port: 80", "port: 81", 1),
			want:  []string{"Service default/web"},
			wantProblems: []Problem{
				{Object: "Service default/web", Message: "duplicate of the one in document 1; this one skipped"},
			},
			check: func(t *testing.T, objs *Objects) {
				assert.Equal(t, int32(80), objs.Services[0].Spec.Ports[0].Port)
			},
		},
		{
			name:  "keys match case-sensitively, unknown fields are dropped",
			input: webService + "  Type: LoadBalancer\nextra: {a: 1}\n",
			want:  []string{"Service default/web"},
			check: func(t *testing.T, objs *Objects) {
				assert.Empty(t, objs.Services[0].Spec.Type)
			},
		},
		{
			name:  "CRLF line endings and a document end marker",
			input: strings.ReplaceAll(webService+"...\n---\napiVersion: v1\nkind: Node\nmetadata: {name: worker-1}\n", "\n", "\r\n"),
			want:  []string{"Service default/web", "Node worker-1"},
		},
		{
			name:  "UTF-8 byte order mark",
			input: "\xef\xbb\xbf" + webService,
			want:  []string{"Service default/web"},
		},
		{
			name:  "UTF-16 from PowerShell redirection",
			input: utf16LE(webService),
			want:  []string{"Service default/web"},
		},
		{
			name:  "a document that is only a scalar",
			input: "hello\n---\n" + webService,
			want:  []string{"Service default/web"},
			wantProblems: []Problem{
				{Object: "document 1", Message: "not a Kubernetes object: want a mapping with apiVersion and kind, got a string"},
			},
		},
		{
			name:  "empty List from kubectl",
			input: "apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: \"\"\n",
		},
		{name: "List without items", input: "apiVersion: v1\nkind: List\n"},
		{name: "empty input", input: ""},
		{name: "only separators, comments and null", input: "---\n# nothing\n---\n~\n---\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, problems, err := Load(strings.NewReader(tt.input))
			require.NoError(t, err)
			require.NotNil(t, objs)
			assert.Equal(t, tt.want, names(objs))
			require.Len(t, problems, len(tt.wantProblems), "problems: %v", problems)
			for i, want := range tt.wantProblems {
				got := problems[i]
				assert.Equal(t, want.Object, got.Object, "problem %d: %s", i, got)
				assert.Equal(t, want.Field, got.Field, "problem %d: %s", i, got)
				assert.Contains(t, got.Message, want.Message, "problem %d: %s", i, got)
			}
			if tt.check != nil && !t.Failed() {
				tt.check(t, objs)
			}
		})
	}
}

func checkKubectlList(t *testing.T, objs *Objects) {
	svc := objs.Services[0]
	assert.Equal(t, "10.96.120.7", svc.Spec.ClusterIP)
	assert.Equal(t, []corev1.ServicePort{
		{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")},
		{Name: "metrics", Port: 9090, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9090)},
	}, svc.Spec.Ports)
	assert.Len(t, svc.ManagedFields, 1)

	slice := objs.EndpointSlices[0]
	assert.Equal(t, discoveryv1.AddressTypeIPv4, slice.AddressType)
	assert.Equal(t, "web", slice.Labels[discoveryv1.LabelServiceName])
	require.Len(t, slice.Endpoints, 2)
	assert.Equal(t, []string{"10.244.1.5"}, slice.Endpoints[0].Addresses)
	assert.Equal(t, discoveryv1.EndpointConditions{
		Ready: new(true), Serving: new(true), Terminating: new(false),
	}, slice.Endpoints[0].Conditions)
	assert.Equal(t, new("worker-2"), slice.Endpoints[1].NodeName)
	assert.Equal(t, new(true), slice.Endpoints[1].Conditions.Terminating)
	assert.Equal(t, []discoveryv1.EndpointPort{
		{Name: new("http"), Port: new(int32(8080)), Protocol: new(corev1.ProtocolTCP)},
		{Name: new("metrics"), Port: new(int32(9090)), Protocol: new(corev1.ProtocolTCP)},
	}, slice.Ports)

	node := objs.Nodes[0]
	assert.Equal(t, "10.244.1.0/24", node.Spec.PodCIDR)
	assert.Equal(t, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "172.18.0.3"}, node.Status.Addresses[0])
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		problem Problem
		want    string
	}{
		{
			Problem{Object: "Service default/web", Field: "spec.ports[0].port", Message: `want an integer (int32), got "abc"; object skipped`},
			`Service default/web: spec.ports[0].port: want an integer (int32), got "abc"; object skipped`,
		},
		{
			Problem{Object: "document 3", Message: "not valid YAML at line 12: did not find expected key"},
			"document 3: not valid YAML at line 12: did not find expected key",
		},
		{Problem{Message: "x"}, "input: x"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.problem.String())
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "objects.yaml")
	require.NoError(t, os.WriteFile(path, []byte(webService), 0o600))
	objs, problems, err := LoadFile(path)
	require.NoError(t, err)
	assert.Empty(t, problems)
	assert.Equal(t, []string{"Service default/web"}, names(objs))

	_, _, err = LoadFile(filepath.Join(t.TempDir(), "missing.yaml"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestLoadReadError(t *testing.T) {
	boom := errors.New("boom")
	_, _, err := Load(failingReader{boom})
	assert.ErrorIs(t, err, boom)
	assert.ErrorContains(t, err, "reading input")
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

// names lists every object in objs as a Problem would name it.
func names(objs *Objects) []string {
	var out []string
	for _, s := range objs.Services {
		out = append(out, "Service "+s.Namespace+"/"+s.Name)
	}
	for _, s := range objs.EndpointSlices {
		out = append(out, "EndpointSlice "+s.Namespace+"/"+s.Name)
	}
	for _, n := range objs.Nodes {
		out = append(out, "Node "+n.Name)
	}
	return out
}

func utf16LE(s string) string {
	b := []byte{0xff, 0xfe}
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return string(b)
}

// TestLoadLimit refuses input over the limit whole, and takes input of
// exactly the limit.
func TestLoadLimit(t *testing.T) {
	n := int64(len(webService))
	objs, problems, err := LoadLimit(strings.NewReader(webService), n)
	require.NoError(t, err)
	assert.Empty(t, problems)
	assert.Equal(t, []string{"Service default/web"}, names(objs))

	_, _, err = LoadLimit(strings.NewReader(webService), n-1)
	assert.ErrorIs(t, err, ErrTooLarge)

	path := filepath.Join(t.TempDir(), "objects.yaml")
	require.NoError(t, os.WriteFile(path, []byte(webService), 0o600))
	_, _, err = LoadFileLimit(path, 10)
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.ErrorContains(t, err, "more than 10 bytes")
}

func TestSizeText(t *testing.T) {
	for n, want := range map[int64]string{100: "100 bytes", 1536: "1.5 KiB", DefaultMaxInputSize: "256 MiB", 3 << 30: "3 GiB"} {
		assert.Equal(t, want, sizeText(n))
	}
}
