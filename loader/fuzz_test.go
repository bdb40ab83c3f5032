package loader

import (
	"bytes"
	"testing"
)

// FuzzLoad checks that no input makes Load panic or fail, that every
// Problem says what is wrong, and that every object it returns is usable.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		"",
		webService,
		kubectlList,
		jsonList,
		"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n" + webService,
		"apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: abc}]}\n",
		"apiVersion: v1\nkind: ServiceList\nitems:\n- metadata: {name: a}\n",
		`{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a"}} {"kind": `,
		"a: [\n---\n...\n- 1\n",
		"\xff\xfea\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, problems, err := Load(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Load returned an error for in-memory input: %v", err)
		}
		for _, p := range problems {
			if p.Message == "" || p.Object == "" {
				t.Errorf("problem without object or message: %#v", p)
			}
		}
		for _, s := range objs.Services {
			if s.Name == "" || s.Namespace == "" {
				t.Errorf("Service without name or namespace: %q/%q", s.Namespace, s.Name)
			}
		}
		for _, s := range objs.EndpointSlices {
			if s.Name == "" || s.Namespace == "" {
				t.Errorf("EndpointSlice without name or namespace: %q/%q", s.Namespace, s.Name)
			}
		}
		for _, n := range objs.Nodes {
			if n.Name == "" {
				t.Error("Node without name")
			}
		}
	})
}
