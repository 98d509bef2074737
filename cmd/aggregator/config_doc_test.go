package main

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the table of keys in docs/configuration.md from the fields' tags")

// The table of keys in docs/configuration.md lies between these lines.
const (
	tableStart = "<!-- keys: made from the fields' tags by `go test ./cmd/aggregator -run TestConfigurationDoc -update`; edit the tags, not the table -->"
	tableEnd   = "<!-- end of keys -->"
)

// rootSection is the heading of the keys Config itself declares.
const rootSection = "The process: listeners, logs, mode (`cmd/aggregator`'s `Config`)"

// TestConfigurationDoc: docs/configuration.md lists every key, as the
// fields' tags declare them (key, default, doc), by the struct that reads
// them. The table is made from the tags, so that a new key is documented
// by its doc tag alone and no row can say other than the code; -update
// rewrites it.
func TestConfigurationDoc(t *testing.T) {
	const path = "docs/configuration.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	start, end := strings.Index(doc, tableStart), strings.Index(doc, tableEnd)
	if start < 0 || end < start {
		t.Fatalf("%s has no table of keys between %q and %q", path, tableStart, tableEnd)
	}
	want := tableStart + "\n\n" + keysTable(configKeys) + "\n" + tableEnd
	if doc[start:end+len(tableEnd)] == want {
		return
	}
	if !*update {
		t.Fatalf("%s: the table of keys differs from the fields' tags; run go test ./cmd/aggregator -run TestConfigurationDoc -update", path)
	}
	if err := os.WriteFile(path, []byte(doc[:start]+want+doc[end+len(tableEnd):]), 0o644); err != nil {
		t.Fatal(err)
	}
}

// keysTable is ks as markdown: a table per section, in declaration order.
func keysTable(ks *keySet) string {
	var b strings.Builder
	section := "\x00"
	for _, s := range ks.specs {
		if s.Section != section {
			section = s.Section
			if b.Len() > 0 {
				b.WriteString("\n")
			}
			b.WriteString("### " + codeSpans(heading(section)) + "\n\n| key | default | meaning |\n|---|---|---|\n")
		}
		def := "empty"
		if s.Default != "" {
			def = "`" + s.Default + "`"
		}
		b.WriteString("| `" + s.Key + "` | " + def + " | " + strings.ReplaceAll(codeSpans(s.Doc), "|", `\|`) + " |\n")
	}
	return b.String()
}

// heading is the heading of a section's table.
func heading(section string) string {
	if section == "" {
		return rootSection
	}
	return section
}

// codeSpans turns the doc tags' 'quoted' words into markdown code:
// backquotes cannot stand in a struct tag. A quote opens a span at the
// start or after a blank, '(', '[' or '/', and closes it before a
// character that is not a letter or digit, so that apostrophes
// (operators', Go's) stay.
func codeSpans(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' && (i == 0 || strings.IndexByte(" ([/", s[i-1]) >= 0) && i+1 < len(s) && s[i+1] != ' ' {
			if j := closingQuote(s, i+1); j > i+1 {
				b.WriteString("`" + s[i+1:j] + "`")
				i = j
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// closingQuote is the index of the quote that closes a span opened
// before from, or -1.
func closingQuote(s string, from int) int {
	for j := from; j < len(s); j++ {
		if s[j] != '\'' {
			continue
		}
		if j+1 == len(s) {
			return j
		}
		if c := s[j+1]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return j
		}
	}
	return -1
}

func TestCodeSpans(t *testing.T) {
	for in, want := range map[string]string{
		"'0' = Go's own pacing":                            "`0` = Go's own pacing",
		"the operators' listener ('/metrics', '/workers')": "the operators' listener (`/metrics`, `/workers`)",
		"a job's backtrace ('slow job'); '0' = off":        "a job's backtrace (`slow job`); `0` = off",
		"nginx's upstream 'keepalive_timeout' below it":    "nginx's upstream `keepalive_timeout` below it",
		"an unclosed 'quote":                               "an unclosed 'quote",
	} {
		if got := codeSpans(in); got != want {
			t.Errorf("codeSpans(%q) = %q, want %q", in, got, want)
		}
	}
}
