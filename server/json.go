package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// This file reads and writes the little JSON the server touches, in one pass
// and without copies, byte for byte as encoding/json did before it
// (json_reference_test.go keeps that implementation and fuzzes this one
// against it): a value's bytes go out exactly as they came; a key goes out
// as json.Marshal writes its decoded string; _info and _params as
// json.Marshal writes a json.RawMessage (compacted, <, > and & escaped).

// maxDepth is encoding/json's nesting limit: deeper input is not JSON to it.
const maxDepth = 10000

// field is one key and raw value of a JSON object, in input order.
type field struct {
	raw     []byte // the key as it came, quotes included
	quoted  []byte // the key as json.Marshal writes its decoded string, quotes included
	escaped bool   // raw is not the key's decoded form (escapes, bytes that are not UTF-8)
	Value   json.RawMessage
}

// is reports whether the field's (decoded) key is k.
func (f *field) is(k string) bool {
	if !f.escaped {
		return string(f.raw[1:len(f.raw)-1]) == k
	}
	return f.name() == k
}

// name is the field's key, decoded.
func (f *field) name() string {
	if !f.escaped {
		return string(f.raw[1 : len(f.raw)-1])
	}
	var s string
	_ = json.Unmarshal(f.raw, &s)
	return s
}

// newField makes a field of a key as it came (quotes included);
// backslash says it holds escapes.
func newField(raw []byte, backslash bool) field {
	content := raw[1 : len(raw)-1]
	f := field{raw: raw, escaped: backslash || !utf8.Valid(content)}
	if !f.escaped && marshalsAsIs(content) {
		f.quoted = raw
		return f
	}
	// Rare: write the decoded key as json.Marshal would.
	f.quoted, _ = json.Marshal(f.name())
	return f
}

// marshalsAsIs says json.Marshal writes the string s (valid UTF-8 without
// escapes) unchanged: no <, > or &, no U+2028 or U+2029.
func marshalsAsIs(s []byte) bool {
	for i, c := range s {
		switch {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xA8:
			return false
		}
	}
	return true
}

// syntaxError says where the input stops being JSON.
type syntaxError struct {
	msg    string
	offset int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.offset) }

func errAt(data []byte, i int, what string) error {
	if i >= len(data) {
		return &syntaxError{"unexpected end of JSON input", i}
	}
	return &syntaxError{fmt.Sprintf("invalid character %s %s", quoteByte(data[i]), what), i}
}

// quoteByte names a byte in an error message as encoding/json does.
func quoteByte(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	q := strconv.Quote(string(rune(c)))
	return "'" + q[1:len(q)-1] + "'"
}

var errNotObject = errors.New("not a JSON object")

// parseObject checks that data is exactly one JSON object (whitespace around
// it allowed) and splits it into its fields in input order; duplicate keys
// are all kept. It is objectFields and json.Valid of the first
// implementation in one pass.
func parseObject(data []byte) ([]field, error) {
	return parseTop(data, nil)
}

// wanted is a key whose value parseTop splits as an array of objects while
// it reads the object (the items or suppliers list of an output).
type wanted struct {
	key   string
	found bool      // the key was there (the last occurrence counts)
	value []byte    // its raw value
	elems [][]field // the elements, when the value is an array of objects
	bad   error     // why the value is not an array of objects
}

// parseTop reads data as one JSON object, splitting the values of the
// wanted keys as arrays of objects in the same pass.
func parseTop(data []byte, want []*wanted) ([]field, error) {
	i := skipSpace(data, 0)
	if i >= len(data) {
		return nil, &syntaxError{"unexpected end of JSON input", i}
	}
	if data[i] != '{' {
		// Valid JSON that is not an object is errNotObject; anything else
		// a syntax error.
		end, err := skipValue(data, i, 0)
		if err != nil {
			return nil, err
		}
		if end = skipSpace(data, end); end != len(data) {
			return nil, errAt(data, end, "after top-level value")
		}
		return nil, errNotObject
	}
	fields, end, err := scanObject(data, i, 1, want)
	if err != nil {
		return nil, err
	}
	if end = skipSpace(data, end); end != len(data) {
		return nil, errAt(data, end, "after top-level value")
	}
	return fields, nil
}

// scanObject reads the object at data[i] ('{'), depth deep, and returns its
// fields and the offset after it.
func scanObject(data []byte, i, depth int, want []*wanted) ([]field, int, error) {
	if depth > maxDepth {
		return nil, i, &syntaxError{"exceeded max depth", i}
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return []field{}, i + 1, nil
	}
	fields := make([]field, 0, 8)
	for {
		if i >= len(data) || data[i] != '"' {
			return nil, i, errAt(data, i, "looking for beginning of object key string")
		}
		kend, escaped, err := scanString(data, i)
		if err != nil {
			return nil, kend, err
		}
		f := newField(data[i:kend], escaped)
		i = skipSpace(data, kend)
		if i >= len(data) || data[i] != ':' {
			return nil, i, errAt(data, i, "after object key")
		}
		i = skipSpace(data, i+1)
		var w *wanted
		for _, x := range want {
			if f.is(x.key) {
				w = x
			}
		}
		start := i
		if w != nil && i < len(data) && data[i] == '[' {
			var elems [][]field
			var bad error
			elems, bad, i, err = scanArrayOfObjects(data, i, depth+1)
			if err != nil {
				return nil, i, err
			}
			w.elems, w.bad = elems, bad
		} else {
			i, err = skipValue(data, i, depth)
			if err != nil {
				return nil, i, err
			}
			if w != nil {
				w.elems, w.bad = nil, errNotArray
			}
		}
		f.Value = data[start:i:i]
		if w != nil {
			w.found, w.value = true, f.Value
		}
		fields = append(fields, f)
		i = skipSpace(data, i)
		if i >= len(data) {
			return nil, i, errAt(data, i, "")
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return fields, i + 1, nil
		default:
			return nil, i, errAt(data, i, "after object key:value pair")
		}
	}
}

var errNotArray = errors.New("expected an array of objects")

// scanArrayOfObjects reads the array at data[i] ('['): err is a syntax
// error; bad says the array (valid JSON) holds something else than objects.
func scanArrayOfObjects(data []byte, i, depth int) (elems [][]field, bad error, end int, err error) {
	if depth > maxDepth {
		return nil, nil, i, &syntaxError{"exceeded max depth", i}
	}
	i = skipSpace(data, i+1)
	elems = [][]field{}
	if i < len(data) && data[i] == ']' {
		return elems, nil, i + 1, nil
	}
	for n := 0; ; n++ {
		if i < len(data) && data[i] == '{' && bad == nil {
			var f []field
			f, i, err = scanObject(data, i, depth+1, nil)
			if err != nil {
				return nil, nil, i, err
			}
			elems = append(elems, f)
		} else {
			if bad == nil {
				bad = fmt.Errorf("element %d is not an object", n)
				elems = nil
			}
			if i, err = skipValue(data, i, depth); err != nil {
				return nil, nil, i, err
			}
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return nil, nil, i, errAt(data, i, "")
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case ']':
			return elems, bad, i + 1, nil
		default:
			return nil, nil, i, errAt(data, i, "after array element")
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// scanString reads the string at data[i] ('"') and returns the offset after
// its closing quote and whether it holds escapes. Like encoding/json's
// scanner it does not check UTF-8.
func scanString(data []byte, i int) (end int, escaped bool, err error) {
	i++
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(data) {
				return i + 1, escaped, errAt(data, i+1, "")
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := 2; k < 6; k++ {
					if i+k >= len(data) {
						return i + k, escaped, errAt(data, i+k, "")
					}
					if !isHex(data[i+k]) {
						return i + k, escaped, errAt(data, i+k, "in \\u hexadecimal character escape")
					}
				}
				i += 6
			default:
				return i + 1, escaped, errAt(data, i+1, "in string escape code")
			}
		case c < 0x20:
			return i, escaped, errAt(data, i, "in string literal")
		default:
			i++
		}
	}
	return i, escaped, errAt(data, i, "")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skipValue checks the value at data[i], depth containers deep, and returns
// the offset after it. Containers nest without recursion.
func skipValue(data []byte, i, depth int) (int, error) {
	var stackBuf [32]byte
	stack := stackBuf[:0] // '{' or '[' per open container
	for {
		// A value starts at i.
		if i >= len(data) {
			return i, errAt(data, i, "")
		}
		switch c := data[i]; {
		case c == '{' || c == '[':
			if depth+len(stack)+1 > maxDepth {
				return i, &syntaxError{"exceeded max depth", i}
			}
			stack = append(stack, c)
			i = skipSpace(data, i+1)
			if i < len(data) && data[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				var err error
				if i, err = objectKey(data, i); err != nil {
					return i, err
				}
			}
			continue
		case c == '"':
			end, _, err := scanString(data, i)
			if err != nil {
				return end, err
			}
			i = end
		case c == '-' || '0' <= c && c <= '9':
			end, err := scanNumber(data, i)
			if err != nil {
				return end, err
			}
			i = end
		case c == 't':
			if err := literal(data, i, "true"); err != nil {
				return i, err
			}
			i += 4
		case c == 'f':
			if err := literal(data, i, "false"); err != nil {
				return i, err
			}
			i += 5
		case c == 'n':
			if err := literal(data, i, "null"); err != nil {
				return i, err
			}
			i += 4
		default:
			return i, errAt(data, i, "looking for beginning of value")
		}
		// A value ended at i: close what it ends, or go to the next one.
		for {
			if len(stack) == 0 {
				return i, nil
			}
			i = skipSpace(data, i)
			if i >= len(data) {
				return i, errAt(data, i, "")
			}
			top := stack[len(stack)-1]
			if data[i] == top+2 {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if data[i] != ',' {
				if top == '{' {
					return i, errAt(data, i, "after object key:value pair")
				}
				return i, errAt(data, i, "after array element")
			}
			i = skipSpace(data, i+1)
			if top == '{' {
				var err error
				if i, err = objectKey(data, i); err != nil {
					return i, err
				}
			}
			break
		}
	}
}

// objectKey reads `"key" :` at data[i] and returns where its value starts.
func objectKey(data []byte, i int) (int, error) {
	if i >= len(data) || data[i] != '"' {
		return i, errAt(data, i, "looking for beginning of object key string")
	}
	end, _, err := scanString(data, i)
	if err != nil {
		return end, err
	}
	i = skipSpace(data, end)
	if i >= len(data) || data[i] != ':' {
		return i, errAt(data, i, "after object key")
	}
	return skipSpace(data, i+1), nil
}

func literal(data []byte, i int, word string) error {
	for k := 0; k < len(word); k++ {
		if i+k >= len(data) || data[i+k] != word[k] {
			return errAt(data, i+k, "in literal "+word)
		}
	}
	return nil
}

// scanNumber reads a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(data []byte, i int) (int, error) {
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && '1' <= data[i] && data[i] <= '9':
		i = digits(data, i+1)
	default:
		return i, errAt(data, i, "in numeric literal")
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || !isDigit(data[i]) {
			return i, errAt(data, i, "after decimal point in numeric literal")
		}
		i = digits(data, i)
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			return i, errAt(data, i, "in exponent of numeric literal")
		}
		i = digits(data, i)
	}
	return i, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digits(data []byte, i int) int {
	for i < len(data) && isDigit(data[i]) {
		i++
	}
	return i
}

// appendString appends s as json.Marshal writes a string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // rare: let encoding/json escape it
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendRaw appends valid JSON as json.Marshal writes a json.RawMessage:
// whitespace outside strings dropped, <, > and & escaped as \u003c, \u003e
// and \u0026, U+2028 and U+2029 as \u2028 and \u2029.
func appendRaw(b []byte, src []byte) []byte {
	start := 0
	inString := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if !inString {
			switch {
			case isSpace(c):
				b = append(b, src[start:i]...)
				start = i + 1
			case c == '"':
				inString = true
			}
			continue
		}
		switch {
		case c == '\\':
			i++ // the escaped byte is copied as it is
		case c == '"':
			inString = false
		case c == '<' || c == '>' || c == '&':
			b = append(b, src[start:i]...)
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			start = i + 1
		case c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8:
			b = append(b, src[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[src[i+2]&0xF])
			i += 2
			start = i + 1
		}
	}
	return append(b, src[start:]...)
}
