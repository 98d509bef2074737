package limit

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/theaspect/aggregator"
)

// failureSet is what counts as a breaker failure: fetch causes, status
// classes (5 for "5xx") and statuses.
type failureSet struct {
	causes   map[string]bool
	classes  [6]bool
	statuses map[int]bool
}

// knownCauses are the causes a call that was sent can fail with.
var knownCauses = map[string]bool{"refused": true, "dns": true, "tls": true, "timeout": true, "too_large": true,
	"redirects": true, "blocked_address": true, "network": true}

func parseFailures(list []string) (failureSet, error) {
	f := failureSet{causes: map[string]bool{}, statuses: map[int]bool{}}
	for _, item := range list {
		item = strings.ToLower(strings.TrimSpace(item))
		switch {
		case item == "":
		case len(item) == 3 && item[1:] == "xx" && item[0] >= '1' && item[0] <= '5':
			f.classes[item[0]-'0'] = true
		case knownCauses[item]:
			f.causes[item] = true
		default:
			n, err := strconv.Atoi(item)
			if err != nil || n < 100 || n > 599 {
				return f, fmt.Errorf("%q is not a cause (refused, dns, tls, timeout, too_large, redirects, blocked_address, network), a class (5xx) or a status (503)", item)
			}
			f.statuses[n] = true
		}
	}
	return f, nil
}

// outcome is what a finished call tells the breaker. NotFailures on the
// request take a status out of the failures for that call.
func (f failureSet) outcome(req *aggregator.FetchRequest, resp *aggregator.FetchResponse, err error) (Outcome, string) {
	if err != nil {
		var fe *aggregator.FetchError
		if errors.As(err, &fe) && f.causes[string(fe.Cause)] {
			return Failure, string(fe.Cause)
		}
		return Neutral, ""
	}
	s := resp.Status
	if (f.statuses[s] || (s/100 < len(f.classes) && f.classes[s/100])) && !slices.Contains(req.NotFailures, s) {
		return Failure, "status " + strconv.Itoa(s)
	}
	return Success, ""
}
