package loader

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// decode decodes the JSON object data into obj the way the API server does:
// keys match field names case-sensitively and unknown fields are dropped
// (kubectl output has fields that are not ours to check). When decoding
// fails it returns the path of the offending field, if it can be found, and
// a message.
func decode(data []byte, obj any) (field, message string, ok bool) {
	err := utiljson.Unmarshal(data, obj)
	if err == nil {
		return "", "", true
	}
	field, message = describeDecodeError(data, reflect.TypeOf(obj).Elem(), err)
	return field, message, false
}

// describeDecodeError explains err, which decoding data into a value of type
// t returned. The case-sensitive decoder's errors carry no usable position,
// so data is decoded again with encoding/json, whose type errors give the
// offset of the value at fault; the path found there is trusted only if it
// agrees with the field the error names.
func describeDecodeError(data []byte, t reflect.Type, err error) (field, message string) {
	var typeErr *json.UnmarshalTypeError
	if errors.As(json.Unmarshal(data, reflect.New(t).Interface()), &typeErr) {
		path, value, found := valueAt(data, typeErr.Offset)
		if found && sameField(path, typeErr.Field) {
			return path, "want " + describeType(typeErr.Type) + ", got " + value
		}
		// An error from a type's own UnmarshalJSON (such as IntOrString's)
		// has an offset into that value alone, but its field can still be
		// named if both decoders agree on it.
		if typeErr.Field != "" && strings.Contains(err.Error(), " "+typeErr.Struct+"."+typeErr.Field+" ") {
			return typeErr.Field, "want " + describeType(typeErr.Type) + ", got " + describeJSONValue(typeErr.Value)
		}
	}
	return "", "cannot decode: " + err.Error()
}

// indexes matches list indexes in a field path: "[0]" or, as some JSON
// decoders write them, ".0".
var indexes = regexp.MustCompile(`\[\d+\]|\.\d+\b`)

// sameField reports whether path, found by valueAt, is the field that a
// type error names. An error inside a map names the map, not the key.
func sameField(path, errField string) bool {
	if errField == "" {
		return false
	}
	path, errField = indexes.ReplaceAllString(path, ""), indexes.ReplaceAllString(errField, "")
	return path == errField || strings.HasPrefix(path, errField+".")
}

// pathFrame is one open object or list while valueAt walks a document.
type pathFrame struct {
	list    bool
	index   int    // in a list, the index of the current item
	key     string // in an object, the key of the current value
	wantKey bool   // in an object, whether the next token is a key
}

// valueAt walks the JSON in data and returns the path, such as
// "spec.ports[0].port", of the first value that ends at or after offset,
// with the value as a message would show it.
func valueAt(data []byte, offset int64) (path, value string, found bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []pathFrame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", "", false
		}
		top := len(stack) - 1
		if delim, ok := tok.(json.Delim); ok && (delim == '}' || delim == ']') {
			stack = stack[:top]
			advance(stack)
			continue
		}
		if top >= 0 && stack[top].wantKey {
			stack[top].key, _ = tok.(string)
			stack[top].wantKey = false
			continue
		}
		if dec.InputOffset() >= offset {
			return formatPath(stack), describeValue(tok), true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, pathFrame{wantKey: true})
		case json.Delim('['):
			stack = append(stack, pathFrame{list: true})
		default:
			advance(stack)
		}
	}
}

// advance moves the innermost open object or list past its current value.
func advance(stack []pathFrame) {
	if len(stack) == 0 {
		return
	}
	top := &stack[len(stack)-1]
	if top.list {
		top.index++
	} else {
		top.wantKey = true
	}
}

func formatPath(stack []pathFrame) string {
	var b strings.Builder
	for _, f := range stack {
		if f.list {
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(f.key)
	}
	return b.String()
}

// describeValue shows a JSON token as a message should: strings quoted and
// cut short, containers by their sort.
func describeValue(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "a list"
	case string:
		const maxLen = 40
		if len(v) > maxLen {
			v = strings.ToValidUTF8(v[:maxLen], "") + "..."
		}
		return strconv.Quote(v)
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	default:
		return "null"
	}
}

// describeJSONValue rewords encoding/json's description of a value
// ("string", "number 5", "array") for a message.
func describeJSONValue(value string) string {
	switch kind, rest, _ := strings.Cut(value, " "); kind {
	case "string":
		return "a string"
	case "number":
		if rest != "" {
			return rest
		}
		return "a number"
	case "bool":
		return "a boolean"
	case "array":
		return "a list"
	case "object":
		return "an object"
	default:
		return value
	}
}

// describeType names what a value of Go type t looks like in YAML or JSON.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer (" + t.Kind().String() + ")"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return t.String()
	}
}
