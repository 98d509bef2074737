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

// field is one key and raw value of a JSON object, in input order.
type field struct {
	Key   string
	Value json.RawMessage
}

// objectFields splits a JSON object into its fields, keeping their order
// (a map would sort them).
func objectFields(obj []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errNotObject
	}
	var fields []field
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		fields = append(fields, field{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return fields, nil
}

var errNotObject = errors.New("not a JSON object")

// ourKeys are the fields the service writes; an item's own field of the same
// name is dropped so ours win (SPEC §4).
var ourKeys = map[string]bool{"_session": true, "_task": true, "_id": true, "_status": true,
	"_error": true, "_params": true, "_info": true}

// itemMessage is a SENDING message: the item's own fields, then ours
// (headTail: the encoded head without its '{').
func itemMessage(item []field, headTail []byte) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	if writeFields(&b, item, ourKeys) > 0 {
		b.WriteByte(',')
	}
	b.Write(headTail)
	return b.Bytes()
}

// itemsTask is what an items task is made of from one supplier element: its
// input (the element, re-encoded), class (for logs) and info field (_info).
func itemsTask(elem []field, infoField string) (input []byte, class string, info json.RawMessage) {
	_ = json.Unmarshal(lookup(elem, "class"), &class)
	return encodeFields(elem), class, lookup(elem, infoField)
}

// encodeFields writes fields as a JSON object.
func encodeFields(fields []field) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	writeFields(&b, fields, nil)
	b.WriteByte('}')
	return b.Bytes()
}

// writeFields writes fields as comma-separated "key":value pairs, leaving
// out the keys in skip; it returns how many it wrote.
func writeFields(b *bytes.Buffer, fields []field, skip map[string]bool) int {
	n := 0
	for _, f := range fields {
		if skip[f.Key] {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.Key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(f.Value)
		n++
	}
	return n
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
	fields, err := objectFields(out)
	if err != nil || !json.Valid(out) {
		if err == nil {
			err = errors.New("invalid JSON")
		}
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

// arrayOfObjects splits a JSON array of objects.
func arrayOfObjects(raw json.RawMessage) ([][]field, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || elems == nil {
		return nil, errors.New("expected an array of objects")
	}
	out := make([][]field, 0, len(elems))
	for i, e := range elems {
		f, err := objectFields(e)
		if err != nil {
			return nil, fmt.Errorf("element %d is not an object", i)
		}
		out = append(out, f)
	}
	return out, nil
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
