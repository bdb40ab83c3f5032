package loader

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf16"
)

// document is one YAML or JSON document cut from the input.
type document struct {
	// number counts documents from 1, leaving out blank ones, so that it
	// matches what a person counts when reading the file.
	number int
	// line is the input line the document starts on, counting from 1.
	line int
	// yaml is the document's text when it still has to be parsed as YAML.
	yaml []byte
	// json is the document when it is already one parsed JSON value.
	json []byte
	// err is a JSON syntax error that left the document unreadable.
	err error
	// jsonErr is why the input, which looked like JSON, did not parse as
	// JSON; it is the clearer message if the YAML parse fails too.
	jsonErr error
}

// splitDocuments cuts data into documents. Input whose first character is
// "{" is read as a stream of JSON values, the way kubectl reads it; a stream
// that stops being JSON after its first value goes on as YAML.
func splitDocuments(data []byte) []document {
	var docs []document
	if bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) {
		docs = splitJSON(data)
	} else {
		docs = splitYAML(data, 1)
	}
	for i := range docs {
		docs[i].number = i + 1
	}
	return docs
}

// splitJSON reads data as a stream of JSON values.
func splitJSON(data []byte) []document {
	var docs []document
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		start := int(dec.InputOffset())
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return docs
		}
		start += len(data[start:]) - len(bytes.TrimLeft(data[start:], " \t\r\n"))
		if err == nil {
			docs = append(docs, document{line: lineAt(data, start), json: raw})
			continue
		}
		jsonErr := describeJSONError(data, err)
		rest := data[start:]
		if len(docs) == 0 {
			// Flow-style YAML also starts with "{"; give YAML its chance.
			docs = splitYAML(data, 1)
			if len(docs) > 0 {
				docs[0].jsonErr = jsonErr
			}
			return docs
		}
		if bytes.HasPrefix(rest, []byte("{")) {
			// A broken JSON value leaves no safe place to start again.
			return append(docs, document{line: lineAt(data, start), err: jsonErr})
		}
		return append(docs, splitYAML(rest, lineAt(data, start))...)
	}
}

// describeJSONError turns a JSON decoding error into a message that gives
// the line and column in data.
func describeJSONError(data []byte, err error) error {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		line, col := position(data, int(syntax.Offset))
		return fmt.Errorf("not valid JSON at line %d, column %d: %w", line, col, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("not valid JSON: the input ends in the middle of a value")
	}
	return fmt.Errorf("not valid JSON: %w", err)
}

// splitYAML cuts data into YAML documents at "---" lines and after "..."
// lines. A "---" line stays with the document it starts, so line numbers in
// YAML errors count from the document's first line. firstLine is the input
// line data starts on.
func splitYAML(data []byte, firstLine int) []document {
	var docs []document
	add := func(text []byte, line int) {
		if !isBlankYAML(text) {
			docs = append(docs, document{line: line, yaml: text})
		}
	}
	start, startLine, line := 0, firstLine, firstLine
	for off := 0; off < len(data); line++ {
		next := len(data)
		if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
			next = off + i + 1
		}
		switch text := data[off:next]; {
		case isDocumentStart(text):
			add(data[start:off], startLine)
			start, startLine = off, line
		case isDocumentEnd(text):
			add(data[start:off], startLine)
			start, startLine = next, line+1
		}
		off = next
	}
	add(data[start:], startLine)
	return docs
}

// isDocumentStart reports whether line is a "---" document marker.
func isDocumentStart(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("---"))
	return ok && (len(rest) == 0 || isSpace(rest[0]))
}

// isDocumentEnd reports whether line is a "..." document end marker.
func isDocumentEnd(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("..."))
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " \t\r\n")
	return len(rest) == 0 || rest[0] == '#'
}

// isBlankYAML reports whether text holds nothing but markers, comments and
// white space, so that it is not worth a document number.
func isBlankYAML(text []byte) bool {
	for line := range bytes.Lines(text) {
		if isDocumentStart(line) {
			line = line[3:]
		}
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\r' || b == '\n'
}

// lineAt returns the line, counting from 1, that offset off in data is on.
func lineAt(data []byte, off int) int {
	line, _ := position(data, off)
	return line
}

// position returns the line and column, counting from 1, of offset off in data.
func position(data []byte, off int) (line, col int) {
	off = min(max(off, 0), len(data))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = off - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// toUTF8 drops a UTF-8 byte order mark and converts UTF-16 (as PowerShell
// writes when output is redirected to a file) to UTF-8.
func toUTF8(data []byte) ([]byte, error) {
	if rest, ok := bytes.CutPrefix(data, []byte("\xef\xbb\xbf")); ok {
		return rest, nil
	}
	var order func([]byte) uint16
	switch {
	case bytes.HasPrefix(data, []byte("\xff\xfe")):
		order = func(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }
	case bytes.HasPrefix(data, []byte("\xfe\xff")):
		order = func(b []byte) uint16 { return uint16(b[1]) | uint16(b[0])<<8 }
	default:
		return data, nil
	}
	data = data[2:]
	if len(data)%2 != 0 {
		return nil, errors.New("input starts with a UTF-16 byte order mark but has an odd number of bytes")
	}
	units := make([]uint16, 0, len(data)/2)
	for i := 0; i < len(data); i += 2 {
		units = append(units, order(data[i:i+2]))
	}
	return []byte(string(utf16.Decode(units))), nil
}
