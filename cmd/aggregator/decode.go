package main

import (
	"fmt"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
	"github.com/theaspect/aggregator/pool"
)

// decode sets the fields of the struct root points to (of the keySet's
// type) from v's values: the first bad value is a *ConfigError naming its
// key. Fields that are not configuration are left as they are.
func (ks *keySet) decode(v *viper.Viper, root any) error {
	rv := reflect.ValueOf(root)
	if rv.Kind() != reflect.Pointer || rv.Elem().Type() != ks.root {
		return fmt.Errorf("decode wants a *%v, got %T", ks.root, root)
	}
	d := &decoder{v: v, ks: ks}
	d.layout(rv.Elem(), ks.layout, "")
	return d.err
}

// decoder reads values into fields, keeping the first error.
type decoder struct {
	v   *viper.Viper
	ks  *keySet
	err error
}

func (d *decoder) fail(key, format string, args ...any) {
	if d.err == nil {
		d.err = &ConfigError{key, fmt.Sprintf(format, args...)}
	}
}

// raw is key's text: its value in v, else def.
func (d *decoder) raw(key, def string) string {
	if d.v.IsSet(key) {
		return strings.TrimSpace(d.v.GetString(key))
	}
	return strings.TrimSpace(def)
}

func (d *decoder) layout(rv reflect.Value, l *layout, prefix string) {
	for _, lf := range l.leaves {
		if lf.whenKey != "" && !strings.EqualFold(d.raw(lf.whenKey, d.ks.spec(lf.whenKey).Default), lf.whenIs) {
			continue
		}
		key := prefix + lf.key
		fv, text := rv.FieldByIndex(lf.index), d.raw(key, lf.def)
		switch {
		case lf.optional && text == "":
			fv.Set(reflect.Zero(fv.Type()))
		case lf.optional:
			p := reflect.New(fv.Type().Elem())
			d.leaf(p.Elem(), lf, key, text)
			fv.Set(p)
		default:
			d.leaf(fv, lf, key, text)
		}
	}
	for _, g := range l.groups {
		m := reflect.MakeMap(reflect.MapOf(reflect.TypeOf(""), g.elem))
		for _, name := range d.names(prefix + g.prefix) {
			e := reflect.New(g.elem).Elem()
			d.layout(e, g.layout, prefix+g.prefix+name+".")
			m.SetMapIndex(reflect.ValueOf(name), e)
		}
		rv.FieldByIndex(g.index).Set(m)
	}
}

// names are the names given to the group at prefix, sorted.
func (d *decoder) names(prefix string) []string {
	seen := map[string]bool{}
	for _, k := range d.v.AllKeys() {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			if name, _, ok := strings.Cut(rest, "."); ok && name != "" {
				seen[name] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// leaf sets field fv from s, the text of key, by the leaf's rule.
func (d *decoder) leaf(fv reflect.Value, lf leaf, key, s string) {
	switch lf.rule {
	case ruleString:
		fv.SetString(s)
	case ruleBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			d.fail(key, "not true or false: %q", s)
		}
		fv.SetBool(b)
	case ruleInt, ruleIntOrAuto, ruleIntOrOff, ruleMegabytes:
		d.number(fv, lf, key, s)
	case ruleSeconds, ruleSecondsOrOff:
		fv.SetInt(int64(d.seconds(lf.rule == ruleSecondsOrOff, key, s)))
	case ruleDuration:
		t, err := time.ParseDuration(s)
		switch {
		case err != nil:
			d.fail(key, "not a duration such as 30s, 5m or 1h30m: %q", s)
		case t < 0:
			d.fail(key, "must be 0 or more, got %q", s)
		}
		fv.SetInt(int64(t))
	case ruleList:
		fv.Set(reflect.ValueOf(list(s)))
	case ruleCommand:
		words, err := pool.SplitCommand(s)
		if err != nil {
			d.fail(key, "%v", err)
		}
		fv.Set(reflect.ValueOf(words))
	case ruleCIDRs:
		fv.Set(reflect.ValueOf(d.cidrs(key, s)))
	}
}

// number sets a whole-number field.
func (d *decoder) number(fv reflect.Value, lf leaf, key, s string) {
	var n int64
	switch {
	case lf.rule == ruleIntOrAuto && strings.EqualFold(s, "auto"):
		n = autoValue
	case lf.rule == ruleIntOrOff && s == "":
		n = -1
	default:
		var err error
		if n, err = strconv.ParseInt(s, 10, 64); err != nil {
			d.fail(key, "not a whole number: %q", s)
			return
		}
		if lf.min != nil && n < *lf.min {
			d.fail(key, "must be at least %d, got %d", *lf.min, n)
		}
		if lf.max != nil && n > *lf.max {
			d.fail(key, "must be at most %d, got %d", *lf.max, n)
		}
		if lf.rule == ruleMegabytes {
			n <<= 20
		}
	}
	if fv.CanInt() {
		fv.SetInt(n)
	} else {
		fv.SetUint(uint64(max(n, 0)))
	}
}

// seconds reads a number of seconds; orOff lets empty and 0 mean off.
func (d *decoder) seconds(orOff bool, key, s string) time.Duration {
	if orOff && s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		d.fail(key, "not a number of seconds: %q", s)
		return 0
	}
	switch {
	case orOff && f < 0:
		d.fail(key, "must be 0 (off) or more seconds, got %q", s)
	case !orOff && f <= 0:
		d.fail(key, "must be more than 0 seconds, got %q", s)
	}
	return time.Duration(f * float64(time.Second))
}

// cidrs reads IPs and CIDRs; an IP is a network of one address.
func (d *decoder) cidrs(key, s string) []*net.IPNet {
	var nets []*net.IPNet
	for _, p := range list(s) {
		if !strings.Contains(p, "/") {
			if strings.Contains(p, ":") {
				p += "/128"
			} else {
				p += "/32"
			}
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			d.fail(key, "not an IP or CIDR: %q", p)
			continue
		}
		nets = append(nets, n)
	}
	return nets
}

// list splits a comma-separated value, dropping blanks.
func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
