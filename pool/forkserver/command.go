// Package forkserver starts exec-mode calls of `php [flags] script.php`
// as forks of a warm PHP parent instead of a new php each: the parent is
// PHP started with the command's flags and its extensions loaded, and
// nothing of the scripts; each call is one child of it, with the call's
// stdin, stdout, stderr and fds 3… as its own, its own process group, the
// call's environment and working directory, and the script included at
// global scope as `php script.php` runs it (src/ForkServer.php is the PHP
// side; docs/fork-server.md says what is the same and what is not).
//
// A Server keeps one parent per PHP program and flags. Start is the whole
// API of one call; Reload replaces the parents, letting calls in flight
// finish on the old ones; Close kills everything. A command that is not
// `php [flags] script.php` gives ErrNotEligible, a PHP that cannot fork
// (no ext-ffi or ext-pcntl) ErrUnavailable: the caller then runs the
// command the old way.
package forkserver

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// ErrNotEligible is why a command is not run through a fork server: it is
// not `php [flags] script.php args…`.
var ErrNotEligible = errors.New("not a php [flags] script.php command")

// Command is an exec command a fork server can run.
type Command struct {
	PHP    string   // the program as configured: php, php8.2, /usr/bin/php
	Flags  []string // PHP's own options before the script, as given
	Script string   // the script as given (relative to the call's directory, or absolute)
	Args   []string // the script's arguments
}

// phpProgram is the base name of a PHP CLI binary (not php-cgi, phpdbg...).
var phpProgram = regexp.MustCompile(`^php[0-9.]*$`)

// PHP's CLI options that only configure how PHP starts (so a parent started
// with them is what `php` with them would be), by whether they take a value.
var (
	startFlagsWithValue = map[string]bool{"-d": true, "-c": true, "-z": true,
		"--define": true, "--php-ini": true, "--zend-extension": true}
	startFlags = map[string]bool{"-n": true, "-e": true, "-q": true, "-H": true,
		"--no-php-ini": true, "--profile-info": true, "--no-header": true, "--hide-args": true}
)

// Parse reads `php [flags] script.php args…`: the program is php (or
// php8.2, or a path to one), the flags are the ones that only configure
// PHP (-d k=v, -n, -c FILE, -z FILE, -e, -q, -H and their long forms,
// -dk=v and -cFILE too), an optional "--", then one file ending in .php,
// then its arguments. Anything else (-r, -f, -B, -a, …) is ErrNotEligible.
func Parse(words []string) (Command, error) {
	if len(words) == 0 || !phpProgram.MatchString(filepath.Base(words[0])) {
		return Command{}, fmt.Errorf("%w: the program is not php", ErrNotEligible)
	}
	c := Command{PHP: words[0]}
	i := 1
flags:
	for ; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "--":
			i++
			break flags
		case startFlagsWithValue[w]:
			if i+1 == len(words) {
				return Command{}, fmt.Errorf("%w: %s has no value", ErrNotEligible, w)
			}
			c.Flags = append(c.Flags, w, words[i+1])
			i++
		case startFlags[w] || attachedValue(w):
			c.Flags = append(c.Flags, w)
		case strings.HasPrefix(w, "-"):
			return Command{}, fmt.Errorf("%w: PHP option %s", ErrNotEligible, w)
		default:
			break flags
		}
	}
	if i >= len(words) || !strings.HasSuffix(words[i], ".php") {
		return Command{}, fmt.Errorf("%w: no .php script after the options", ErrNotEligible)
	}
	c.Script, c.Args = words[i], words[i+1:]
	return c, nil
}

// attachedValue reports whether w is -dk=v, -cFILE or -zFILE.
func attachedValue(w string) bool {
	return len(w) > 2 && w[0] == '-' && (w[1] == 'd' || w[1] == 'c' || w[1] == 'z')
}

// key names the parent a command's calls share: the same program and flags.
func (c Command) key() string { return c.PHP + "\x00" + strings.Join(c.Flags, "\x00") }

// String is the parent's command as a log line shows it.
func (c Command) String() string { return strings.Join(append([]string{c.PHP}, c.Flags...), " ") }

// entry is the -r code the parent runs (src/ForkServer.php): serve()
// returns only in a child, which then runs the auto_prepend_file, the
// script and the auto_append_file at global scope, as php script.php
// does. One line, so a stack trace names it "Command line code(1)".
func entry(runtime string) string {
	const fs = `\Aggregator\ForkServer::`
	return "require " + phpQuote(runtime) + "; " + fs + "serve(); " +
		"if (" + fs + "prepend() !== '') require " + fs + "prepend(); " +
		"require " + fs + "script(); " +
		"if (" + fs + "append() !== '') require " + fs + "append();"
}

// phpQuote is s as a single-quoted PHP string.
func phpQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
