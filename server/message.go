package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/theaspect/aggregator"
)

// Message statuses and task names of SPEC §4.
const (
	StatusPending = "PENDING"
	StatusSending = "SENDING"
	StatusSuccess = "SUCCESS"
	StatusError   = "ERROR"

	TaskSuppliers = "SUPPLIERS"
	TaskItems     = "ITEMS"
	TaskSession   = "SESSION"
)

// head is the service's own part of every message, in the SPEC's order.
type head struct {
	Session string          `json:"_session"`
	Task    string          `json:"_task"`
	ID      int64           `json:"_id,omitempty"`
	Status  string          `json:"_status"`
	Error   aggregator.Code `json:"_error,omitempty"`
	Message string          `json:"_message,omitempty"` // a PublicError's text (SPEC §15)
	Params  json.RawMessage `json:"_params,omitempty"`
	Info    json.RawMessage `json:"_info,omitempty"`
}

func (h head) encode() []byte {
	b, err := json.Marshal(h)
	if err != nil { // only a bad RawMessage could do this; they are validated
		panic(fmt.Sprintf("encode message head: %v", err))
	}
	return b
}

// field is one key and raw value of a JSON object, in input order. Value
// is a slice of the document it was split from, not a copy: a 15 MB item
// is not copied on its way from PHP's answer to the browser's message.
type field struct {
	Key   string
	Value json.RawMessage
}

// objectFields splits a JSON object into its fields, keeping their order
// (a map would sort them). obj must be valid JSON (json.Valid): the scan
// then needs no checks of its own and allocates only the field list.
func objectFields(obj []byte) ([]field, error) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, errNotObject
	}
	var fields []field
	i = skipSpace(obj, i+1)
	for i < len(obj) && obj[i] == '"' {
		kEnd := scanString(obj, i)
		key := decodeKey(obj[i:kEnd])
		i = skipSpace(obj, skipSpace(obj, kEnd)+1) // past the ':'
		vEnd := scanValue(obj, i)
		fields = append(fields, field{key, obj[i:vEnd:vEnd]})
		i = skipSpace(obj, vEnd)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return fields, nil
}

// scanValue returns the index just past the JSON value starting at b[i];
// b is valid JSON.
func scanValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return scanString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = scanString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) { // a number, true, false or null
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// scanString returns the index just past the JSON string starting at b[i].
// A quote ends the string unless an odd number of backslashes precede it;
// IndexByte finds the quotes of a long string at memory speed.
func scanString(b []byte, i int) int {
	for j := i + 1; ; {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return len(b)
		}
		q := j + k
		escaped := false
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			escaped = !escaped
		}
		if !escaped {
			return q + 1
		}
		j = q + 1
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// decodeKey is the text of a JSON string (a key: short, so copied).
func decodeKey(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

var errNotObject = errors.New("not a JSON object")

// ourKeys are the fields the service writes; an item's own field of the same
// name is dropped so ours win (SPEC §4).
var ourKeys = map[string]bool{"_session": true, "_task": true, "_id": true, "_status": true,
	"_error": true, "_params": true, "_info": true}

// itemMessage is a SENDING message: the item's own fields, then ours
// (headTail: the encoded head without its '{'). It is allocated once, at
// its final size: it is what the send queue holds.
func itemMessage(item []field, headTail []byte) []byte {
	b := make([]byte, 0, fieldsSize(item, ourKeys)+len(headTail)+2)
	b = append(b, '{')
	b, n := appendFields(b, item, ourKeys)
	if n > 0 {
		b = append(b, ',')
	}
	return append(b, headTail...)
}

// itemsTask is what an items task is made of from one supplier element: its
// input (the element, re-encoded), class (for logs) and info field (_info,
// copied: the task must not keep the whole suppliers answer alive).
func itemsTask(elem []field, infoField string) (input []byte, class string, info json.RawMessage) {
	_ = json.Unmarshal(lookup(elem, "class"), &class)
	return encodeFields(elem), class, bytes.Clone(lookup(elem, infoField))
}

// encodeFields writes fields as a JSON object.
func encodeFields(fields []field) json.RawMessage {
	b := make([]byte, 0, fieldsSize(fields, nil)+2)
	b = append(b, '{')
	b, _ = appendFields(b, fields, nil)
	return append(b, '}')
}

// fieldsSize is what appendFields writes for fields, exactly when no key
// needs escaping.
func fieldsSize(fields []field, skip map[string]bool) int {
	n := 0
	for _, f := range fields {
		if !skip[f.Key] {
			n += len(f.Key) + len(f.Value) + 4 // quotes, colon, comma
		}
	}
	return n
}

// appendFields appends fields as comma-separated "key":value pairs, leaving
// out the keys in skip; it returns how many it wrote.
func appendFields(b []byte, fields []field, skip map[string]bool) ([]byte, int) {
	n := 0
	for _, f := range fields {
		if skip[f.Key] {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendKey(b, f.Key)
		b = append(b, ':')
		b = append(b, f.Value...)
		n++
	}
	return b, n
}

// appendKey appends k as a JSON string, as json.Marshal writes it.
func appendKey(b []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(k) // escapes, HTML-safe characters, invalid UTF-8
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, k...)
	return append(b, '"')
}

// validUTF8 replaces invalid UTF-8 so a message can go out as a text frame
// (browsers fail the whole socket on an invalid one).
func validUTF8(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	return bytes.ToValidUTF8(b, []byte("\uFFFD"))
}

// output is a script's answer split into the parts the session needs.
type output struct {
	Items     [][]field // each item's fields
	Suppliers [][]field // each supplier element's fields
}

// checkOutput checks a finished task's output: suppliers output must hold
// suppliers; items output items and, maybe, nested suppliers. Each kind has
// its own pair of codes.
func checkOutput(kind aggregator.Kind, out []byte, itemsField, suppliersField string) (output, aggregator.Code, error) {
	if kind == aggregator.Suppliers {
		return parseOutput(out, suppliersField, suppliersField, aggregator.ESuppliersJSON, aggregator.ESuppliersResponse)
	}
	return parseOutput(out, itemsField, suppliersField, aggregator.EItemsJSON, aggregator.EItemsResponse)
}

// parseOutput checks a script's answer: a JSON object (else jsonCode) with
// an array of objects under listKey (else respCode), and, for items, an
// optional array of nested suppliers under suppliersKey.
func parseOutput(out []byte, listKey, suppliersKey string, jsonCode, respCode aggregator.Code) (output, aggregator.Code, error) {
	var res output
	out = validUTF8(bytes.TrimSpace(out))
	if !json.Valid(out) {
		return res, jsonCode, fmt.Errorf("output is not a JSON object: %v", jsonError(out))
	}
	fields, err := objectFields(out)
	if err != nil {
		return res, jsonCode, fmt.Errorf("output is not a JSON object: %v", err)
	}
	var list, nested json.RawMessage
	for _, f := range fields {
		switch f.Key {
		case listKey:
			list = f.Value
		case suppliersKey:
			nested = f.Value
		}
	}
	if list == nil {
		return res, respCode, fmt.Errorf("output has no %q field", listKey)
	}
	objs, err := arrayOfObjects(list)
	if err != nil {
		return res, respCode, fmt.Errorf("field %q: %v", listKey, err)
	}
	if listKey == suppliersKey {
		res.Suppliers = objs
		return res, "", nil
	}
	res.Items = objs
	if nested != nil && !bytes.Equal(nested, []byte("null")) {
		sup, err := arrayOfObjects(nested)
		if err != nil {
			return res, respCode, fmt.Errorf("field %q: %v", suppliersKey, err)
		}
		res.Suppliers = sup
	}
	return res, "", nil
}

// arrayOfObjects splits a JSON array of objects; raw is valid JSON. The
// elements' values are slices of raw.
func arrayOfObjects(raw json.RawMessage) ([][]field, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, errors.New("expected an array of objects")
	}
	var out [][]field
	for i := skipSpace(raw, 1); i < len(raw) && raw[i] != ']'; {
		end := scanValue(raw, i)
		f, err := objectFields(raw[i:end])
		if err != nil {
			return nil, fmt.Errorf("element %d is not an object", len(out))
		}
		out = append(out, f)
		if i = skipSpace(raw, end); i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	if out == nil {
		out = [][]field{}
	}
	return out, nil
}

// jsonError says why b is not valid JSON, for the log.
func jsonError(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return errors.New("invalid JSON")
}

// lookup returns the value of key in fields, or nil.
func lookup(fields []field, key string) json.RawMessage {
	for _, f := range fields {
		if f.Key == key {
			return f.Value
		}
	}
	return nil
}
