package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// deployHost is a host for aggregatorctl in a temp dir: its install root,
// configuration, logs, units and nginx site, the fake systemctl's state,
// and two instances' ports.
type deployHost struct {
	root, prefix, etc, logs, units, nginx, state string
	ports                                        [2]int
	env                                          []string
}

func newDeployHost(t *testing.T) *deployHost {
	t.Helper()
	root := t.TempDir()
	h := &deployHost{root: root, prefix: filepath.Join(root, "opt"), etc: filepath.Join(root, "etc"),
		logs: filepath.Join(root, "log"), units: filepath.Join(root, "systemd"), nginx: filepath.Join(root, "nginx"),
		state: filepath.Join(root, "systemd-state")}
	h.ports[0] = freePort(t)
	for h.ports[1] = freePort(t); h.ports[1] == h.ports[0]; h.ports[1] = freePort(t) {
	}
	for _, d := range []string{h.etc, filepath.Join(h.nginx, "sites-available"), filepath.Join(h.nginx, "sites-enabled")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	props := "server.address=127.0.0.1\naggregator.pool.executor=10\naggregator.timeout.script=8\naggregator.timeout.session=10\n" +
		"aggregator.worker.handlers=deploy_handlers.php\naggregator.log.console=false\n"
	if err := os.WriteFile(filepath.Join(h.etc, "application.properties"), []byte(props), 0o640); err != nil {
		t.Fatal(err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	h.env = append(os.Environ(),
		"AGG_PREFIX="+h.prefix, "AGG_ETC="+h.etc, "AGG_LOG="+h.logs, "AGG_SYSTEMD_DIR="+h.units,
		"AGG_NGINX_DIR="+h.nginx, "AGG_NGINX=true", "AGG_BIN_DIR=", "AGG_PACKAGES=0", "AGG_ALLOW_NONROOT=1",
		"AGG_USER="+me.Username, "AGG_SYSTEMCTL="+filepath.Join(repoRoot, "deploy", "test", "fake-systemctl"),
		"FAKE_SYSTEMD="+h.state, "AGG_HEALTH_TIMEOUT=10", "AGG_HEALTH_INTERVAL=0.2",
		fmt.Sprintf("AGG_INSTANCES=%d %d", h.ports[0], h.ports[1]))
	t.Cleanup(h.stopAll)
	return h
}

// ctl runs aggregatorctl on the host and returns what it said.
func (h *deployHost) ctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "deploy", "aggregatorctl"), args...)
	cmd.Env = h.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// release makes a release directory named name (its RELEASE file says so):
// the test's binary and the repository's PHP, linked; broken: its handlers
// file does not parse, so its workers cannot start.
func (h *deployHost) release(t *testing.T, name string, broken bool) string {
	t.Helper()
	dir := filepath.Join(h.root, "src", name)
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{"bin/aggregator": binary, "deploy_handlers.php": filepath.Join(repoRoot, "integration", "testdata", "deploy_handlers.php")}
	for _, f := range []string{"worker.php", "src", "script", "composer.json"} {
		links[f] = filepath.Join(repoRoot, f)
	}
	if broken {
		delete(links, "deploy_handlers.php")
		if err := os.WriteFile(filepath.Join(dir, "deploy_handlers.php"), []byte("<?php return [ syntax error"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "RELEASE"), []byte(name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (h *deployHost) unit(port int) string { return fmt.Sprintf("aggregator@%d", port) }

// pid is the main pid of the instance on port (0 when none).
func (h *deployHost) pid(port int) int {
	b, err := os.ReadFile(filepath.Join(h.state, h.unit(port)+".pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// drainedAt is when the instance on port began to drain (its log line, the
// first since the host was installed): a session it took began before.
func (h *deployHost) drainedAt(t *testing.T, port int) time.Time {
	t.Helper()
	for _, line := range strings.Split(readFile(t, filepath.Join(h.logs, fmt.Sprintf("aggregator-%d.log", port))), "\n") {
		ts, rest, _ := strings.Cut(line, "\t")
		if !strings.Contains(rest, "draining: new sessions are refused") {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", ts)
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	t.Fatalf("%s never drained", h.unit(port))
	return time.Time{}
}

// upstream is the upstream's server lines of the nginx site install wrote.
func (h *deployHost) upstream(t *testing.T) []string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^\s*(server 127\.0\.0\.1:\d+ .*;)$`)
	var lines []string
	for _, m := range re.FindAllStringSubmatch(readFile(t, filepath.Join(h.nginx, "sites-available", "aggregator.conf")), -1) {
		lines = append(lines, m[1])
	}
	return lines
}

// stopAll stops both instances, whatever the test did.
func (h *deployHost) stopAll() {
	for _, p := range h.ports {
		if pid := h.pid(p); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
}

// underPrefix lists the live processes whose working directory is a
// release of the host: the servers and their PHP workers.
func (h *deployHost) underPrefix() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	releases, _ := filepath.EvalSymlinks(filepath.Join(h.prefix, "releases"))
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil || releases == "" || !strings.HasPrefix(cwd, releases) || strings.Contains(string(stat), ") Z ") {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	return out
}
