package reliability

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// hostileStrings try to end a name, a quoted string or a set element in
// the nft text, or to reach the kernel with bytes it would take apart
// differently; each is a place where an unvalidated dump could change the
// ruleset's structure.
var hostileStrings = []string{
	`x" ; flush ruleset ; "`,
	"x}\nchain evil { type filter hook input priority 0; policy drop; }",
	"x\n}\ntable ip evil {\n",
	`back\slash`,
	"a b",
	"ünï-サービス",
	"UPPER",
	"x\x00y",
	"# comment",
	"$var @set 'q'",
	"10.96.0.1 . tcp . 80 : goto evil",
	"192.168.0.1, 0.0.0.0/0",
	strings.Repeat("p", 300),
}

// hostileServiceNS is the namespace of the hostile Services whose names
// are not the hostile part.
const hostileServiceNS = "hostile"

// hostilePlace puts one hostile string into an object of the dump: the
// i-th hostile Service (and its slice), or the Node.
type hostilePlace struct {
	name string
	// svc builds the i-th hostile Service and its slices around h.
	svc func(i int, h string) (*corev1.Service, []*discoveryv1.EndpointSlice)
	// node changes the Node around h, when the place is in the Node.
	node func(n *corev1.Node, h string)
	// skipped is whether every hostile string here is refused, as the API
	// server would refuse it, and apply must exit with status 3.
	skipped bool
	// whole is whether the refusal takes the whole Service (or the Node's
	// address) out, so that the ruleset is the control's alone. Otherwise
	// the Service is programmed without what was refused.
	whole bool
	// programmed is whether every hostile Service is programmed all the
	// same: the string is in a field that never reaches the ruleset.
	programmed bool
}

// hostileService is a well-formed Service of the hostile namespace, with
// endpoints in 10.244.77.0/24, for places that change one field.
func hostileService(i int, opts ...rulestest.ServiceOption) (*corev1.Service, []*discoveryv1.EndpointSlice) {
	opts = append([]rulestest.ServiceOption{created(2024), rulestest.Port(tcp, "http", 80)}, opts...)
	svc := rulestest.Service(hostileServiceNS, fmt.Sprintf("h%d", i), fmt.Sprintf("10.96.77.%d", i+1), opts...)
	sl := rulestest.SliceOf(svc, svc.Name+"-1", rulestest.SlicePort(tcp, "http", 8080),
		rulestest.ReadyOn(rulestest.OtherNode, fmt.Sprintf("10.244.77.%d", i+1)))
	return svc, []*discoveryv1.EndpointSlice{sl}
}

func hostilePlaces() []hostilePlace {
	withSvc := func(mutate func(svc *corev1.Service, h string)) func(int, string) (*corev1.Service, []*discoveryv1.EndpointSlice) {
		return func(i int, h string) (*corev1.Service, []*discoveryv1.EndpointSlice) {
			svc, sls := hostileService(i)
			mutate(svc, h)
			return svc, sls
		}
	}
	withSlice := func(mutate func(sl *discoveryv1.EndpointSlice, h string)) func(int, string) (*corev1.Service, []*discoveryv1.EndpointSlice) {
		return func(i int, h string) (*corev1.Service, []*discoveryv1.EndpointSlice) {
			svc, sls := hostileService(i)
			mutate(sls[0], h)
			return svc, sls
		}
	}
	return []hostilePlace{
		{name: "Service name", skipped: true, whole: true, svc: func(i int, h string) (*corev1.Service, []*discoveryv1.EndpointSlice) {
			svc, sls := hostileService(i)
			svc.Name, sls[0].Labels[discoveryv1.LabelServiceName] = h, h
			return svc, sls
		}},
		{name: "namespace", skipped: true, whole: true, svc: func(i int, h string) (*corev1.Service, []*discoveryv1.EndpointSlice) {
			svc, sls := hostileService(i)
			svc.Namespace, sls[0].Namespace = h, h
			return svc, sls
		}},
		{name: "port name", skipped: true, whole: true, svc: func(i int, h string) (*corev1.Service, []*discoveryv1.EndpointSlice) {
			svc, sls := hostileService(i)
			svc.Spec.Ports[0].Name, sls[0].Ports[0].Name = h, &h
			return svc, sls
		}},
		{name: "EndpointSlice port name", skipped: true, svc: withSlice(func(sl *discoveryv1.EndpointSlice, h string) { sl.Ports[0].Name = &h })},
		{name: "protocol", skipped: true, whole: true, svc: withSvc(func(svc *corev1.Service, h string) { svc.Spec.Ports[0].Protocol = corev1.Protocol(h) })},
		{name: "ClusterIP", skipped: true, whole: true, svc: withSvc(func(svc *corev1.Service, h string) { svc.Spec.ClusterIP, svc.Spec.ClusterIPs = h, []string{h} })},
		{name: "external IP", skipped: true, svc: withSvc(func(svc *corev1.Service, h string) { svc.Spec.ExternalIPs = []string{h} })},
		{name: "load-balancer ingress IP", skipped: true, svc: withSvc(func(svc *corev1.Service, h string) {
			rulestest.LoadBalancer(h)(svc)
		})},
		{name: "load-balancer source range", skipped: true, svc: withSvc(func(svc *corev1.Service, h string) {
			rulestest.LoadBalancer("203.0.113.77")(svc)
			rulestest.SourceRanges(h)(svc)
		})},
		{name: "endpoint address", skipped: true, svc: withSlice(func(sl *discoveryv1.EndpointSlice, h string) {
			sl.Endpoints[0].Addresses = []string{h}
		})},
		// Fields that never reach the ruleset as text, or that the API
		// server takes in any form: the Service is programmed as usual.
		{name: "load-balancer ingress hostname", programmed: true, svc: withSvc(func(svc *corev1.Service, h string) {
			svc.Spec.Type = corev1.ServiceTypeLoadBalancer
			svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: h}}
		})},
		// "UPPER" is a valid label value: that Service alone is programmed.
		{name: "label value", skipped: true, svc: withSvc(func(svc *corev1.Service, h string) {
			svc.Labels = map[string]string{"example.com/tier": h}
		})},
		{name: "annotation values", programmed: true, svc: func(i int, h string) (*corev1.Service, []*discoveryv1.EndpointSlice) {
			svc, sls := hostileService(i)
			svc.Annotations = map[string]string{"example.com/note": h, corev1.AnnotationTopologyMode: h}
			sls[0].Annotations = map[string]string{"example.com/note": h, corev1.EndpointsLastChangeTriggerTime: h}
			return svc, sls
		}},
		{name: "label and annotation keys", svc: withSvc(func(svc *corev1.Service, h string) {
			svc.Labels = map[string]string{h: "v"}
			svc.Annotations = map[string]string{h: "v"}
		})},
		{name: "ExternalName", svc: func(i int, h string) (*corev1.Service, []*discoveryv1.EndpointSlice) {
			svc, _ := hostileService(i, rulestest.ExternalName(h))
			return svc, nil
		}},
		{name: "endpoint hostname, node and zone", programmed: true, svc: withSlice(func(sl *discoveryv1.EndpointSlice, h string) {
			ep := &sl.Endpoints[0]
			ep.Hostname, ep.NodeName, ep.Zone = &h, &h, &h
			ep.Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: h}}}
		})},
		{name: "Node address", skipped: true, whole: true, node: func(n *corev1.Node, h string) {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: h})
		}},
	}
}

// TestHostileStringsThroughApply feeds every hostile string, in each
// place of a dump where a string could reach the ruleset, through the
// binary's `nftproxy apply` into an empty network namespace of the test's
// own, next to a well-formed control Service. Each apply commits (exit 0,
// or 3 where something was left out); the kernel's ruleset afterwards is
// the control's alone plus, and only, the chains, sets and elements that
// carry the identity of a hostile Service; and `nftproxy render` of the
// same dump loads with `nft -c -f`.
func TestHostileStringsThroughApply(t *testing.T) {
	control := rulestest.Service("control", "web", "10.96.200.1", created(2020),
		rulestest.Port(tcp, "http", 80), rulestest.NodePorts(30100), rulestest.ExternalIPs("203.0.113.200"))
	controlSlice := rulestest.SliceOf(control, "web-1", rulestest.SlicePort(tcp, "http", 8080),
		rulestest.ReadyOn(rulestest.OtherNode, "10.244.50.1", "10.244.50.2"))
	node := func() *corev1.Node { return rulestest.Node("node-a", rulestest.InternalIP("192.168.0.1")) }

	dir := t.TempDir()
	baselineDump := filepath.Join(dir, "control.yaml")
	writeObjectsDump(t, baselineDump, []any{control, controlSlice, node()})
	baseline, _ := applyInNewNamespace(t, baselineDump, 0)
	controlOwn := baseline.ownedBy("control", "web")
	for _, kind := range []string{"chain ", "element ", "rule "} {
		require.True(t, slices.ContainsFunc(controlOwn, func(k string) bool { return strings.HasPrefix(k, kind) }),
			"the control Service owns a %s: %v", kind, controlOwn)
	}

	for _, place := range hostilePlaces() {
		t.Run(place.name, func(t *testing.T) {
			objects := []any{control, controlSlice}
			var ids []serviceID
			n := node()
			for i, h := range hostileStrings {
				if place.node != nil {
					place.node(n, h)
					continue
				}
				svc, sls := place.svc(i, h)
				objects = append(objects, svc)
				for _, sl := range sls {
					objects = append(objects, sl)
				}
				ids = append(ids, serviceID{svc.Namespace, svc.Name})
			}
			objects = append(objects, n)
			dump := filepath.Join(t.TempDir(), "hostile.yaml")
			writeObjectsDump(t, dump, objects)

			want := []int{0, 3}
			if place.skipped {
				want = []int{3}
			}
			got, _ := applyInNewNamespace(t, dump, want...)
			require.Empty(t, foreignObjects(baseline, got, ids))
			if place.programmed {
				for _, id := range ids {
					require.NotEmpty(t, got.ownedBy(id.namespace, id.name), "Service %s/%s programmed", id.namespace, id.name)
				}
			}
			if place.whole {
				require.Equal(t, baseline.keys(), got.keys(), "every hostile %s left out: the ruleset is the control's alone", place.name)
			}
			checkRenderLoads(t, dump, want)
		})
	}
}

// TestForeignObjectsSeesForeignObjects: the check above is not blind.
// Objects added by hand after an apply, as an injection would add them,
// are each reported, and so is a control object taken away.
func TestForeignObjectsSeesForeignObjects(t *testing.T) {
	control := rulestest.Service("control", "web", "10.96.200.1", created(2020), rulestest.Port(tcp, "http", 80))
	controlSlice := rulestest.SliceOf(control, "web-1", rulestest.SlicePort(tcp, "http", 8080),
		rulestest.ReadyOn(rulestest.OtherNode, "10.244.50.1"))
	dump := filepath.Join(t.TempDir(), "control.yaml")
	writeObjectsDump(t, dump, []any{control, controlSlice, rulestest.Node("node-a", rulestest.InternalIP("192.168.0.1"))})
	baseline, _ := applyInNewNamespace(t, dump, 0)
	hostile := []serviceID{{hostileServiceNS, "h0"}}
	tests := []struct {
		name   string
		script string
		want   string
	}{
		{"a table", "add table ip evil", "created, but no hostile Service's own: table ip  evil"},
		{"a chain in nftproxy's table", "add chain ip nftproxy evil", "created, but no hostile Service's own: chain ip nftproxy evil"},
		{"a rule in a fixed chain", "add rule ip nftproxy services accept", "created, but no hostile Service's own: rule ip nftproxy services"},
		{"an element without a Service's comment", "add element ip nftproxy cluster-ips { 10.96.99.1 }",
			"created, but no hostile Service's own: element ip nftproxy cluster-ips"},
		{"an element with another Service's comment", `add element ip nftproxy cluster-ips { 10.96.99.1 comment "other/svc" }`,
			"created, but no hostile Service's own: element ip nftproxy cluster-ips"},
		{"a control element taken away", "delete element ip nftproxy cluster-ips { 10.96.200.1 }",
			"missing (the control's or a fixed object): element ip nftproxy cluster-ips"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ns := applyInNewNamespace(t, dump, 0)
			_, err := netnstest.Exec(ns, "nft", tt.script)
			require.NoError(t, err)
			got := foreignObjects(baseline, listRuleset(t, ns), hostile)
			require.Len(t, got, 1, "%q", got)
			require.True(t, strings.HasPrefix(got[0], tt.want), "got %q, want %q...", got[0], tt.want)
		})
	}
	// A hostile Service's own chain is its own.
	_, ns := applyInNewNamespace(t, dump, 0)
	_, err := netnstest.Exec(ns, "nft", "add chain ip nftproxy svc-abcdefgh-hostile/h0/tcp/http")
	require.NoError(t, err)
	require.Empty(t, foreignObjects(baseline, listRuleset(t, ns), hostile))
}

// serviceID is a Service's namespace and name.
type serviceID struct{ namespace, name string }

// foreignObjects lists what of the baseline (the control Service and
// nftproxy's fixed objects) is missing from got, and what got has anew
// that does not carry the identity of one of the hostile Services.
func foreignObjects(baseline, got kernelRuleset, hostile []serviceID) []string {
	var out []string
	for k := range baseline {
		if _, ok := got[k]; !ok {
			out = append(out, "missing (the control's or a fixed object): "+k)
		}
	}
	for k, o := range got {
		if _, ok := baseline[k]; ok {
			continue
		}
		if !slices.ContainsFunc(hostile, func(id serviceID) bool { return o.ownedBy(id.namespace, id.name) }) {
			out = append(out, "created, but no hostile Service's own: "+k)
		}
	}
	slices.Sort(out)
	return out
}

// applyArgsOf are the flags of every apply and render of this test.
func applyArgsOf(cmd, file string) []string {
	args := applyArgs(file)
	args[0] = cmd
	return args
}

// applyInNewNamespace runs `nftproxy apply` of dump in a fresh namespace,
// requires one of the exit statuses, and returns the namespace's whole
// ruleset as nft lists it, and the namespace.
func applyInNewNamespace(t *testing.T, dump string, statuses ...int) (kernelRuleset, string) {
	t.Helper()
	ns := netnstest.NewNamespace(t)
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, framework.Binary()}, applyArgsOf("apply", dump)...)...)
	out, err := cmd.CombinedOutput()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code <= 0 {
		t.Fatalf("running nftproxy apply: %v\n%s", err, out)
	}
	require.Contains(t, statuses, code, "nftproxy apply's exit status:\n%.4000s", out)
	return listRuleset(t, ns), ns
}

// checkRenderLoads runs `nftproxy render` of dump and checks its output
// with `nft -c -f` in a fresh namespace.
func checkRenderLoads(t *testing.T, dump string, statuses []int) {
	t.Helper()
	cmd := exec.Command(framework.Binary(), applyArgsOf("render", dump)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code <= 0 {
		t.Fatalf("running nftproxy render: %v\n%s", err, stderr.String())
	}
	require.Contains(t, statuses, code, "nftproxy render's exit status:\n%.4000s", stderr.String())
	path := filepath.Join(t.TempDir(), "rendered.nft")
	require.NoError(t, os.WriteFile(path, out, 0o644))
	_, err = netnstest.Exec(netnstest.NewNamespace(t), "nft", "-c", "-f", path)
	require.NoError(t, err, "nft -c -f of the rendered ruleset")
}

// writeObjectsDump writes objects as one YAML v1 List, as `kubectl get -o
// yaml` gives, with each object's kind set.
func writeObjectsDump(t *testing.T, path string, objects []any) {
	t.Helper()
	items := make([]any, 0, len(objects))
	for _, o := range objects {
		switch o := o.(type) {
		case *corev1.Service:
			o = o.DeepCopy()
			o.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
			items = append(items, o)
		case *discoveryv1.EndpointSlice:
			o = o.DeepCopy()
			o.TypeMeta = metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"}
			items = append(items, o)
		case *corev1.Node:
			o = o.DeepCopy()
			o.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Node"}
			items = append(items, o)
		default:
			t.Fatalf("writing a dump: %T is not a Service, EndpointSlice or Node", o)
		}
	}
	b, err := yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

// kernelObject is one table, chain, set, map, element or rule of a
// namespace's ruleset, as `nft -j list ruleset` shows it.
type kernelObject struct {
	kind, family, table string
	// name is a chain's, set's or map's own name; for an element or a
	// rule, the name of the set, map or chain it is in.
	name string
	// comment is an element's or rule's comment.
	comment string
	// text is the element's value or the rule's expressions, as JSON.
	text string
}

// ownedBy reports whether the object carries the identity of the Service
// namespace/name: a chain or set whose name is one of the Service's (a
// prefix, a hash, then namespace/name/...), or an element or rule with
// the Service's comment, or in one of its chains or sets. Elements of the
// hairpin set have no comment: they are owned by the Services of the test's
// endpoint range.
func (o kernelObject) ownedBy(namespace, name string) bool {
	own := func(objName string) bool {
		parts := strings.SplitN(objName, "-", 3)
		if len(parts) != 3 {
			return false
		}
		id := nameSafe(namespace) + "/" + nameSafe(name) + "/"
		return strings.HasPrefix(parts[2], id) || (len(parts[2]) >= 200 && strings.HasPrefix(id, parts[2]))
	}
	comment := namespace + "/" + name
	switch o.kind {
	case "chain", "set", "map":
		return own(o.name)
	case "element":
		if o.comment != "" {
			return o.comment == comment || strings.HasPrefix(o.comment, comment+":")
		}
		return own(o.name) || (o.name == "hairpin-endpoints" && namespace == hostileServiceNS && strings.Contains(o.text, "10.244.77."))
	case "rule":
		return own(o.name)
	}
	return false
}

func (o kernelObject) String() string {
	return fmt.Sprintf("%s %s %s %s %q %s", o.kind, o.family, o.table, o.name, o.comment, o.text)
}

// kernelRuleset is every object of a namespace's ruleset, by its String.
type kernelRuleset map[string]kernelObject

func (k kernelRuleset) keys() []string {
	out := make([]string, 0, len(k))
	for s := range k {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func (k kernelRuleset) ownedBy(namespace, name string) []string {
	var out []string
	for s, o := range k {
		if o.ownedBy(namespace, name) {
			out = append(out, s)
		}
	}
	return out
}

// listRuleset lists the whole ruleset of a namespace, every table of every
// family, with `nft -j`: an observer that is not nftproxy's own decoder.
func listRuleset(t *testing.T, ns string) kernelRuleset {
	t.Helper()
	out, err := netnstest.Exec(ns, "nft", "-j", "list", "ruleset")
	require.NoError(t, err)
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &doc), "nft -j output: %.2000s", out)
	k := kernelRuleset{}
	add := func(o kernelObject) { k[o.String()] = o }
	for _, entry := range doc.Nftables {
		for kind, raw := range entry {
			var v struct {
				Family  string            `json:"family"`
				Table   string            `json:"table"`
				Name    string            `json:"name"`
				Chain   string            `json:"chain"`
				Comment string            `json:"comment"`
				Elem    []json.RawMessage `json:"elem"`
				Expr    json.RawMessage   `json:"expr"`
			}
			if kind == "metainfo" {
				continue
			}
			require.NoError(t, json.Unmarshal(raw, &v), "%s: %s", kind, raw)
			switch kind {
			case "table":
				add(kernelObject{kind: kind, family: v.Family, name: v.Name})
			case "chain":
				add(kernelObject{kind: kind, family: v.Family, table: v.Table, name: v.Name})
			case "set", "map":
				add(kernelObject{kind: kind, family: v.Family, table: v.Table, name: v.Name})
				for _, e := range v.Elem {
					add(element(t, v.Family, v.Table, v.Name, e))
				}
			case "rule":
				add(kernelObject{kind: kind, family: v.Family, table: v.Table, name: v.Chain, comment: v.Comment, text: string(v.Expr)})
			default:
				// Anything else (flowtables, counters, quotas...) nftproxy
				// never creates: keep it, so that it shows as foreign.
				add(kernelObject{kind: kind, family: v.Family, table: v.Table, name: v.Name, text: string(raw)})
			}
		}
	}
	return k
}

// element is one element of a set or map. nft -j writes an element with a
// comment as {"elem": {"val": ..., "comment": ...}}, and a map's as
// [key, value].
func element(t *testing.T, family, table, set string, raw json.RawMessage) kernelObject {
	t.Helper()
	o := kernelObject{kind: "element", family: family, table: table, name: set, text: string(raw)}
	var pair []json.RawMessage
	key := raw
	if json.Unmarshal(raw, &pair) == nil && len(pair) == 2 {
		key = pair[0]
	}
	var withComment struct {
		Elem struct {
			Comment string `json:"comment"`
		} `json:"elem"`
	}
	if json.Unmarshal(key, &withComment) == nil {
		o.comment = withComment.Elem.Comment
	}
	return o
}

// nameSafe is how nftproxy writes a name into an object name: every
// character but letters, digits and "/_.-" becomes '_' (rules' own
// nameSafe, which is not exported).
func nameSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("/_.-", r):
			return r
		}
		return '_'
	}, s)
}
