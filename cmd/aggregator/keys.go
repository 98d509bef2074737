package main

import (
	"fmt"
	"strings"
)

// unknownKey says that key is not a configuration key and, when one known
// key is close to it, names that one: a mistyped key is the usual cause.
// where is "in FILE" or "given with -D".
func unknownKey(key, where string) string {
	return fmt.Sprintf("unknown key %q %s%s", key, where, didYouMean(key))
}

// didYouMean is "; did you mean KEY?" naming the key that key was most
// likely meant to be, or a pointer to the list of keys when none is close.
func didYouMean(key string) string {
	if s := suggestKey(key); s != "" {
		return "; did you mean " + s + "?"
	}
	return " (docs/configuration.md lists every key)"
}

// suggestKey is the known key key was most likely meant to be: the one key
// that ends with it (a prefix left out, "worker.handlers"), or else the
// nearest by edit distance when few enough letters differ to be a typo.
// A named group's keys are tried with the name key seems to give
// (aggregator.supplier.acme.hots: aggregator.supplier.acme.hosts). "" when none.
func suggestKey(key string) string { return configKeys.suggest(key) }

// suggest is suggestKey among the keys of ks.
func (ks *keySet) suggest(key string) string {
	known := ks.candidates(key) // sorted: a tie goes to the same key every run
	var ends []string
	for _, k := range known {
		if strings.HasSuffix(k, "."+key) {
			ends = append(ends, k)
		}
	}
	if len(ends) == 1 {
		return ends[0]
	}
	best, bestDist := "", maxTypo(key)+1
	for _, k := range known {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// maxTypo is how many edits still look like a typo of a key this long:
// two for short keys, one more per ten letters.
func maxTypo(key string) int { return 2 + len(key)/10 }

// editDistance is the Levenshtein distance of a and b (bytes: keys are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
