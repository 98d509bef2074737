package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"
)

// limitsConfig is a settings struct of the kind a named group holds: keys
// relative to the group's PREFIX.NAME., dots allowed.
type limitsConfig struct {
	Hosts       []string      `key:"hosts" default:"" doc:"hosts of this supplier"`
	MaxInFlight int           `key:"max-in-flight" min:"0" default:"0" doc:"calls at once; 0 = no limit"`
	Cooldown    time.Duration `key:"breaker.cooldown" default:"5" doc:"seconds the breaker stays open"`
}

// groupTestConfig has a section, a key read by two sections, a key read
// only in one mode, and a named group.
type groupTestConfig struct {
	Mode string `key:"test.mode" default:"a" doc:"a or b"`
	Top  struct {
		Size int `key:"test.size" min:"1" default:"3" doc:"how many"`
	} `doc:"the first section"`
	Other struct {
		Size  int    `key:"test.size" min:"1"`
		OnlyB string `key:"test.only-b" when:"test.mode=b" default:"bee" doc:"read in mode b"`
	}
	Suppliers map[string]limitsConfig `key:"test.supplier.*" doc:"per supplier"`
	Log       *strings.Builder        // not configuration
}

func decodeTest(t *testing.T, set map[string]string) (*groupTestConfig, error) {
	t.Helper()
	ks, err := keysOf(&groupTestConfig{})
	if err != nil {
		t.Fatal(err)
	}
	v := viper.New()
	ks.defaults(v)
	for k, val := range set {
		if !ks.known(k) {
			t.Fatalf("%s: not a known key (suggested %q)", k, ks.suggest(k))
		}
		v.Set(k, val)
	}
	var c groupTestConfig
	return &c, ks.decode(v, &c)
}

// TestSettingsMechanism: sections, a key two sections read, a key read
// only in one mode, and a named group decoded into a map by name, each
// name with its defaults.
func TestSettingsMechanism(t *testing.T) {
	c, err := decodeTest(t, map[string]string{
		"test.size":                           "7",
		"test.supplier.acme.hosts":            "api.acme.example, cdn.acme.example",
		"test.supplier.acme.breaker.cooldown": "0.5",
		"test.supplier.zeta.max-in-flight":    "4",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Top.Size != 7 || c.Other.Size != 7 || c.Other.OnlyB != "" || c.Mode != "a" {
		t.Errorf("sections: %+v %+v mode %q; want size 7 in both, only-b unread in mode a", c.Top, c.Other, c.Mode)
	}
	want := map[string]limitsConfig{
		"acme": {Hosts: []string{"api.acme.example", "cdn.acme.example"}, Cooldown: 500 * time.Millisecond},
		"zeta": {MaxInFlight: 4, Cooldown: 5 * time.Second},
	}
	if !reflect.DeepEqual(c.Suppliers, want) {
		t.Errorf("group: %+v, want %+v", c.Suppliers, want)
	}
	if c, err = decodeTest(t, map[string]string{"test.mode": "B"}); err != nil || c.Other.OnlyB != "bee" || len(c.Suppliers) != 0 {
		t.Errorf("mode b: %+v, %v; want only-b's default and no suppliers", c, err)
	}

	_, err = decodeTest(t, map[string]string{"test.supplier.acme.max-in-flight": "-1"})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "test.supplier.acme.max-in-flight" || ce.Msg != "must be at least 0, got -1" {
		t.Errorf("a bad group value: %v, want a ConfigError naming test.supplier.acme.max-in-flight", err)
	}
}

// TestSettingsKeys: the keys a struct declares, as docs and lookups see
// them, and what a mistyped group key was meant to be.
func TestSettingsKeys(t *testing.T) {
	ks, err := keysOf(&groupTestConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range ks.specs {
		got = append(got, s.Key+"="+s.Default+" ("+s.Section+")")
	}
	want := []string{"test.mode=a ()", "test.size=3 (the first section)", "test.only-b=bee ()",
		"test.supplier.NAME.hosts= (per supplier)", "test.supplier.NAME.max-in-flight=0 (per supplier)",
		"test.supplier.NAME.breaker.cooldown=5 (per supplier)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("specs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if table := keysTable(ks); !strings.Contains(table, "### per supplier\n\n| key | default | meaning |\n|---|---|---|\n"+
		"| `test.supplier.NAME.hosts` | empty | hosts of this supplier |\n") {
		t.Errorf("the docs' table of a named group:\n%s", table)
	}
	for key, known := range map[string]bool{
		"test.supplier.acme.hosts": true, "test.supplier.a-b_c.breaker.cooldown": true,
		"test.supplier..hosts": false, "test.supplier.acme": false,
		"test.supplier.acme.hosts.x": false, "test.supplier.acme.breaker": false,
	} {
		if ks.known(key) != known {
			t.Errorf("known(%q) = %v", key, !known)
		}
	}
	for typo, meant := range map[string]string{
		"test.supplier.acme.hots":            "test.supplier.acme.hosts",
		"test.suplier.acme.hosts":            "test.supplier.acme.hosts",
		"test.supplier.acme.breaker.coldown": "test.supplier.acme.breaker.cooldown",
		"supplier.acme.max-in-flight":        "test.supplier.acme.max-in-flight",
		"test.siz":                           "test.size",
	} {
		if got := ks.suggest(typo); got != meant {
			t.Errorf("suggest(%q) = %q, want %q", typo, got, meant)
		}
	}
}

// TestSettingsTagErrors: a tag the mechanism cannot read is an error
// when the keys are read, not a key silently left out.
func TestSettingsTagErrors(t *testing.T) {
	for name, root := range map[string]any{
		"no doc": &struct {
			A int `key:"a"`
		}{},
		"two docs": &struct {
			A int `key:"a" doc:"x"`
			B int `key:"a" doc:"y"`
		}{},
		"a default without a doc": &struct {
			A int `key:"a" doc:"x"`
			B int `key:"a" default:"1"`
		}{},
		"unknown as": &struct {
			A time.Duration `key:"a" as:"minutes" doc:"x"`
		}{},
		"as on a bool": &struct {
			A bool `key:"a" as:"command" doc:"x"`
		}{},
		"auto on unsigned": &struct {
			A uint `key:"a" as:"int-or-auto" doc:"x"`
		}{},
		"min on a string": &struct {
			A string `key:"a" min:"1" doc:"x"`
		}{},
		"bad when": &struct {
			A string `key:"a" when:"mode" doc:"x"`
		}{},
		"when names no key": &struct {
			A string `key:"a" when:"mode=b" doc:"x"`
		}{},
		"unsupported type": &struct {
			A float64 `key:"a" doc:"x"`
		}{},
		"group without star": &struct {
			A map[string]limitsConfig `key:"a"`
		}{},
		"group in a group": &struct {
			A map[string]struct {
				B map[string]limitsConfig `key:"b.*"`
			} `key:"a.*"`
		}{},
	} {
		if _, err := keysOf(root); err == nil {
			t.Errorf("%s: keysOf accepted it", name)
		}
	}
}
