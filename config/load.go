package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Load decodes a configuration file in YAML or JSON. The file must declare
// apiVersion APIVersion and kind Kind. Decoding is strict: a field the
// Configuration does not have (field names are case-sensitive), a key given
// twice, or a value of the wrong type is an error naming the field. Fields
// the file leaves out keep their values from [Default]. Load does not check
// the values themselves: call [Configuration.Validate] for that.
func Load(data []byte) (Configuration, error) {
	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return Configuration{}, fmt.Errorf("decoding configuration: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return Configuration{}, errors.New("decoding configuration: the file is empty")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(jsonData, &fields); err != nil || fields == nil {
		return Configuration{}, errors.New("decoding configuration: not a mapping of field names to values")
	}

	// apiVersion and kind are checked before anything else, so that a file
	// written for another version is reported as such rather than as a list
	// of unknown fields.
	var apiVersion, kind string
	_ = json.Unmarshal(fields["apiVersion"], &apiVersion)
	_ = json.Unmarshal(fields["kind"], &kind)
	if err := checkTypeMeta(apiVersion, kind); err != nil {
		return Configuration{}, err
	}

	cfg := Default()
	if err := errors.Join(decodeFields(fields, reflect.ValueOf(&cfg).Elem(), "")...); err != nil {
		return Configuration{}, fmt.Errorf("decoding configuration: %w", err)
	}
	return cfg, nil
}

// decodeFields decodes each field of a mapping into the struct v, leaving
// the fields the mapping does not name as they are. A field of a struct
// type is a section, decoded the same way, so that an unknown field is an
// error at any depth. Errors name the field by its path from the top, with
// prefix before it.
func decodeFields(fields map[string]json.RawMessage, v reflect.Value, prefix string) []error {
	index := jsonFieldIndex(v.Type())
	var errs []error
	// Sorted, so that several errors always come in the same order.
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		i, ok := index[name]
		if !ok {
			errs = append(errs, fmt.Errorf("unknown field %q", prefix+name))
			continue
		}
		field := v.Field(i)
		if isSection(field.Type()) {
			var sub map[string]json.RawMessage
			if err := json.Unmarshal(fields[name], &sub); err != nil || sub == nil {
				errs = append(errs, fmt.Errorf("%s: want a mapping of field names to values", prefix+name))
				continue
			}
			errs = append(errs, decodeFields(sub, field, prefix+name+".")...)
			continue
		}
		if err := decodeField(fields[name], field.Addr().Interface()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", prefix+name, err))
		}
	}
	return errs
}

// isSection reports whether a field of type t is a section of the file
// rather than a value: a struct that does not decode itself from JSON.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]())
}

// LoadFile reads and decodes the configuration file at path, as [Load] does.
func LoadFile(path string) (Configuration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Configuration{}, fmt.Errorf("reading configuration file: %w", err)
	}
	cfg, err := Load(data)
	if err != nil {
		return Configuration{}, fmt.Errorf("configuration file %s: %w", path, err)
	}
	return cfg, nil
}

// checkTypeMeta reports whether apiVersion and kind are the ones this version
// of nftproxy reads.
func checkTypeMeta(apiVersion, kind string) error {
	switch {
	case apiVersion == "":
		return fmt.Errorf("apiVersion is missing: want %q", APIVersion)
	case apiVersion != APIVersion:
		return fmt.Errorf("apiVersion %q is not supported: want %q", apiVersion, APIVersion)
	case kind == "":
		return fmt.Errorf("kind is missing: want %q", Kind)
	case kind != Kind:
		return fmt.Errorf("kind %q is not supported: want %q", kind, Kind)
	}
	return nil
}

// jsonFieldIndex maps each JSON field name of the struct type t to its
// index.
func jsonFieldIndex(t reflect.Type) map[string]int {
	index := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		index[name] = i
	}
	return index
}

// decodeField decodes one field's JSON value into dst, describing a value of
// the wrong type in the terms of the file rather than of Go.
func decodeField(raw json.RawMessage, dst any) error {
	if bytes.Equal(raw, []byte("null")) {
		return fmt.Errorf("got null, want %s", describeType(dst))
	}
	err := json.Unmarshal(raw, dst)
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Errorf("got %s %s, want %s", article(typeErr.Value), typeErr.Value, describeType(dst))
	}
	return err
}

// describeType names the kind of value a pointer to a Configuration field
// accepts.
func describeType(dst any) string {
	switch dst.(type) {
	case *metav1.Duration:
		return `a duration such as "1s" or "500ms"`
	case *string:
		return "a string"
	case *[]string:
		return "a list of strings"
	case *int, *int32:
		return "an integer"
	case *float32, *float64:
		return "a number"
	case *bool:
		return "true or false"
	}
	return reflect.TypeOf(dst).Elem().String()
}

func article(noun string) string {
	if noun != "" && strings.IndexByte("aeiou", noun[0]) >= 0 {
		return "an"
	}
	return "a"
}
