package limit

import (
	"strings"
	"testing"
	"time"

	"github.com/magiconair/properties"
	"github.com/spf13/viper"
)

// TestConfigDecodes: the keys of SPEC §18 in application.properties decode
// into Config with viper as they are; what a supplier leaves unset comes
// from aggregator.fetch.*, and from Defaults under that.
func TestConfigDecodes(t *testing.T) {
	// As cmd/aggregator reads application.properties: magiconair/properties
	// parses it, each value is Set into viper.
	props, err := properties.LoadString(`
aggregator.fetch.max-in-flight=64
aggregator.fetch.breaker.failures=7
aggregator.fetch.redis.address=127.0.0.1:6379
aggregator.supplier.armtek.hosts=ws.armtek.ru, *.armtek.kz
aggregator.supplier.armtek.rate=5000/d,20/s
aggregator.supplier.armtek.breaker.open-time=10s
aggregator.supplier.armtek.breaker.count=5xx,timeout,429
aggregator.supplier.emex.hosts=api.emex.ru:8443
aggregator.supplier.emex.max-in-flight=-1
aggregator.supplier.emex.breaker.enabled=false
aggregator.supplier.emex.hedge=true
`)
	if err != nil {
		t.Fatal(err)
	}
	v := viper.New()
	for _, k := range props.Keys() {
		v.Set(k, props.GetString(k, ""))
	}
	var cfg Config
	for key, into := range map[string]any{"aggregator.fetch": &cfg.Default, "aggregator.supplier": &cfg.Suppliers, "aggregator.fetch.redis": &cfg.Redis} {
		if err := v.UnmarshalKey(key, into); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	r, err := resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, e := r.suppliers["armtek"], r.suppliers["emex"]
	if a.maxInFlight != 64 || a.rate.String() != "5000/d,20/s" || a.breaker.Failures != 7 || a.breaker.OpenTime != 10*time.Second ||
		a.breaker.MaxOpenTime != 5*time.Minute || !a.count.statuses[429] || a.count.causes["refused"] || a.hedge {
		t.Errorf("armtek: %+v", a)
	}
	if e.maxInFlight != 0 || len(e.rate) != 0 || e.breaker.Failures != 0 || !e.hedge {
		t.Errorf("emex: %+v", e)
	}
	if r.def.maxInFlight != 64 || r.def.breaker.Failures != 7 || !r.def.count.causes["refused"] || r.redis.Address != "127.0.0.1:6379" || r.redis.Timeout != 100*time.Millisecond {
		t.Errorf("defaults: %+v %+v", r.def, r.redis)
	}
	for hostname, want := range map[string]string{"ws.armtek.ru:443": "armtek", "b2b.armtek.kz:80": "armtek", "armtek.kz:80": "",
		"api.emex.ru:8443": "emex", "api.emex.ru:443": ""} {
		if got := r.hosts.lookup(splitKey(hostname)); got != want {
			t.Errorf("%s is %q's, want %q's", hostname, got, want)
		}
	}
}

// TestConfigErrors: each mistake names its key.
func TestConfigErrors(t *testing.T) {
	for want, cfg := range map[string]Config{
		"aggregator.fetch.rate":                   {Default: Policy{Rate: "fast"}},
		"aggregator.supplier.x.hosts: a supplier": {Suppliers: map[string]Supplier{"x": {}}},
		"named by suppliers a and b":              {Suppliers: map[string]Supplier{"a": {Hosts: []string{"h"}}, "b": {Hosts: []string{"H"}}}},
		"aggregator.supplier.x.breaker.count":     {Suppliers: map[string]Supplier{"x": {Hosts: []string{"h"}, Policy: Policy{Breaker: BreakerConfig{Count: []string{"slow"}}}}}},
		"aggregator.supplier.x.max-in-flight":     {Suppliers: map[string]Supplier{"x": {Hosts: []string{"h"}, Policy: Policy{MaxInFlight: -2}}}},
		"aggregator.fetch.breaker":                {Default: Policy{Breaker: BreakerConfig{OpenTime: time.Minute, MaxOpenTime: time.Second}}},
		"is not a host name":                      {Suppliers: map[string]Supplier{"x": {Hosts: []string{"https://h/"}}}},
	} {
		if _, err := resolve(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", cfg, err, want)
		}
	}
}
