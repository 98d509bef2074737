package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/theaspect/aggregator"
)

// Status is a message's "_status" (SPEC §4).
type Status string

// The message statuses: per task PENDING, its SENDINGs, then one of
// SUCCESS or ERROR.
const (
	StatusPending Status = "PENDING" // an items task is queued
	StatusSending Status = "SENDING" // one item of a task
	StatusSuccess Status = "SUCCESS" // a task sent all its items
	StatusError   Status = "ERROR"   // a task or the session failed
)

// TaskName is a message's "_task" (SPEC §4): which task it is about.
type TaskName string

// The task names.
const (
	TaskSuppliers TaskName = "SUPPLIERS" // the session's suppliers task
	TaskItems     TaskName = "ITEMS"     // an items task
	TaskSession   TaskName = "SESSION"   // the whole session (its errors carry no _id)
)

// head is the service's own part of every message, in the SPEC's order.
type head struct {
	Session string          `json:"_session"`
	Task    TaskName        `json:"_task"`
	ID      int64           `json:"_id,omitempty"`
	Status  Status          `json:"_status"`
	Error   aggregator.Code `json:"_error,omitempty"`
	Message string          `json:"_message,omitempty"` // a PublicError's text (SPEC §15)
	Params  json.RawMessage `json:"_params,omitempty"`
	Info    json.RawMessage `json:"_info,omitempty"`
}

// encode writes the head as json.Marshal wrote the struct: fields in
// order, empty ones left out, _params and _info compacted with <, > and &
// escaped.
func (h head) encode() []byte {
	return h.appendTo(make([]byte, 0, 80+len(h.Session)+len(h.Message)+len(h.Params)+len(h.Info)))
}

func (h head) appendTo(b []byte) []byte {
	b = append(b, `{"_session":`...)
	b = appendString(b, h.Session)
	b = append(b, `,"_task":`...)
	b = appendString(b, string(h.Task))
	if h.ID != 0 {
		b = append(b, `,"_id":`...)
		b = strconv.AppendInt(b, h.ID, 10)
	}
	b = append(b, `,"_status":`...)
	b = appendString(b, string(h.Status))
	if h.Error != "" {
		b = append(b, `,"_error":`...)
		b = appendString(b, string(h.Error))
	}
	if h.Message != "" {
		b = append(b, `,"_message":`...)
		b = appendString(b, h.Message)
	}
	if len(h.Params) > 0 {
		b = append(b, `,"_params":`...)
		b = appendRaw(b, h.Params)
	}
	if len(h.Info) > 0 {
		b = append(b, `,"_info":`...)
		b = appendRaw(b, h.Info)
	}
	return append(b, '}')
}

// keyField makes a field of a key and a raw value of our own.
func keyField(key string, value []byte) field {
	q := appendString(nil, key)
	return field{raw: q, quoted: q, escaped: string(q[1:len(q)-1]) != key, Value: value}
}

// isOurs says the field's key is one the service writes in a SENDING
// message: the item's own field of that name is dropped so ours win (SPEC §4).
func isOurs(f *field) bool {
	k := f.raw[1 : len(f.raw)-1]
	if f.escaped {
		k = []byte(f.name())
	}
	switch string(k) {
	case "_session", "_task", "_id", "_status", "_error", "_params", "_info":
		return true
	}
	return false
}

// itemMessageSize is at least the length of an item's message.
func itemMessageSize(item []field, headTail []byte) int {
	n := 2 + len(headTail)
	for i := range item {
		n += len(item[i].quoted) + len(item[i].Value) + 2
	}
	return n
}

// appendItemMessage appends a SENDING message to b: the item's own fields,
// then ours (headTail: the encoded head without its '{').
func appendItemMessage(b []byte, item []field, headTail []byte) []byte {
	b = append(b, '{')
	n := len(b)
	b = appendFields(b, item, true)
	if len(b) > n {
		b = append(b, ',')
	}
	return append(b, headTail...)
}

// itemsTask is what an items task is made of from one supplier element: its
// input (the element, re-encoded), class (for logs) and info field (_info,
// copied: the task must not keep the whole suppliers answer alive).
func itemsTask(elem []field, infoField string) (input []byte, class string, info json.RawMessage) {
	return encodeFields(elem), stringValue(lookup(elem, "class")), bytes.Clone(lookup(elem, infoField))
}

// stringValue is a JSON string value decoded; "" for any other value.
func stringValue(raw []byte) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner)
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

// encodeFields writes fields as a JSON object.
func encodeFields(fields []field) json.RawMessage {
	n := 2
	for i := range fields {
		n += len(fields[i].quoted) + len(fields[i].Value) + 2
	}
	b := append(make([]byte, 0, n), '{')
	b = appendFields(b, fields, false)
	return append(b, '}')
}

// appendFields writes fields as comma-separated "key":value pairs, leaving
// out ours (isOurs) when skipOurs.
func appendFields(b []byte, fields []field, skipOurs bool) []byte {
	first := true
	for i := range fields {
		f := &fields[i]
		if skipOurs && isOurs(f) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, f.quoted...)
		b = append(b, ':')
		b = append(b, f.Value...)
	}
	return b
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

var null = []byte("null")

// parseOutput checks a script's answer: a JSON object (else jsonCode) with
// an array of objects under listKey (else respCode), and, for items, an
// optional array of nested suppliers under suppliersKey. One pass checks
// the whole answer and splits those arrays; when a key comes twice, the
// last one counts.
func parseOutput(out []byte, listKey, suppliersKey string, jsonCode, respCode aggregator.Code) (output, aggregator.Code, error) {
	var res output
	out = validUTF8(bytes.TrimSpace(out))
	list, nested := wanted{key: listKey}, wanted{key: suppliersKey}
	want := []*wanted{&list, &nested}
	if listKey == suppliersKey {
		want = want[:1]
	}
	if _, err := parseTop(out, want); err != nil {
		return res, jsonCode, fmt.Errorf("output is not a JSON object: %v", err)
	}
	if !list.found {
		return res, respCode, fmt.Errorf("output has no %q field", listKey)
	}
	if list.bad != nil {
		return res, respCode, fmt.Errorf("field %q: %v", listKey, list.bad)
	}
	if listKey == suppliersKey {
		res.Suppliers = list.elems
		return res, "", nil
	}
	res.Items = list.elems
	if nested.found && !bytes.Equal(nested.value, null) {
		if nested.bad != nil {
			return res, respCode, fmt.Errorf("field %q: %v", suppliersKey, nested.bad)
		}
		res.Suppliers = nested.elems
	}
	return res, "", nil
}

// lookup returns the value of key in fields (its first occurrence), or nil.
func lookup(fields []field, key string) json.RawMessage {
	for i := range fields {
		if fields[i].is(key) {
			return fields[i].Value
		}
	}
	return nil
}
