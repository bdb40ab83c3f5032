package loader

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// kinds are the objects that are loaded, with the apiVersion each must have.
var kinds = map[string]struct {
	apiVersion string
	namespaced bool
}{
	"Service":       {apiVersion: "v1", namespaced: true},
	"EndpointSlice": {apiVersion: "discovery.k8s.io/v1", namespaced: true},
	"Node":          {apiVersion: "v1", namespaced: false},
}

// loader collects objects and problems while Load walks the documents.
type loader struct {
	objects  *Objects
	problems []Problem
	// seen maps "Kind namespace/name" to where that object was first found.
	seen map[string]string
}

func newLoader() *loader {
	return &loader{objects: &Objects{}, seen: map[string]string{}}
}

func (l *loader) problem(object, field, message string) {
	l.problems = append(l.problems, Problem{Object: object, Field: field, Message: message})
}

// header is what is read from an object before its kind is known.
type header struct {
	apiVersion, kind, namespace, name string
}

// document parses one document and loads the object or list in it.
func (l *loader) document(doc document) {
	where := fmt.Sprintf("document %d", doc.number)
	if doc.err != nil {
		l.problem(where, "", doc.err.Error())
		return
	}
	data := doc.json
	if data == nil {
		var err error
		if data, err = yaml.YAMLToJSON(doc.yaml); err != nil {
			l.problem(where, "", describeYAMLError(doc, err))
			return
		}
	}
	fields, ok := l.fields(where, data)
	if !ok || fields == nil {
		return
	}
	h, ok := l.header(where, fields)
	if !ok {
		return
	}
	if h.kind == "List" || (strings.HasSuffix(h.kind, "List") && fields["items"] != nil) {
		l.list(where, h, fields["items"])
		return
	}
	l.object(where, h, data)
}

// list loads the items of a List. Items of a typed list such as ServiceList
// may leave out kind and apiVersion, as the API server does.
func (l *loader) list(where string, list header, items json.RawMessage) {
	var raws []json.RawMessage
	if items != nil && jsonKind(items) != "null" {
		if err := json.Unmarshal(items, &raws); err != nil {
			l.problem(where, "items", fmt.Sprintf("want a list of objects, got %s; %s skipped", jsonKind(items), list.kind))
			return
		}
	}
	for i, raw := range raws {
		itemWhere := fmt.Sprintf("%s, items[%d]", where, i)
		fields, ok := l.fields(itemWhere, raw)
		if !ok || fields == nil {
			continue
		}
		h, ok := l.header(itemWhere, fields)
		if !ok {
			continue
		}
		if list.kind != "List" {
			if h.kind == "" {
				h.kind = strings.TrimSuffix(list.kind, "List")
			}
			if h.apiVersion == "" {
				h.apiVersion = list.apiVersion
			}
		}
		if strings.HasSuffix(h.kind, "List") && fields["items"] != nil {
			l.problem(itemWhere, "", fmt.Sprintf("ignored: a %s inside a %s is not supported", h.kind, list.kind))
			continue
		}
		l.object(itemWhere, h, raw)
	}
}

// fields reads data as a JSON object. It returns nil fields and true for
// null, which an empty document parses to.
func (l *loader) fields(where string, data []byte) (map[string]json.RawMessage, bool) {
	kind := jsonKind(data)
	if kind == "null" {
		return nil, true
	}
	var fields map[string]json.RawMessage
	if kind != "an object" || json.Unmarshal(data, &fields) != nil {
		l.problem(where, "", fmt.Sprintf("not a Kubernetes object: want a mapping with apiVersion and kind, got %s", kind))
		return nil, false
	}
	return fields, true
}

// header reads kind, apiVersion, namespace and name, as far as they can be
// read; only a kind or apiVersion that is not a string is a problem here.
func (l *loader) header(where string, fields map[string]json.RawMessage) (header, bool) {
	var h header
	for _, f := range []struct {
		name string
		into *string
	}{{"kind", &h.kind}, {"apiVersion", &h.apiVersion}} {
		raw := fields[f.name]
		if raw == nil || jsonKind(raw) == "null" {
			continue
		}
		if err := json.Unmarshal(raw, f.into); err != nil {
			l.problem(where, f.name, fmt.Sprintf("want a string, got %s; object skipped", jsonKind(raw)))
			return h, false
		}
	}
	var meta struct {
		Namespace json.RawMessage `json:"namespace"`
		Name      json.RawMessage `json:"name"`
	}
	if json.Unmarshal(fields["metadata"], &meta) == nil {
		// A name that is not a string stays unread; decoding reports it.
		_ = json.Unmarshal(meta.Namespace, &h.namespace)
		_ = json.Unmarshal(meta.Name, &h.name)
	}
	return h, true
}

// object decodes one object of a kind that is loaded, or says why not.
func (l *loader) object(where string, h header, data []byte) {
	kind, known := kinds[h.kind]
	if known && kind.namespaced && h.namespace == "" {
		h.namespace = metav1.NamespaceDefault
	}
	id := objectName(where, h)
	switch {
	case h.kind == "":
		l.problem(id, "kind", "missing kind; object skipped")
		return
	case !known:
		l.problem(id, "", fmt.Sprintf("ignored: kind %s is not used", h.kind))
		return
	case h.apiVersion == "":
		l.problem(id, "apiVersion", fmt.Sprintf("missing apiVersion, want %s; object skipped", kind.apiVersion))
		return
	case h.apiVersion != kind.apiVersion:
		l.problem(id, "apiVersion", fmt.Sprintf("ignored: %s %s is not used, only %s", h.kind, h.apiVersion, kind.apiVersion))
		return
	}
	gvk := schema.FromAPIVersionAndKind(h.apiVersion, h.kind)
	switch h.kind {
	case "Service":
		if s := decodeObject[corev1.Service](l, id, where, data, gvk, kind.namespaced); s != nil {
			l.objects.Services = append(l.objects.Services, s)
		}
	case "EndpointSlice":
		if s := decodeObject[discoveryv1.EndpointSlice](l, id, where, data, gvk, kind.namespaced); s != nil {
			l.objects.EndpointSlices = append(l.objects.EndpointSlices, s)
		}
	case "Node":
		if n := decodeObject[corev1.Node](l, id, where, data, gvk, kind.namespaced); n != nil {
			l.objects.Nodes = append(l.objects.Nodes, n)
		}
	}
}

// decodeObject decodes data into a new T, fills in the type and the default
// namespace, and checks that it has a name not seen before. It returns nil,
// after recording a problem, when the object is to be skipped.
func decodeObject[T any, PT kubeObject[T]](l *loader, id, where string, data []byte, gvk schema.GroupVersionKind, namespaced bool) PT {
	obj := PT(new(T))
	if field, message, ok := decode(data, obj); !ok {
		l.problem(id, field, message+"; object skipped")
		return nil
	}
	if obj.GetName() == "" {
		l.problem(id, "metadata.name", "missing name; object skipped")
		return nil
	}
	if namespaced && obj.GetNamespace() == "" {
		obj.SetNamespace(metav1.NamespaceDefault)
	}
	if first, dup := l.seen[id]; dup {
		l.problem(id, "", fmt.Sprintf("duplicate of the one in %s; this one skipped", first))
		return nil
	}
	l.seen[id] = where
	// Items of a typed list leave kind and apiVersion out.
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj
}

// kubeObject is a pointer to a Kubernetes object type such as *corev1.Service.
type kubeObject[T any] interface {
	*T
	metav1.Object
	GetObjectKind() schema.ObjectKind
}

// objectName names an object for a Problem: "Service default/web" when its
// name is known, "Service in document 2" when only its kind is, and just
// where it is otherwise.
func objectName(where string, h header) string {
	switch {
	case h.kind == "":
		return where
	case h.name == "":
		return h.kind + " in " + where
	case h.namespace == "":
		return h.kind + " " + h.name
	default:
		return h.kind + " " + h.namespace + "/" + h.name
	}
}

// jsonKind says what sort of JSON value data is, for messages.
func jsonKind(data []byte) string {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 {
		return "nothing"
	}
	switch data[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// yamlLine matches the line number at the start of a YAML parser error.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// describeYAMLError turns a YAML parse error into a message whose line
// number counts from the start of the input, not of the document.
func describeYAMLError(doc document, err error) string {
	if doc.jsonErr != nil {
		return doc.jsonErr.Error()
	}
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			return fmt.Sprintf("not valid YAML at line %d: %s", doc.line+n-1, msg[len(m[0]):])
		}
	}
	return fmt.Sprintf("not valid YAML (document starts at line %d): %s", doc.line, msg)
}
