package main

import (
	"cmp"
	"fmt"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// The configuration is declared by the fields that hold it. A key is one
// field, tagged with
//
//	key:"aggregator.pool.executor"   the key
//	default:"20"                     its default, as a properties file writes it
//	doc:"PHP processes at once"      its meaning: its row in docs/configuration.md
//
// and, where the field's Go type alone does not say how its value reads,
//
//	as:"..."        seconds-or-off, duration, command, int-or-auto, int-or-off, megabytes (see rule)
//	min:"1"         the least whole number allowed; max:"65535" the most
//	when:"aggregator.pool.mode=exec"  read only while that key has that value
//
// A key several packages read (aggregator.pool.executor is the worker
// pool's size and the exec runner's) is tagged on each of their fields;
// exactly one of them carries its default and doc.
//
// A pointer field (*int, *bool, *time.Duration...) is optional: nil while
// its key is empty, so that code can tell unset from a value (a named
// group's entry that takes the default's). A struct field without a key
// is a section: its fields are keys too, and its doc is its heading in
// docs/configuration.md; tagged key:"PREFIX." its keys start with PREFIX
// (breaker.: breaker.failures, breaker.open-time). A map[string]T field
// tagged key:"PREFIX.*" is a named group: every PREFIX.NAME.KEY given in the
// file or with -D makes an entry NAME of T, whose fields are tagged with
// keys relative to PREFIX.NAME. (KEY; it may hold dots), each with its own
// default. Docs name them PREFIX.NAME.KEY. Other fields (a logger, the
// environment) are not configuration: the code that builds the struct
// fills them.

// rule says how a key's text becomes its field's value.
type rule int

const (
	ruleString       rule = iota // trimmed text (any string type)
	ruleBool                     // true or false (strconv.ParseBool)
	ruleInt                      // a whole number, within min and max
	ruleIntOrAuto                // as:"int-or-auto": ruleInt, or "auto" for autoValue (resolved later)
	ruleIntOrOff                 // as:"int-or-off": ruleInt, or empty for -1 (off)
	ruleMegabytes                // as:"megabytes": a whole number of MB; the field holds bytes
	ruleSeconds                  // time.Duration: seconds, decimals allowed, more than 0
	ruleSecondsOrOff             // as:"seconds-or-off": seconds; empty or 0 for 0 (off)
	ruleDuration                 // as:"duration": Go's syntax (30s, 5m, 1h30m), 0 or more
	ruleList                     // []string: comma-separated, blanks trimmed, empties dropped
	ruleCommand                  // as:"command": []string of words, split without a shell (pool.SplitCommand)
	ruleCIDRs                    // []*net.IPNet: comma-separated IPs (one address) or CIDRs
)

// autoValue stands for "auto" until the value it depends on is known.
const autoValue = -1

// groupName stands for a named group's name in the keys docs and
// suggestions show: aggregator.supplier.NAME.hosts.
const groupName = "NAME"

var (
	durationType = reflect.TypeOf(time.Duration(0))
	stringsType  = reflect.TypeOf([]string(nil))
	netsType     = reflect.TypeOf([]*net.IPNet(nil))
)

// leaf is one field that holds a key.
type leaf struct {
	index    []int  // the field, from the struct being decoded
	key      string // relative to the struct's prefix
	def      string
	rule     rule
	min, max *int64
	whenKey  string // read only when whenKey's value is whenIs (case-insensitive)
	whenIs   string
	optional bool // a pointer field: nil while the key is empty (unset)
}

// group is a map[string]T field: a named group of keys.
type group struct {
	index  []int
	prefix string // "aggregator.supplier.", relative to the struct's prefix
	elem   reflect.Type
	layout *layout // T's keys, relative to PREFIX.NAME.
}

// layout is the keys of one struct type, in declaration order.
type layout struct {
	leaves []leaf
	groups []group
}

// keySpec is one configuration key as docs and lookups see it.
type keySpec struct {
	Key     string // a group member's has NAME for the name
	Default string
	Doc     string
	Section string // the doc of the section that declares it
}

// grouped says whether the key is a named group's (it has NAME for the name).
func (s keySpec) grouped() bool { return strings.Contains(s.Key, "."+groupName+".") }

// keySet is every key of one configuration struct.
type keySet struct {
	root   reflect.Type
	layout *layout
	specs  []keySpec      // declaration order, each key once
	index  map[string]int // key -> its spec
	groups []string       // each group's prefix, "aggregator.supplier."
}

// keysOf reads the keys of the struct root points to from its tags.
func keysOf(root any) (*keySet, error) {
	t := reflect.TypeOf(root)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("keysOf wants a pointer to a struct, got %v", t)
	}
	ks := &keySet{root: t.Elem(), index: map[string]int{}}
	var err error
	if ks.layout, err = ks.walk(t.Elem(), place{}); err != nil {
		return nil, err
	}
	for _, s := range ks.specs {
		if s.Doc == "" {
			return nil, fmt.Errorf("key %s: no field gives it a doc tag", s.Key)
		}
	}
	if err := ks.checkWhen(ks.layout); err != nil {
		return nil, err
	}
	return ks, nil
}

// checkWhen checks that every when:"KEY=value" names a key of the struct
// (outside any named group).
func (ks *keySet) checkWhen(l *layout) error {
	for _, lf := range l.leaves {
		if s := ks.spec(lf.whenKey); lf.whenKey != "" && (s.Key == "" || s.grouped()) {
			return fmt.Errorf("key %s: when:%q names no key", lf.key, lf.whenKey+"="+lf.whenIs)
		}
	}
	for _, g := range l.groups {
		if err := ks.checkWhen(g.layout); err != nil {
			return err
		}
	}
	return nil
}

// mustKeys is keysOf for the program's own configuration: a malformed tag
// is a bug that every run and every test meets at once.
func mustKeys(root any) *keySet {
	ks, err := keysOf(root)
	if err != nil {
		panic("configuration tags: " + err.Error())
	}
	return ks
}

// place is where walk is: the field index from the decoded struct, the
// keys' prefix relative to it and as the docs name them (with NAME in a
// named group), the section's doc.
type place struct {
	index   []int
	rel     string
	full    string
	section string
	inGroup bool
}

// in is the place of field i of the struct at p, whose keys add prefix.
func (p place) in(i int, prefix, doc string) place {
	p.index = append(append([]int(nil), p.index...), i)
	p.rel, p.full, p.section = p.rel+prefix, p.full+prefix, cmp.Or(doc, p.section)
	return p
}

// walk lays out struct type t at p.
func (ks *keySet) walk(t reflect.Type, p place) (*layout, error) {
	l := &layout{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key, tagged := f.Tag.Lookup("key")
		// An embedded struct's exported fields can be set whatever its
		// type's name; other unexported fields cannot.
		reachable := f.IsExported() || f.Anonymous && f.Type.Kind() == reflect.Struct
		switch {
		case !reachable && tagged:
			return nil, fmt.Errorf("%s: a key's field must be exported", f.Name)
		case !reachable:
		case f.Type.Kind() == reflect.Struct && (!tagged || strings.HasSuffix(key, ".")):
			// A section; tagged key:"PREFIX." its keys start with PREFIX.
			sub, err := ks.walk(f.Type, p.in(i, key, f.Tag.Get("doc")))
			if err != nil {
				return nil, err
			}
			l.leaves = append(l.leaves, sub.leaves...)
			l.groups = append(l.groups, sub.groups...)
		case !tagged:
			// not configuration
		case f.Type.Kind() == reflect.Map:
			g, err := ks.group(f, p.in(i, "", f.Tag.Get("doc")), key)
			if err != nil {
				return nil, err
			}
			l.groups = append(l.groups, g)
		default:
			at := p.in(i, "", "")
			lf, err := newLeaf(f, at.index, p.rel+key)
			if err != nil {
				return nil, err
			}
			if err := ks.add(keySpec{Key: p.full + key, Default: lf.def, Doc: f.Tag.Get("doc"), Section: p.section}); err != nil {
				return nil, err
			}
			l.leaves = append(l.leaves, lf)
		}
	}
	return l, nil
}

// group lays out the named group of field f, tagged key:"PREFIX.*", at p.
func (ks *keySet) group(f reflect.StructField, p place, key string) (group, error) {
	if p.inGroup || f.Type.Key().Kind() != reflect.String || f.Type.Elem().Kind() != reflect.Struct || !strings.HasSuffix(key, ".*") {
		return group{}, fmt.Errorf("%s: a named group is a map[string]struct field tagged key:\"PREFIX.*\", not nested in another", f.Name)
	}
	prefix := strings.TrimSuffix(key, "*")
	g := group{index: p.index, prefix: p.rel + prefix, elem: f.Type.Elem()}
	ks.groups = append(ks.groups, p.full+prefix)
	var err error
	g.layout, err = ks.walk(g.elem, place{full: p.full + prefix + groupName + ".", section: p.section, inGroup: true})
	return g, err
}

// add records a key's spec; a key declared again (read by several
// packages) takes its default and doc from the one declaration that has a doc.
func (ks *keySet) add(s keySpec) error {
	i, seen := ks.index[s.Key]
	if !seen {
		ks.index[s.Key] = len(ks.specs)
		ks.specs = append(ks.specs, s)
		return nil
	}
	old := &ks.specs[i]
	switch {
	case s.Doc != "" && old.Doc != "":
		return fmt.Errorf("key %s: two fields give it a doc; tag the others with its key alone", s.Key)
	case s.Doc == "" && s.Default != "":
		return fmt.Errorf("key %s: a default without a doc; the field with the doc gives the default", s.Key)
	case s.Doc != "":
		s.Key = old.Key
		*old = s
	}
	return nil
}

// newLeaf reads the tags of field f, which holds key.
func newLeaf(f reflect.StructField, index []int, key string) (leaf, error) {
	lf := leaf{index: index, key: key, def: f.Tag.Get("default")}
	bad := func(format string, args ...any) (leaf, error) {
		return lf, fmt.Errorf("%s (key %s): %s", f.Name, key, fmt.Sprintf(format, args...))
	}
	t := f.Type
	if t.Kind() == reflect.Pointer {
		lf.optional, t = true, t.Elem()
	}
	var err error
	if lf.rule, err = ruleOf(t, f.Tag.Get("as")); err != nil {
		return bad("%v", err)
	}
	integer := t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64
	for name, p := range map[string]**int64{"min": &lf.min, "max": &lf.max} {
		s, ok := f.Tag.Lookup(name)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || !integer {
			return bad("%s:%q: a whole number, on a number field", name, s)
		}
		*p = &n
	}
	if w, ok := f.Tag.Lookup("when"); ok {
		k, v, found := strings.Cut(w, "=")
		if !found || k == "" {
			return bad("when:%q: want when:\"other.key=value\"", w)
		}
		lf.whenKey, lf.whenIs = k, v
	}
	return lf, nil
}

// ruleOf is the rule that reads a field of type t tagged as:"as" ("" when not).
func ruleOf(t reflect.Type, as string) (rule, error) {
	isInt := t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64
	switch {
	case t == durationType && as == "":
		return ruleSeconds, nil
	case t == durationType && as == "seconds-or-off":
		return ruleSecondsOrOff, nil
	case t == durationType && as == "duration":
		return ruleDuration, nil
	case t == durationType:
		return 0, fmt.Errorf("as:%q: a duration reads as seconds, or as:\"seconds-or-off\" or as:\"duration\"", as)
	case isInt && as == "":
		return ruleInt, nil
	case isInt && as == "megabytes":
		return ruleMegabytes, nil
	case isInt && (as == "int-or-auto" || as == "int-or-off") && t.Kind() >= reflect.Uint:
		return 0, fmt.Errorf("as:%q needs a signed field: it stores -1", as)
	case isInt && as == "int-or-auto":
		return ruleIntOrAuto, nil
	case isInt && as == "int-or-off":
		return ruleIntOrOff, nil
	case isInt:
		return 0, fmt.Errorf("as:%q: a number reads as a whole number, int-or-auto, int-or-off or megabytes", as)
	case as != "" && as != "command" || as == "command" && t != stringsType:
		return 0, fmt.Errorf("as:%q does not apply to a %v", as, t)
	case t.Kind() == reflect.String:
		return ruleString, nil
	case t.Kind() == reflect.Bool:
		return ruleBool, nil
	case t == stringsType && as == "command":
		return ruleCommand, nil
	case t == stringsType:
		return ruleList, nil
	case t == netsType:
		return ruleCIDRs, nil
	}
	return 0, fmt.Errorf("no rule reads a %v", t)
}

// known says whether key (lower-cased, as every key is read) is a
// configuration key: one of the struct's, or PREFIX.NAME.KEY of a named
// group (NAME any word without a dot).
func (ks *keySet) known(key string) bool {
	if _, ok := ks.index[key]; ok {
		return true
	}
	for _, p := range ks.groups {
		rest, ok := strings.CutPrefix(key, p)
		if !ok {
			continue
		}
		if name, member, ok := strings.Cut(rest, "."); ok && name != "" {
			if _, ok := ks.index[p+groupName+"."+member]; ok {
				return true
			}
		}
	}
	return false
}

// candidates are the keys a mistyped key may have meant, sorted: every
// key, with a group member's NAME replaced by the name key seems to give.
func (ks *keySet) candidates(key string) []string {
	words := strings.Split(key, ".")
	var out []string
	for _, s := range ks.specs {
		at := strings.Index(s.Key, "."+groupName+".")
		if at < 0 {
			out = append(out, s.Key)
			continue
		}
		// The name is the word where NAME stands, counted from the
		// start (a typo in the member) or from the end (in the prefix).
		before := strings.Count(s.Key[:at], ".") + 1
		after := strings.Count(s.Key[at+len(groupName)+2:], ".") + 1
		for _, i := range []int{before, len(words) - after - 1} {
			if i >= 0 && i < len(words) && words[i] != "" {
				out = append(out, s.Key[:at+1]+words[i]+s.Key[at+1+len(groupName):])
			}
		}
	}
	sort.Strings(out)
	return out
}

// spec is key's spec; the zero spec when there is none.
func (ks *keySet) spec(key string) keySpec {
	if i, ok := ks.index[key]; ok {
		return ks.specs[i]
	}
	return keySpec{}
}

// defaults gives viper every key's default (a named group's come with
// its names, when decoding).
func (ks *keySet) defaults(v *viper.Viper) {
	for _, s := range ks.specs {
		if !s.grouped() {
			v.SetDefault(s.Key, s.Default)
		}
	}
}
