// Package loader reads Services, EndpointSlices and Nodes from what
// `kubectl get services,endpointslices,nodes -A -o yaml` (or `-o json`)
// prints, for the commands that work from a file instead of an API server.
//
// Input problems never stop loading: each one becomes a Problem naming the
// document or object and the field, the offending part is skipped and the
// rest loads. Only a failure to read the input is an error.
package loader

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Objects holds the objects that loaded, each kind in input order.
type Objects struct {
	// Services are the v1 Services.
	Services []*corev1.Service
	// EndpointSlices are the discovery.k8s.io/v1 EndpointSlices.
	EndpointSlices []*discoveryv1.EndpointSlice
	// Nodes are the v1 Nodes.
	Nodes []*corev1.Node
}

// Problem is something in the input that was skipped or could not be used.
type Problem struct {
	// Object names what the problem is in: "Service default/web" when the
	// kind and name can be read, otherwise where it is, such as "document 3"
	// or "Service in document 2, items[4]".
	Object string
	// Field is the path of the offending field inside the object, such as
	// "spec.ports[0].port", or "" when the problem is not about one field.
	Field string
	// Message says what is wrong and what was done about it.
	Message string
}

// String returns the problem as one line: object, field (if any), message.
func (p Problem) String() string {
	object := p.Object
	if object == "" {
		object = "input"
	}
	if p.Field == "" {
		return object + ": " + p.Message
	}
	return object + ": " + p.Field + ": " + p.Message
}

// DefaultMaxInputSize is the largest input Load takes: 256 MiB, several
// times the dump of a cluster at Kubernetes' scalability limits, and small
// enough that a wrong file (a disk image, /dev/zero) is refused before it
// costs the machine its memory.
const DefaultMaxInputSize int64 = 256 << 20

// ErrTooLarge is returned for input over the size limit.
var ErrTooLarge = errors.New("input too large")

// Load reads YAML or JSON from r and returns the Services, EndpointSlices and
// Nodes in it, with a Problem for everything it skipped. The input may be one
// object, a List (kind List or a typed list such as ServiceList), a stream of
// YAML documents separated by "---", or concatenated JSON objects, in any mix.
// The error is non-nil only when reading r fails or the input is larger
// than DefaultMaxInputSize.
func Load(r io.Reader) (*Objects, []Problem, error) {
	return LoadLimit(r, DefaultMaxInputSize)
}

// LoadLimit is Load with a size limit in bytes: larger input is refused
// whole, with an error wrapping ErrTooLarge.
func LoadLimit(r io.Reader, maxSize int64) (*Objects, []Problem, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading input: %w", err)
	}
	if int64(len(data)) > maxSize {
		return nil, nil, fmt.Errorf("%w: more than %s", ErrTooLarge, sizeText(maxSize))
	}
	l := newLoader()
	data, err = toUTF8(data)
	if err != nil {
		l.problem("input", "", err.Error())
		return l.objects, l.problems, nil
	}
	for _, doc := range splitDocuments(data) {
		l.document(doc)
	}
	return l.objects, l.problems, nil
}

// LoadFile is Load reading the file at path, or standard input when path is "-".
func LoadFile(path string) (*Objects, []Problem, error) {
	return LoadFileLimit(path, DefaultMaxInputSize)
}

// LoadFileLimit is LoadFile with a size limit in bytes, as LoadLimit's.
func LoadFileLimit(path string, maxSize int64) (*Objects, []Problem, error) {
	if path == "-" {
		objects, problems, err := LoadLimit(os.Stdin, maxSize)
		if err != nil {
			return nil, nil, fmt.Errorf("loading standard input: %w", err)
		}
		return objects, problems, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening objects file: %w", err)
	}
	defer f.Close()
	objects, problems, err := LoadLimit(f, maxSize)
	if err != nil {
		return nil, nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return objects, problems, nil
}

// sizeText writes a size in bytes the way a person gives it: "256 MiB",
// "1.5 KiB", "100 bytes".
func sizeText(n int64) string {
	for _, u := range []struct {
		unit string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size {
			return strconv.FormatFloat(float64(n)/float64(u.size), 'f', -1, 64) + " " + u.unit
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
