package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"
)

// testPolicy is the shape of per-supplier settings: optional values (nil
// while unset, so that a supplier can take the default's), a nested
// prefix (breaker.*), a Go duration.
type testPolicy struct {
	MaxInFlight *int `key:"max-in-flight" min:"-1" doc:"calls at once; -1 = no cap; unset = the default's"`
	Breaker     struct {
		Enabled  *bool         `key:"enabled" doc:"the breaker is on"`
		OpenTime time.Duration `key:"open-time" as:"duration" default:"30s" doc:"how long it stays open"`
	} `key:"breaker."`
}

// testSupplier is a named group's entry: its own key, and the policy's
// keys under the same PREFIX.NAME. (an embedded section).
type testSupplier struct {
	Hosts []string `key:"hosts" default:"" doc:"hosts of this supplier"`
	testPolicy
}

// groupTestConfig has a section, a key read by two sections, a key read
// only in one mode, a prefixed section, and a named group.
type groupTestConfig struct {
	Mode string `key:"test.mode" default:"a" doc:"a or b"`
	Top  struct {
		Size int `key:"test.size" min:"1" default:"3" doc:"how many"`
	} `doc:"the first section"`
	Other struct {
		Size  int    `key:"test.size" min:"1"`
		OnlyB string `key:"test.only-b" when:"test.mode=b" default:"bee" doc:"read in mode b"`
	}
	Default   testPolicy              `key:"test.fetch." doc:"every host's"`
	Suppliers map[string]testSupplier `key:"test.supplier.*" doc:"per supplier"`
	Log       *strings.Builder        // not configuration
	internal  int                     // unexported: not configuration
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
		"test.size":                            "7",
		"test.fetch.max-in-flight":             "64",
		"test.supplier.acme.hosts":             "api.acme.example, cdn.acme.example",
		"test.supplier.acme.breaker.open-time": "1m30s",
		"test.supplier.acme.breaker.enabled":   "false",
		"test.supplier.zeta.max-in-flight":     "-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Top.Size != 7 || c.Other.Size != 7 || c.Other.OnlyB != "" || c.Mode != "a" {
		t.Errorf("sections: %+v %+v mode %q; want size 7 in both, only-b unread in mode a", c.Top, c.Other, c.Mode)
	}
	if c.Default.MaxInFlight == nil || *c.Default.MaxInFlight != 64 || c.Default.Breaker.Enabled != nil || c.Default.Breaker.OpenTime != 30*time.Second {
		t.Errorf("the prefixed section: %+v, want max-in-flight 64, enabled unset, open-time 30s", c.Default)
	}
	acme, zeta := c.Suppliers["acme"], c.Suppliers["zeta"]
	if len(c.Suppliers) != 2 || strings.Join(acme.Hosts, " ") != "api.acme.example cdn.acme.example" || acme.MaxInFlight != nil ||
		acme.Breaker.Enabled == nil || *acme.Breaker.Enabled || acme.Breaker.OpenTime != 90*time.Second {
		t.Errorf("group entry acme: %+v", acme)
	}
	if zeta.Hosts != nil || zeta.MaxInFlight == nil || *zeta.MaxInFlight != -1 || zeta.Breaker.Enabled != nil || zeta.Breaker.OpenTime != 30*time.Second {
		t.Errorf("group entry zeta: %+v, want no hosts, max-in-flight -1 and the defaults", zeta)
	}
	if c, err = decodeTest(t, map[string]string{"test.mode": "B"}); err != nil || c.Other.OnlyB != "bee" || len(c.Suppliers) != 0 {
		t.Errorf("mode b: %+v, %v; want only-b's default and no suppliers", c, err)
	}
	for key, msg := range map[string]string{
		"test.supplier.acme.max-in-flight":     "must be at least -1, got -2",
		"test.supplier.acme.breaker.open-time": `not a duration such as 30s, 5m or 1h30m: "-2"`,
		"test.fetch.breaker.enabled":           `not true or false: "-2"`,
	} {
		_, err = decodeTest(t, map[string]string{key: "-2"})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != key || ce.Msg != msg {
			t.Errorf("%s=-2: %v, want a ConfigError naming it: %s", key, err, msg)
		}
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
		"test.fetch.max-in-flight= (every host's)", "test.fetch.breaker.enabled= (every host's)", "test.fetch.breaker.open-time=30s (every host's)",
		"test.supplier.NAME.hosts= (per supplier)", "test.supplier.NAME.max-in-flight= (per supplier)",
		"test.supplier.NAME.breaker.enabled= (per supplier)", "test.supplier.NAME.breaker.open-time=30s (per supplier)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("specs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if table := keysTable(ks); !strings.Contains(table, "### per supplier\n\n| key | default | meaning |\n|---|---|---|\n"+
		"| `test.supplier.NAME.hosts` | empty | hosts of this supplier |\n") {
		t.Errorf("the docs' table of a named group:\n%s", table)
	}
	for key, known := range map[string]bool{
		"test.supplier.acme.hosts": true, "test.supplier.a-b_c.breaker.open-time": true, "test.fetch.breaker.enabled": true,
		"test.supplier..hosts": false, "test.supplier.acme": false,
		"test.supplier.acme.hosts.x": false, "test.supplier.acme.breaker": false,
	} {
		if ks.known(key) != known {
			t.Errorf("known(%q) = %v", key, !known)
		}
	}
	for typo, meant := range map[string]string{
		"test.supplier.acme.hots":             "test.supplier.acme.hosts",
		"test.suplier.acme.hosts":             "test.supplier.acme.hosts",
		"test.supplier.acme.breaker.opentime": "test.supplier.acme.breaker.open-time",
		"test.fetch.breaker.enable":           "test.fetch.breaker.enabled",
		"supplier.acme.max-in-flight":         "test.supplier.acme.max-in-flight",
		"test.siz":                            "test.size",
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
		"unexported key": &struct {
			a int `key:"a" doc:"x"`
		}{},
		"pointer to a struct": &struct {
			A *struct{} `key:"a" doc:"x"`
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
			A map[string]testSupplier `key:"a"`
		}{},
		"group in a group": &struct {
			A map[string]struct {
				B map[string]testSupplier `key:"b.*"`
			} `key:"a.*"`
		}{},
	} {
		if _, err := keysOf(root); err == nil {
			t.Errorf("%s: keysOf accepted it", name)
		}
	}
}
