package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/theaspect/aggregator"
)

// The first implementation of the server's JSON work, on encoding/json's
// token decoder, kept as the reference: the one-pass code of json.go must
// accept and refuse the same input and put the same bytes on the wire.

type refField struct {
	Key   string
	Value json.RawMessage
}

type refHead struct {
	Session string          `json:"_session"`
	Task    TaskName        `json:"_task"`
	ID      int64           `json:"_id,omitempty"`
	Status  Status          `json:"_status"`
	Error   aggregator.Code `json:"_error,omitempty"`
	Message string          `json:"_message,omitempty"`
	Params  json.RawMessage `json:"_params,omitempty"`
	Info    json.RawMessage `json:"_info,omitempty"`
}

func (h refHead) encode() []byte {
	b, err := json.Marshal(h)
	if err != nil {
		panic(fmt.Sprintf("encode message head: %v", err))
	}
	return b
}

func refObjectFields(obj []byte) ([]refField, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var fields []refField
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
		fields = append(fields, refField{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return fields, nil
}

var refOurKeys = map[string]bool{"_session": true, "_task": true, "_id": true, "_status": true,
	"_error": true, "_params": true, "_info": true}

func refItemMessage(item []refField, headTail []byte) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	if refWriteFields(&b, item, refOurKeys) > 0 {
		b.WriteByte(',')
	}
	b.Write(headTail)
	return b.Bytes()
}

func refItemsTask(elem []refField, infoField string) (input []byte, class string, info json.RawMessage) {
	_ = json.Unmarshal(refLookup(elem, "class"), &class)
	return refEncodeFields(elem), class, refLookup(elem, infoField)
}

func refEncodeFields(fields []refField) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	refWriteFields(&b, fields, nil)
	b.WriteByte('}')
	return b.Bytes()
}

func refWriteFields(b *bytes.Buffer, fields []refField, skip map[string]bool) int {
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

type refOutput struct {
	Items     [][]refField
	Suppliers [][]refField
}

func refParseOutput(out []byte, listKey, suppliersKey string, jsonCode, respCode aggregator.Code) (refOutput, aggregator.Code, error) {
	var res refOutput
	out = validUTF8(bytes.TrimSpace(out))
	fields, err := refObjectFields(out)
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
	objs, err := refArrayOfObjects(list)
	if err != nil {
		return res, respCode, fmt.Errorf("field %q: %v", listKey, err)
	}
	if listKey == suppliersKey {
		res.Suppliers = objs
		return res, "", nil
	}
	res.Items = objs
	if nested != nil && !bytes.Equal(nested, []byte("null")) {
		sup, err := refArrayOfObjects(nested)
		if err != nil {
			return res, respCode, fmt.Errorf("field %q: %v", suppliersKey, err)
		}
		res.Suppliers = sup
	}
	return res, "", nil
}

func refArrayOfObjects(raw json.RawMessage) ([][]refField, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || elems == nil {
		return nil, errors.New("expected an array of objects")
	}
	out := make([][]refField, 0, len(elems))
	for i, e := range elems {
		f, err := refObjectFields(e)
		if err != nil {
			return nil, fmt.Errorf("element %d is not an object", i)
		}
		out = append(out, f)
	}
	return out, nil
}

func refLookup(fields []refField, key string) json.RawMessage {
	for _, f := range fields {
		if f.Key == key {
			return f.Value
		}
	}
	return nil
}

func refPick(fields []refField, keys []string) json.RawMessage {
	var out []refField
	for _, k := range keys {
		if v := refLookup(fields, k); v != nil {
			out = append(out, refField{k, v})
		}
	}
	if out == nil {
		return nil
	}
	return refEncodeFields(out)
}

func refParseRequest(data []byte, required, faulty []string) (request, aggregator.Code, []string) {
	var r request
	fields, err := refObjectFields(data)
	if err != nil || !json.Valid(data) {
		return r, aggregator.ERequestJSON, nil
	}
	r.params = refPick(fields, faulty)
	allowed := make([]refField, 0, len(required)+1)
	var missing []string
	for _, k := range required {
		v := refLookup(fields, k)
		if v == nil || string(v) == "null" {
			missing = append(missing, k)
			continue
		}
		allowed = append(allowed, refField{k, v})
	}
	if len(missing) > 0 {
		return r, aggregator.EIllegalRequest, missing
	}
	r.input = refEncodeFields(append(allowed, refField{"params", refEncodeFields(allowed)}))
	return r, "", nil
}

// outputSeeds are script outputs worth trying: the demo's, and every corner
// the token decoder had.
var outputSeeds = []string{
	`{"items":[{"code":"normal-1-1","brand":"ctr","name":"Demo part 1 from normal-1","price":11.99,"quantity":5,"supplier":"normal-1"}]}`,
	`{"items":[{"code":"a","price":1.5}],"suppliers":[{"class":"x","info":{"a":1}}]}`,
	`{"suppliers":[{"class":"normal-1","params":{"login":"demo","password":"demo"},"code":"normal","brand":"ctr","analog":"1","info":{"supplier":"normal-1","title":"Demo supplier normal-1"}}]}`,
	`{"items":[]}`, `{"items":{}}`, `{"items":[1]}`, `Not a JSON`, `{"items":[{"_id":"x","_status":1}]}`,
	"{\"items\":[{\"n\":\"\xff\xfe\"}]}", `{"items":[{}],"suppliers":null}`, `{"items":[{}],"suppliers":[2]}`,
	`{"suppliers":[{"class":"a"}]}`, "\n {\"items\":[]} \n", `{"items":[]}{"items":[]}`,
	`{"items":[{"a" : [1, 2 ,{"b" :"c"} ] , "d":"e"}] , "suppliers" : [ { "class" : "x\u0041" } ]}`,
	`{"items":5,"items":[{"x":1}]}`, `{"items":[{"x":1}],"items":null}`, `{"items":[{}],"suppliers":[{}],"suppliers":7}`,
	`{"it\u0065ms":[{"\u003ckey\u003e":"<v>","\u2028":"x","_st\u0061tus":1}]}`, `{"items":[{"<&>":"a","é":"\u00e9"}]}`,
	`{"items":[{"k":"\ud800","\udfff":1}]}`, "{\"items\":[{\"k\u2028\":\"\u2029\"}]}",
	`{"items":[{"n":-0.5e+10,"m":1E5,"z":0,"t":true,"f":false,"u":null}]}`, `{"items":[{"n":01}]}`, `{"items":[{"n":1.}]}`,
	`{"items":[{"n":-}]}`, `{"items":[{"s":"\x"}]}`, `{"items":[{"s":"\u12"}]}`, "{\"items\":[{\"s\":\"\x01\"}]}",
	`{"items":[{}],}`, `{"items":[{},]}`, `{,}`, `{"a"}`, `{"a":}`, `{"a":1 "b":2}`, `[]`, `null`, `"x"`, `12`, ``, `   `,
	`{"items":[{"a":tru}]}`, `{"items":[{"a":nul}]}`, `{"items":[[]]}`, `{"items":[{"a":{}}, {"b":[]}]}`,
	`{"items":[` + strings.Repeat(`[`, 9998) + strings.Repeat(`]`, 9998) + `]}`,
	`{"items":[` + strings.Repeat(`[`, 9999) + strings.Repeat(`]`, 9999) + `]}`,
	`{"a":` + strings.Repeat(`{"b":`, 9998) + `1` + strings.Repeat(`}`, 9998) + `,"items":[]}`,
	`{"a":` + strings.Repeat(`{"b":`, 9999) + `1` + strings.Repeat(`}`, 9999) + `,"items":[]}`,
	`{"items":[{"x":1}]}` + "\xc2\xa0", "\xef\xbb\xbf{\"items\":[]}", `{"items":[{"a":"\/"}]}`,
}

// compareOutput checks one output through the new and the reference code:
// the same codes, and the same bytes for every message it makes.
func compareOutput(t *testing.T, out []byte) {
	t.Helper()
	heads := []head{
		{Session: "12", Task: TaskItems, ID: 7, Status: StatusSending, Info: json.RawMessage(`{"a": [1, "<&>"] }`)},
		{Session: "1", Task: TaskItems, ID: 1, Status: StatusSending},
	}
	for _, keys := range [][2]string{{"items", "suppliers"}, {"suppliers", "suppliers"}, {"parts", "more"}, {"items", "items"}} {
		res, code, err := parseOutput(out, keys[0], keys[1], aggregator.EItemsJSON, aggregator.EItemsResponse)
		ref, refCode, refErr := refParseOutput(out, keys[0], keys[1], aggregator.EItemsJSON, aggregator.EItemsResponse)
		if code != refCode || (err == nil) != (refErr == nil) {
			t.Fatalf("keys %v, output %q: code %q (%v), reference %q (%v)", keys, out, code, err, refCode, refErr)
		}
		if code != "" {
			if code == aggregator.EItemsResponse && err.Error() != refErr.Error() {
				t.Fatalf("keys %v, output %q: error %q, reference %q", keys, out, err, refErr)
			}
			continue
		}
		if len(res.Items) != len(ref.Items) || len(res.Suppliers) != len(ref.Suppliers) {
			t.Fatalf("keys %v, output %q: %d items and %d suppliers, reference %d and %d", keys, out,
				len(res.Items), len(res.Suppliers), len(ref.Items), len(ref.Suppliers))
		}
		for _, h := range heads {
			tail := h.encode()[1:]
			refTail := refHead(h).encode()[1:]
			if !bytes.Equal(tail, refTail) {
				t.Fatalf("head %q, reference %q", tail, refTail)
			}
			for i := range res.Items {
				if m, rm := itemMessage(res.Items[i], tail), refItemMessage(ref.Items[i], refTail); !bytes.Equal(m, rm) {
					t.Fatalf("output %q item %d: message\n%q\nreference\n%q", out, i, m, rm)
				}
			}
		}
		for i := range res.Suppliers {
			in, class, info := itemsTask(res.Suppliers[i], "info")
			rin, rclass, rinfo := refItemsTask(ref.Suppliers[i], "info")
			if !bytes.Equal(in, rin) || class != rclass || !bytes.Equal(info, rinfo) {
				t.Fatalf("output %q supplier %d: %q %q %q, reference %q %q %q", out, i, in, class, info, rin, rclass, rinfo)
			}
			for _, h := range heads {
				h.Info = info
				if m, rm := h.encode(), refHead(h).encode(); !bytes.Equal(m, rm) {
					t.Fatalf("head with _info %q: %q, reference %q", info, m, rm)
				}
			}
		}
	}
}

func TestOutputMatchesReference(t *testing.T) {
	for _, s := range outputSeeds {
		compareOutput(t, []byte(s))
	}
}

// FuzzOutputMatchesReference: for any output, the one-pass check gives the
// codes and the bytes of the token decoder it replaced.
func FuzzOutputMatchesReference(f *testing.F) {
	for _, s := range outputSeeds {
		if len(s) < 1000 {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, out []byte) { compareOutput(t, out) })
}

func compareRequest(t *testing.T, data []byte) {
	t.Helper()
	required, faulty := []string{"code", "brand", "apikey", "analog"}, []string{"code", "brand", "analog", "<&>"}
	r, code, missing := parseRequest(data, required, faulty)
	rr, rcode, rmissing := refParseRequest(data, required, faulty)
	if code != rcode || !bytes.Equal(r.input, rr.input) || !bytes.Equal(r.params, rr.params) || fmt.Sprint(missing) != fmt.Sprint(rmissing) {
		t.Fatalf("request %q: %q %q %q %v, reference %q %q %q %v", data, code, r.input, r.params, missing,
			rcode, rr.input, rr.params, rmissing)
	}
	if code == "" || r.params != nil {
		h := head{Session: "3", Task: TaskSession, Status: StatusError, Error: aggregator.ESessionTimeout, Params: r.params,
			Message: "API key <999> may not search\u2028é\x01"}
		if m, rm := h.encode(), refHead(h).encode(); !bytes.Equal(m, rm) {
			t.Fatalf("error head %q, reference %q", m, rm)
		}
	}
}

var requestSeeds = []string{
	`{"code":"3310","brand":"ctr","apikey":"111111","analog":1}`,
	`{"code":"x"}`, `{not json`, `[]`, `null`, `"str"`, `{"code":null,"brand":1,"apikey":{},"analog":[]}`,
	`{"code":"a","code":"b","brand":"c","apikey":"d","analog":0}`, "{\"code\":\"\xff\"}", ``, `{}{}`,
	`{"code" : "<a & b>", "brand":"\u2028", "apikey" : [ 1 , 2 ], "analog":{"x" : " y "}, "<&>":1}`,
	`{"c\u006fde":"1","brand":"2","apikey":"3","analog":"4"}`,
}

func TestRequestMatchesReference(t *testing.T) {
	for _, s := range requestSeeds {
		compareRequest(t, []byte(s))
	}
}

func FuzzRequestMatchesReference(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { compareRequest(t, data) })
}
