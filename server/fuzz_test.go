package server

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/theaspect/aggregator"
)

// FuzzParseRequest: any browser message is either refused with a code or
// becomes a valid suppliers input; nothing panics.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		`{"code":"3310","brand":"ctr","apikey":"111111","analog":1}`,
		`{"code":"x"}`, `{not json`, `[]`, `null`, `"str"`, `{"code":null,"brand":1,"apikey":{},"analog":[]}`,
		`{"code":"a","code":"b","brand":"c","apikey":"d","analog":0}`, "{\"code\":\"\xff\"}", ``, `{}{}`,
	} {
		f.Add([]byte(seed))
	}
	required, faulty := []string{"code", "brand", "apikey", "analog"}, []string{"code", "brand", "analog"}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, code, _ := parseRequest(data, required, faulty)
		switch code {
		case "":
			var in map[string]json.RawMessage
			if err := json.Unmarshal(r.input, &in); err != nil {
				t.Fatalf("input %q is not a JSON object: %v", r.input, err)
			}
			for _, k := range append(required, "params") {
				if _, ok := in[k]; !ok {
					t.Fatalf("input %q lacks %s", r.input, k)
				}
			}
		case aggregator.ERequestJSON, aggregator.EIllegalRequest:
		default:
			t.Fatalf("unexpected code %s", code)
		}
		if r.params != nil && !json.Valid(r.params) {
			t.Fatalf("_params %q is not JSON", r.params)
		}
	})
}

// FuzzParseOutput: any script output is either refused with its code or
// gives items and suppliers that make valid, UTF-8 messages.
func FuzzParseOutput(f *testing.F) {
	for _, seed := range []string{
		`{"items":[{"code":"a","price":1.5}],"suppliers":[{"class":"x","info":{"a":1}}]}`,
		`{"items":[]}`, `{"items":{}}`, `{"items":[1]}`, `Not a JSON`, `{"items":[{"_id":"x","_status":1}]}`,
		"{\"items\":[{\"n\":\"\xff\xfe\"}]}", `{"items":[{}],"suppliers":null}`, `{"items":[{}],"suppliers":[2]}`,
		`{"suppliers":[{"class":"a"}]}`, "\n {\"items\":[]} \n", `{"items":[]}{"items":[]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		for _, kind := range []string{"items", "suppliers"} {
			res, code, err := parseOutput(out, kind, "suppliers", aggregator.EItemsJSON, aggregator.EItemsResponse)
			if (code == "") != (err == nil) {
				t.Fatalf("code %q with error %v", code, err)
			}
			if code != "" {
				continue
			}
			tail := head{Session: "1", Task: TaskItems, ID: 7, Status: StatusSending, Info: json.RawMessage(`{"a":1}`)}.encode()[1:]
			for _, item := range res.Items {
				m := itemMessage(item, tail)
				var v map[string]any
				if err := json.Unmarshal(m, &v); err != nil || !utf8.Valid(m) {
					t.Fatalf("message %q from %q: %v", m, out, err)
				}
				if v["_id"] != float64(7) || v["_status"] != string(StatusSending) {
					t.Fatalf("ours must win: %q", m)
				}
			}
			for _, s := range res.Suppliers {
				if e := encodeFields(s); !json.Valid(e) {
					t.Fatalf("supplier %q is not JSON", e)
				}
			}
		}
	})
}

// itemMessage is one SENDING message on its own, as onTaskDone builds it
// in the task's shared buffer.
func itemMessage(item []field, headTail []byte) []byte {
	return appendItemMessage(make([]byte, 0, itemMessageSize(item, headTail)), item, headTail)
}
