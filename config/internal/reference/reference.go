// Package reference generates docs/configuration.md, the operator's
// reference of the configuration file, from the source of package config:
// the doc comment, type and `flag` tag of each Configuration field (and of
// the fields of its sections), the defaults from config.Default, and the
// flags of config.BindFlags.
//
// It parses the source because doc comments are not available at run time;
// config/gen runs it, and a test in package config checks that the
// committed file matches its output.
package reference

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/nftproxy/nftproxy/config"
)

// Command is the command that regenerates the reference, from the root of
// the repository.
const Command = "go run ./config/gen > docs/configuration.md"

// structName is the type documented.
const structName = "Configuration"

// Field is one documented field of the configuration.
type Field struct {
	// Name is the field's name in the file (its JSON name).
	Name string
	// Type describes the field's type in the terms of the file.
	Type string
	// Flags are the command-line flags that override the field, as
	// written on the command line ("--node-name", "-v, --v"); none for a
	// field that no flag sets.
	Flags []string
	// Section is whether the field is a section of the file, whose own
	// fields follow it, named "section.field".
	Section bool
	// Doc is the field's doc comment.
	Doc string
	// Default is the field's default as JSON.
	Default json.RawMessage
}

// Fields parses the Go files of package config in srcDir and returns the
// fields of Configuration in source order; each section is followed by its
// own fields.
func Fields(srcDir string) ([]Field, error) {
	structs, err := findStructs(srcDir)
	if err != nil {
		return nil, err
	}
	st, ok := structs[structName]
	if !ok {
		return nil, fmt.Errorf("no type %s in the Go files of %s", structName, srcDir)
	}
	defaults, err := json.Marshal(config.Default())
	if err != nil {
		return nil, fmt.Errorf("encoding defaults: %w", err)
	}
	return structFields(st, structs, defaults, "", flagSpellings())
}

// structFields documents the fields of st, whose defaults are the JSON
// object defaults, with prefix before their names.
func structFields(st *ast.StructType, structs map[string]*ast.StructType, defaults json.RawMessage, prefix string, spellings map[string]string) ([]Field, error) {
	var byName map[string]json.RawMessage
	if err := json.Unmarshal(defaults, &byName); err != nil {
		return nil, fmt.Errorf("decoding defaults: %w", err)
	}
	var fields []Field
	for _, f := range st.Fields.List {
		if len(f.Names) != 1 || f.Tag == nil {
			return nil, fmt.Errorf("%s: every field needs its own name and a json tag", structName)
		}
		goName := f.Names[0].Name
		tagValue, err := strconv.Unquote(f.Tag.Value)
		if err != nil {
			return nil, fmt.Errorf("field %s: reading tag: %w", goName, err)
		}
		tag := reflect.StructTag(tagValue)
		name, _, _ := strings.Cut(tag.Get("json"), ",")
		if name == "" {
			return nil, fmt.Errorf("field %s: no json name", goName)
		}
		doc := strings.TrimSpace(f.Doc.Text())
		if doc == "" {
			return nil, fmt.Errorf("field %s: no doc comment", goName)
		}
		def, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("field %s: not in config.Default()", goName)
		}
		if ident, ok := f.Type.(*ast.Ident); ok && structs[ident.Name] != nil {
			fields = append(fields, Field{Name: prefix + name, Type: "section", Doc: doc, Section: true})
			sub, err := structFields(structs[ident.Name], structs, def, prefix+name+".", spellings)
			if err != nil {
				return nil, err
			}
			fields = append(fields, sub...)
			continue
		}
		typ, err := describeType(f.Type)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", goName, err)
		}
		var flags []string
		if t := tag.Get("flag"); t != "" {
			for _, fl := range strings.Split(t, ",") {
				spelling, ok := spellings[fl]
				if !ok {
					return nil, fmt.Errorf("field %s: flag --%s is not registered by config.BindFlags", goName, fl)
				}
				flags = append(flags, spelling)
			}
		}
		fields = append(fields, Field{Name: prefix + name, Type: typ, Flags: flags, Doc: doc, Default: def})
	}
	return fields, nil
}

// flagSpellings returns how each flag of config.BindFlags is written, by
// name: "--name", or "-s, --name" with a shorthand.
func flagSpellings() map[string]string {
	out := map[string]string{}
	fs := pflag.NewFlagSet("reference", pflag.ContinueOnError)
	config.BindFlags(fs)
	fs.VisitAll(func(f *pflag.Flag) {
		out[f.Name] = "--" + f.Name
		if f.Shorthand != "" {
			out[f.Name] = "-" + f.Shorthand + ", --" + f.Name
		}
	})
	return out
}

// flagsWithoutField returns the flags of config.BindFlags that set no
// field, with their help, sorted by name.
func flagsWithoutField() [][2]string {
	tagged := map[string]bool{}
	for _, tf := range config.TaggedFields() {
		for _, name := range tf.Flags {
			tagged[name] = true
		}
	}
	var out [][2]string
	fs := pflag.NewFlagSet("reference", pflag.ContinueOnError)
	config.BindFlags(fs)
	fs.VisitAll(func(f *pflag.Flag) {
		if !tagged[f.Name] {
			out = append(out, [2]string{"--" + f.Name, f.Usage})
		}
	})
	return out
}

// Markdown returns the Markdown reference for the package config source in
// srcDir.
func Markdown(srcDir string) (string, error) {
	fields, err := Fields(srcDir)
	if err != nil {
		return "", err
	}
	example, err := exampleFile(fields)
	if err != nil {
		return "", err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "<!-- Code generated by %q; DO NOT EDIT. -->\n\n", Command)
	b.WriteString(`# Configuration reference

nftproxy reads its configuration from the YAML (or JSON) file named by
` + "`--config`" + `. The file is decoded strictly: a field name it does not know
(names are case-sensitive), a key given twice or a value of the wrong type
stops nftproxy with an error naming the field. Fields left out keep their
defaults.

Each setting comes from, in order of precedence, lowest first:

1. the default shown below;
2. the configuration file;
3. the command-line flag, when given on the command line;
4. for ` + "`nodeName`" + ` only, the ` + "`" + config.NodeNameEnv + "`" + ` environment variable, when nothing
   above set it.

The Helm chart writes the file from its ` + "`config`" + ` values into a ConfigMap
mounted at ` + "`/etc/nftproxy/config.yaml`" + `, and sets ` + "`" + config.NodeNameEnv + "`" + ` from the
pod's node.

## Example

A file that sets every field to its default:

` + "```yaml\n" + example + "```" + `

## Fields

| Field | Type | Default | Flag | Description |
| --- | --- | --- | --- | --- |
`)
	for _, f := range fields {
		if f.Section {
			fmt.Fprintf(&b, "| `%s` | %s | | | %s |\n", f.Name, f.Type, tableCell(f.Doc))
			continue
		}
		var flagCells []string
		for _, fl := range f.Flags {
			flagCells = append(flagCells, "`"+fl+"`")
		}
		flagCell := strings.Join(flagCells, ", ")
		def, err := formatDefault(f.Default)
		if err != nil {
			return "", fmt.Errorf("field %s: %w", f.Name, err)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Name, f.Type, def, flagCell, tableCell(f.Doc))
	}
	b.WriteString(`
## Flags without a field

| Flag | Description |
| --- | --- |
`)
	for _, f := range flagsWithoutField() {
		fmt.Fprintf(&b, "| `%s` | %s |\n", f[0], tableCell(f[1]))
	}
	return b.String(), nil
}

// findStructs returns the struct types declared in the non-test Go files
// of srcDir, by name.
func findStructs(srcDir string) (map[string]*ast.StructType, error) {
	paths, err := filepath.Glob(filepath.Join(srcDir, "*.go"))
	if err != nil {
		return nil, fmt.Errorf("listing Go files: %w", err)
	}
	structs := map[string]*ast.StructType{}
	fset := token.NewFileSet()
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading source: %w", err)
		}
		file, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("parsing source: %w", err)
		}
		for _, decl := range file.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.TYPE {
				continue
			}
			for _, spec := range gen.Specs {
				ts := spec.(*ast.TypeSpec)
				if st, ok := ts.Type.(*ast.StructType); ok {
					structs[ts.Name.Name] = st
				}
			}
		}
	}
	return structs, nil
}

// describeType names a field's type in the terms of the file. Types without
// a description are an error, so that a new kind of field gets one.
func describeType(expr ast.Expr) (string, error) {
	var b bytes.Buffer
	writeExpr(&b, expr)
	switch s := b.String(); s {
	case "string":
		return "string", nil
	case "[]string":
		return "list of strings", nil
	case "int", "int32", "int64":
		return "integer", nil
	case "float32", "float64":
		return "number", nil
	case "bool":
		return "boolean", nil
	case "metav1.Duration":
		return "duration (`1s`, `500ms`, `2m`)", nil
	default:
		return "", fmt.Errorf("type %s has no description in package reference", s)
	}
}

// writeExpr writes the type expressions that Configuration uses.
func writeExpr(b *bytes.Buffer, expr ast.Expr) {
	switch e := expr.(type) {
	case *ast.Ident:
		b.WriteString(e.Name)
	case *ast.SelectorExpr:
		writeExpr(b, e.X)
		b.WriteString("." + e.Sel.Name)
	case *ast.ArrayType:
		b.WriteString("[]")
		writeExpr(b, e.Elt)
	case *ast.StarExpr:
		b.WriteString("*")
		writeExpr(b, e.X)
	default:
		fmt.Fprintf(b, "%T", expr)
	}
}

// formatDefault renders a default for the table: strings bare unless empty,
// lists in flow style.
func formatDefault(raw json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("decoding default: %w", err)
	}
	var s string
	switch v := v.(type) {
	case string:
		s = v
		if s == "" {
			s = `""`
		}
	case []any:
		items := make([]string, len(v))
		for i, item := range v {
			items[i] = fmt.Sprint(item)
		}
		s = "[" + strings.Join(items, ", ") + "]"
	default:
		s = string(raw)
	}
	return "`" + s + "`", nil
}

// exampleFile returns a configuration file, in field order, that sets every
// field to its default, and checks that it loads back as the defaults.
func exampleFile(fields []Field) (string, error) {
	var b strings.Builder
	for _, f := range fields {
		name, indent := f.Name, ""
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			name, indent = name[i+1:], strings.Repeat("  ", strings.Count(f.Name, "."))
		}
		if f.Section {
			fmt.Fprintf(&b, "%s%s:\n", indent, name)
			continue
		}
		value, err := yaml.JSONToYAML(f.Default)
		if err != nil {
			return "", fmt.Errorf("field %s: encoding default: %w", f.Name, err)
		}
		if bytes.HasPrefix(value, []byte("- ")) {
			fmt.Fprintf(&b, "%s%s:\n", indent, name)
			for line := range strings.Lines(string(value)) {
				b.WriteString(indent + line)
			}
		} else {
			fmt.Fprintf(&b, "%s%s: %s", indent, name, value)
		}
	}
	got, err := config.Load([]byte(b.String()))
	if err != nil {
		return "", fmt.Errorf("example file does not load: %w", err)
	}
	if !reflect.DeepEqual(got, config.Default()) {
		return "", fmt.Errorf("example file does not load as the defaults: got %+v", got)
	}
	return b.String(), nil
}

// tableCell turns a doc comment into one Markdown table cell: lines joined,
// paragraphs separated by <br>, pipes escaped.
func tableCell(doc string) string {
	var paras []string
	for para := range strings.SplitSeq(doc, "\n\n") {
		paras = append(paras, strings.Join(strings.Fields(para), " "))
	}
	return strings.ReplaceAll(strings.Join(paras, "<br><br>"), "|", `\|`)
}
