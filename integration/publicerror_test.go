package integration

// SPEC §15: what a translator may tell the customer. A handler that throws
// \Aggregator\PublicError ends its task E_SCRIPT_ERROR and the browser's
// ERROR carries "_message" with its text; any other exception's text stays
// in the log. The demo refuses apikey 999 in its suppliers handler and its
// refused-* suppliers (scenario publicError) in the items handler.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPublicError(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			m := "-Daggregator.pool.mode=" + mode
			s := startServer(t, nil, m, "-Daggregator.timeout.script=3")

			// The suppliers handler refuses the apikey: one task ERROR that
			// says why, then close 1000 (not a bare close, as for no suppliers).
			r := s.session(t, 20*time.Second, `{"code":"normal","brand":"ctr","apikey":"999","analog":1}`)
			if len(r.Msgs) != 1 || r.CloseCode != 1000 {
				t.Fatalf("refused apikey: want one message and close 1000, got %v close %d", r.Msgs, r.CloseCode)
			}
			e := r.Msgs[0]
			if e.str("_task") != "SUPPLIERS" || e.str("_status") != "ERROR" || e.str("_error") != "E_SCRIPT_ERROR" ||
				e.str("_message") != "API key 999 may not search" {
				t.Errorf("refused apikey: got %v, want a SUPPLIERS ERROR E_SCRIPT_ERROR with _message", e)
			}
			checkMessages(t, r, "normal")

			// The items handler of refused-2 refuses; normal-1 answers.
			r = s.session(t, 20*time.Second, request("publicError"))
			checkResult(t, "publicError", r, expect{2, 3, 1, []string{"E_SCRIPT_ERROR"}, 1000})
			for _, msg := range r.Msgs {
				info, _ := msg["_info"].(map[string]any)
				switch {
				case msg.str("_status") == "ERROR":
					if msg.str("_message") != "Supplier refused-2 does not deliver to your region" || info["supplier"] != "refused-2" {
						t.Errorf("publicError: ERROR %v, want refused-2's _message", msg)
					}
				case msg["_message"] != nil:
					t.Errorf("publicError: %s message with _message: %v", msg.str("_status"), msg)
				}
			}

			// Any other exception: E_SCRIPT_ERROR and no _message; its text is
			// in the log only.
			for _, code := range []string{"suppliersError", "itemsError", "mixed"} {
				r = s.session(t, 20*time.Second, request(code))
				errs := 0
				for _, msg := range r.Msgs {
					if msg.str("_error") == "E_SCRIPT_ERROR" {
						errs++
					}
					if _, has := msg["_message"]; has {
						t.Errorf("%s: _message reached the browser: %v", code, msg)
					}
				}
				if errs == 0 {
					t.Errorf("%s: no E_SCRIPT_ERROR in %v", code, r.Msgs)
				}
			}
			dkLogLine(t, s, "handler failed", `"exception": "Aggregator\\PublicError"`, `"error": "API key 999 may not search"`, `"public": true`)
			if line := dkLogLine(t, s, "handler failed", "demo: the items script failed"); strings.Contains(line, `"public"`) {
				t.Errorf("a RuntimeException is logged as public: %s", line)
			}

			// aggregator call says what the customer would read.
			for _, c := range []struct{ kind, input, message string }{
				{"suppliers", `{"code":"normal","brand":"ctr","apikey":"999","analog":1}`, "API key 999 may not search"},
				{"items", `{"class":"refused-2"}`, "Supplier refused-2 does not deliver to your region"},
				{"items", `{"class":"error-1"}`, ""},
			} {
				res := dkCall(t, nil, m, "call", "--json", c.kind, c.input)
				var v struct{ Code, Message string }
				if err := json.Unmarshal([]byte(res.stdout), &v); err != nil || res.exit != 1 || v.Code != "E_SCRIPT_ERROR" || v.Message != c.message {
					t.Errorf("call --json %s %s: want exit 1, E_SCRIPT_ERROR, message %q:\n%s", c.kind, c.input, c.message, res)
				}
				res = dkCall(t, nil, m, "call", c.kind, c.input)
				shown := strings.Contains(res.stdout, fmt.Sprintf("_message:  %s (the customer reads this)", c.message))
				if shown != (c.message != "") || (c.message == "" && strings.Contains(res.stdout, "_message:")) {
					t.Errorf("call %s %s: _message line wrong:\n%s", c.kind, c.input, res)
				}
			}
		})
	}
}
