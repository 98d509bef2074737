#!/usr/bin/env bash
# Tests of deploy/aggregatorctl: deploy, rollback, install and the systemctl
# wrappers, in a temp directory with a fake systemctl — no root, no systemd.
#
# The fake systemctl does what systemd would on `restart`: it runs
# `bin/aggregator` from $AGG_PREFIX/current (the unit's WorkingDirectory). The
# fake releases' bin/aggregator is a bash script that, when the release is
# "good", writes `ok <version>` to $FAKE_STATE/health, and when "bad" writes
# nothing. The health check is AGG_HEALTH_CMD, a script that passes when that
# file says ok — so a deploy is healthy only if the restart really ran the new
# release's binary. The HTTP health check (curl and bash /dev/tcp) is tested
# against a closed port, and against a live server when python3 is present.
#
# Needs bash, coreutils, tar (and optionally curl, python3).
# Usage: bash deploy/test/aggregatorctl_test.sh     Last line: "N passed, N failed".

set -uo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
CTL=$HERE/../aggregatorctl
TMP=$(mktemp -d "${TMPDIR:-/tmp}/aggregatorctl-test.XXXXXX")
PY_PID=
cleanup() {
    if [[ -n $PY_PID ]]; then kill "$PY_PID" 2>/dev/null || true; fi
    rm -rf -- "$TMP"
}
trap cleanup EXIT

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); printf 'ok   - %s\n' "$1"; }
fail() {
    FAILED=$((FAILED + 1))
    printf 'FAIL - %s\n' "$1"
    if [[ -n ${2:-} && -f $2 ]]; then sed 's/^/       | /' -- "$2"; fi
}
# check DESC CMD...: pass when CMD succeeds; on failure show the last output.
check() {
    local desc=$1
    shift
    if "$@"; then pass "$desc"; else fail "$desc" "$OUT"; fi
}
skip() { printf 'skip - %s\n' "$1"; }
# verify_unit UNIT: systemd-analyze verify prints problems but may still exit
# 0 for some of them, so any output about the unit fails too.
verify_unit() {
    systemd-analyze verify "$1" >"$OUT" 2>&1 && ! grep -q "$(basename "$1")" "$OUT"
}

# --- fixtures ---------------------------------------------------------------

FAKEBIN=$TMP/fakebin
mkdir -p "$FAKEBIN"

cat >"$FAKEBIN/systemctl" <<'EOF'
#!/usr/bin/env bash
# Fake systemctl: logs its arguments; restart/start run the current release's
# binary in its directory, as the unit's WorkingDirectory/ExecStart would.
echo "$*" >>"$FAKE_STATE/systemctl.log"
# A real service must not inherit aggregatorctl's lock (fd 9).
if { true >&9; } 2>/dev/null; then echo "fd 9 leaked" >>"$FAKE_STATE/leaks"; fi
case $1 in
    start | restart)
        rm -f "$FAKE_STATE/health"
        cd "$AGG_PREFIX/current" || exit 1
        ./bin/aggregator >>"$FAKE_STATE/service.log" 2>&1 || true
        ;;
    stop) rm -f "$FAKE_STATE/health" ;;
    status) echo "fake status of $*" ;;
esac
exit 0
EOF

cat >"$FAKEBIN/health" <<'EOF'
#!/usr/bin/env bash
# Fake health check: healthy when the running fake service said so.
[[ $(cat "$FAKE_STATE/health" 2>/dev/null) == ok* ]]
EOF
chmod +x "$FAKEBIN/systemctl" "$FAKEBIN/health"

# make_release DIR VERSION good|bad: a fake release directory.
make_release() {
    local dir=$1 version=$2 kind=$3
    mkdir -p "$dir/bin" "$dir/src" "$dir/script"
    echo '<?php // fake worker' >"$dir/worker.php"
    echo '{}' >"$dir/composer.json"
    echo "$version" >"$dir/VERSION"
    if [[ $kind == good ]]; then
        cat >"$dir/bin/aggregator" <<'EOF'
#!/usr/bin/env bash
echo "ok $(cat VERSION)" >"$FAKE_STATE/health"
EOF
    else
        cat >"$dir/bin/aggregator" <<'EOF'
#!/usr/bin/env bash
echo "crashing" >&2
exit 1
EOF
    fi
    chmod +x "$dir/bin/aggregator"
}

# new_env NAME: a fresh prefix and state; exports what aggregatorctl and the
# fakes read.
new_env() {
    local base=$TMP/$1
    mkdir -p "$base/state" "$base/etc"
    export AGG_PREFIX=$base/opt FAKE_STATE=$base/state AGG_ETC=$base/etc AGG_LOG=$base/log
    export AGG_SYSTEMCTL=$FAKEBIN/systemctl AGG_HEALTH_CMD=$FAKEBIN/health
    export AGG_HEALTH_TIMEOUT=2 AGG_HEALTH_INTERVAL=0.2
    unset AGG_HEALTH_URL AGG_HTTP_CLIENT AGG_KEEP_RELEASES AGG_PORT AGG_HOST
    OUT=$base/out
}

# ctl ARGS...: run aggregatorctl, output to $OUT, status in $RC.
ctl() {
    "$CTL" "$@" >"$OUT" 2>&1
    RC=$?
}

current_version() { cat "$AGG_PREFIX/current/VERSION" 2>/dev/null; }
running_version() { cat "$FAKE_STATE/health" 2>/dev/null; }
count_restarts() { grep -c '^restart aggregator$' "$FAKE_STATE/systemctl.log" 2>/dev/null || true; }
out_has() { grep -q -- "$1" "$OUT"; }
is_eq() { [[ $1 == "$2" ]]; }
# rc_and_out STATUS PATTERN: the last ctl exited STATUS and printed PATTERN.
rc_and_out() { [[ $RC == "$1" ]] && grep -q -- "$2" "$OUT"; }
mode_is() { [[ $(stat -c %a -- "$1") == "$2" ]]; }
glob_exists() { compgen -G "$1" >/dev/null; }
no_glob() { ! compgen -G "$1" >/dev/null; }
dirs_exist() {
    local d
    for d in "$@"; do [[ -d $d ]] || return 1; done
}
# systemctl_log_has LINE...: each LINE is a whole line of the fake's log.
systemctl_log_has() {
    local l
    for l in "$@"; do grep -qx -- "$l" "$FAKE_STATE/systemctl.log" || return 1; done
}
last_systemctl_is() { [[ $RC == 0 && $(tail -1 "$FAKE_STATE/systemctl.log") == "$1" ]]; }

R=$TMP/releases
make_release "$R/v1" v1 good
make_release "$R/v2" v2 good
make_release "$R/v3" v3 bad
make_release "$R/v4" v4 good
make_release "$R/tar/aggregator-v2" v2 good
tar -C "$R/tar" -czf "$R/v2.tar.gz" aggregator-v2
make_release "$R/flat" v5 good
tar -C "$R/flat" -cf "$R/v5-flat.tar" .
mkdir -p "$R/empty/script"

# --- deploy: a good release becomes current -----------------------------------

new_env main
ctl deploy "$R/v1"
check "deploy v1 (directory) exits 0" is_eq "$RC" 0
check "current is v1" is_eq "$(current_version)" v1
check "current is a symlink into releases/" [ -L "$AGG_PREFIX/current" ]
check "the restarted service runs v1" is_eq "$(running_version)" "ok v1"
check "one restart" is_eq "$(count_restarts)" 1
check "no previous link after the first deploy" [ ! -e "$AGG_PREFIX/previous" ]
V1_DIR=$(readlink "$AGG_PREFIX/current")

ctl deploy "$R/v2.tar.gz"
check "deploy v2 (tarball with a top directory) exits 0" is_eq "$RC" 0
check "current is v2" is_eq "$(current_version)" v2
check "the restarted service runs v2" is_eq "$(running_version)" "ok v2"
check "previous points at v1" is_eq "$(readlink "$AGG_PREFIX/previous")" "$V1_DIR"
check "release binary is mode 755" mode_is "$AGG_PREFIX/current/bin/aggregator" 755
check "release files are mode 644" mode_is "$AGG_PREFIX/current/VERSION" 644
V2_DIR=$(readlink "$AGG_PREFIX/current")

# --- deploy: a bad release rolls back -------------------------------------------

before=$(count_restarts)
ctl deploy "$R/v3"
check "deploy of a bad release exits 1" is_eq "$RC" 1
check "its message says it rolled back" out_has "rolled back to $V2_DIR, which is running and healthy"
check "current is v2 again" is_eq "$(current_version)" v2
check "the service was restarted on v2" is_eq "$(running_version)" "ok v2"
check "two restarts (bad release, then rollback)" is_eq "$(count_restarts)" $((before + 2))
check "every restart is preceded by reset-failed (start limit of a crash loop)" \
    is_eq "$(grep -B1 -x 'restart aggregator' "$FAKE_STATE/systemctl.log" | grep -cx 'reset-failed aggregator')" "$(count_restarts)"
check "the bad release is kept as *.failed" glob_exists "$AGG_PREFIX/releases/*.failed"
check "previous still points at v1" is_eq "$(readlink "$AGG_PREFIX/previous")" "$V1_DIR"
check "no temp links left" no_glob "$AGG_PREFIX/.current.tmp.*"
check "no staging dirs left" no_glob "$AGG_PREFIX/releases/.incoming.*"

check "the lock descriptor is not passed to systemctl" [ ! -e "$FAKE_STATE/leaks" ]
if command -v flock >/dev/null 2>&1; then
    flock "$AGG_PREFIX/.aggregatorctl.lock" sleep 3 &
    locker=$!
    sleep 0.5
    ctl deploy "$R/v1"
    check "a deploy while another holds the lock is refused" rc_and_out 1 "another aggregatorctl"
    check "... and changes nothing" is_eq "$(current_version)" v2
    wait "$locker"
else
    skip "deploy lock: no flock"
fi

# --- deploy: invalid input ----------------------------------------------------------

ctl deploy "$R/empty"
check "a release without bin/aggregator is refused (exit 1)" is_eq "$RC" 1
check "... with a clear message" out_has "holds no bin/aggregator"
check "... current unchanged" is_eq "$(current_version)" v2
check "... no staging dir left" no_glob "$AGG_PREFIX/releases/.incoming.*"
ctl deploy "$R/does-not-exist"
check "a missing release path is refused (exit 1)" is_eq "$RC" 1
ctl deploy
check "deploy without an argument is a usage error (exit 2)" is_eq "$RC" 2

# --- the HTTP health check ------------------------------------------------------------

# Nothing listens on port 1: both HTTP clients must report unhealthy, so the
# deploy fails; the rollback then fails its check too, and says so.
for client in curl devtcp; do
    if [[ $client == curl ]] && ! command -v curl >/dev/null 2>&1; then
        skip "HTTP health via curl: no curl"
        continue
    fi
    env -u AGG_HEALTH_CMD AGG_HEALTH_URL=http://127.0.0.1:1/health AGG_HTTP_CLIENT=$client "$CTL" deploy "$R/v4" >"$OUT" 2>&1
    RC=$?
    check "health via $client, closed port: deploy exits 1" is_eq "$RC" 1
    check "health via $client, closed port: rolled back to v2" is_eq "$(current_version)" v2
    check "health via $client, closed port: message says rollback is not healthy either" out_has "NOT healthy either"
done

# Default URL from the properties file.
printf 'server.port = 18765\nserver.address=0.0.0.0\n' >"$AGG_ETC/application.properties"
env -u AGG_HEALTH_CMD "$CTL" deploy "$R/v4" >"$OUT" 2>&1
check "health URL defaults to server.port/server.address of the properties" out_has "for http://127.0.0.1:18765/health"
rm -f "$AGG_ETC/application.properties"

# A live HTTP server (python3 only serves files: the test's "aggregator").
if command -v python3 >/dev/null 2>&1; then
    mkdir -p "$TMP/www"
    echo '{"status":"UP"}' >"$TMP/www/health"
    # Below Linux's ephemeral range (32768 and up): a port there may be the
    # local end of some client's connection, and python3 then cannot bind it.
    port=$((20000 + RANDOM % 12000))
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
    (cd "$TMP/www" && exec python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
    PY_PID=$!
    for _ in $(seq 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        sleep 0.1
    done
    for client in curl devtcp; do
        if [[ $client == curl ]] && ! command -v curl >/dev/null 2>&1; then
            skip "HTTP health via curl, live server: no curl"
            continue
        fi
        env -u AGG_HEALTH_CMD AGG_HEALTH_URL=http://127.0.0.1:$port/health AGG_HTTP_CLIENT=$client "$CTL" deploy "$R/v4" >"$OUT" 2>&1
        RC=$?
        check "health via $client, live server answering 200: deploy exits 0" is_eq "$RC" 0
        check "health via $client, live server: current is v4" is_eq "$(current_version)" v4
        env -u AGG_HEALTH_CMD AGG_HEALTH_URL=http://127.0.0.1:$port/missing AGG_HTTP_CLIENT=$client "$CTL" deploy "$R/v2" >"$OUT" 2>&1
        RC=$?
        check "health via $client, live server answering 404: deploy exits 1" is_eq "$RC" 1
        check "health via $client, 404: still v4" is_eq "$(current_version)" v4
    done
    kill "$PY_PID" 2>/dev/null
    wait "$PY_PID" 2>/dev/null
    PY_PID=
else
    skip "HTTP health against a live server: no python3"
fi

# --- rollback command ----------------------------------------------------------------

ctl deploy "$R/v1"
check "deploy v1 again exits 0" is_eq "$RC" 0
ctl deploy "$R/v5-flat.tar"
check "deploy v5 (flat tarball) exits 0" is_eq "$RC" 0
check "current is v5" is_eq "$(current_version)" v5
ctl rollback
check "rollback exits 0" is_eq "$RC" 0
check "rollback: current is v1" is_eq "$(current_version)" v1
check "rollback: the service runs v1" is_eq "$(running_version)" "ok v1"
check "rollback: previous is now v5" is_eq "$(cat "$AGG_PREFIX/previous/VERSION")" v5
ctl rollback
check "a second rollback goes forward to v5" is_eq "$(current_version)" v5

# --- pruning ----------------------------------------------------------------------------

export AGG_KEEP_RELEASES=3
ctl deploy "$R/v2"
check "deploy with AGG_KEEP_RELEASES=3 exits 0" is_eq "$RC" 0
n=$(find "$AGG_PREFIX/releases" -mindepth 1 -maxdepth 1 -type d ! -name '.*' | wc -l)
check "only 3 releases kept (found $n)" is_eq "$n" 3
check "current and previous survive pruning" dirs_exist "$AGG_PREFIX/current/" "$AGG_PREFIX/previous/"
unset AGG_KEEP_RELEASES

# --- first deploy fails: nothing to roll back to ------------------------------------------

new_env first
ctl deploy "$R/v3"
check "first deploy of a bad release exits 1" is_eq "$RC" 1
check "... says there is no previous release" out_has "no previous release to roll back to"
check "... leaves no current link" [ ! -e "$AGG_PREFIX/current" ]
check "... stops the service" grep -q '^stop aggregator$' "$FAKE_STATE/systemctl.log"

# --- systemctl wrappers -------------------------------------------------------------------

new_env wrappers
ctl start
check "start without a deployed release fails with a hint" rc_and_out 1 "no release deployed"
ctl deploy "$R/v1"
for action in start stop restart reload; do
    ctl "$action"
    check "$action runs systemctl $action aggregator" last_systemctl_is "$action aggregator"
done
ctl status
check "status shows the current release" rc_and_out 0 "current release: releases/"
check "status runs systemctl status" rc_and_out 0 "fake status of status --no-pager aggregator"
ctl --help
check "--help exits 0 and documents deploy" rc_and_out 0 "deploy RELEASE"

# --- install (temp paths, no packages, no new user) --------------------------------------

new_env install
N=$TMP/install/nginx
mkdir -p "$N/sites-available" "$N/sites-enabled"
echo 'server { listen 80 default_server; }' >"$N/sites-available/default"
ln -s "$N/sites-available/default" "$N/sites-enabled/default"
export AGG_SYSTEMD_DIR=$TMP/install/systemd AGG_NGINX_DIR=$N AGG_NGINX=true AGG_BIN_DIR=$TMP/install/sbin
export AGG_PACKAGES=0 AGG_ALLOW_NONROOT=1 AGG_USER
AGG_USER=$(id -un)
ctl install
check "install exits 0" is_eq "$RC" 0
UNIT=$AGG_SYSTEMD_DIR/aggregator.service
check "unit installed with the prefix as WorkingDirectory" grep -qx "WorkingDirectory=$AGG_PREFIX/current" "$UNIT"
check "unit ExecStart uses the prefix and etc dir" grep -qx "ExecStart=$AGG_PREFIX/current/bin/aggregator -c $AGG_ETC/application.properties" "$UNIT"
check "unit ReadWritePaths is the log dir" grep -qx "ReadWritePaths=$AGG_LOG" "$UNIT"
check "unit User is AGG_USER" grep -qx "User=$AGG_USER" "$UNIT"
check "directories created" dirs_exist "$AGG_PREFIX/releases" "$AGG_ETC" "$AGG_LOG"
check "properties installed with the log path" grep -qx "aggregator.log.file=$AGG_LOG/aggregator.log" "$AGG_ETC/application.properties"
check "nginx site installed" [ -f "$N/sites-available/aggregator.conf" ]
check "nginx site enabled" [ -L "$N/sites-enabled/aggregator.conf" ]
check "nginx site includes the installed locations file" grep -q "include $N/snippets/aggregator-locations.conf;" "$N/sites-available/aggregator.conf"
check "nginx locations file installed" cmp -s "$HERE/../nginx/aggregator-locations.conf" "$N/snippets/aggregator-locations.conf"
check "Debian's default nginx site disabled" [ ! -e "$N/sites-enabled/default" ]
check "aggregatorctl copied to AGG_BIN_DIR" [ -x "$AGG_BIN_DIR/aggregatorctl" ]
check "daemon-reload and enable run" systemctl_log_has daemon-reload "enable aggregator"
echo '# edited by the operator' >>"$AGG_ETC/application.properties"
ctl install "$R/v1"
check "install again with a release exits 0" is_eq "$RC" 0
check "install keeps an existing properties file" grep -q 'edited by the operator' "$AGG_ETC/application.properties"
check "install RELEASE deploys it" is_eq "$(current_version)" v1
# systemd's own check of the installed unit: directives, sandboxing options,
# and that ExecStart names an executable (the deployed release's binary).
if command -v systemd-analyze >/dev/null; then
    OUT=$TMP/analyze.out
    check "systemd-analyze verify accepts the installed unit" verify_unit "$UNIT"
else
    skip "systemd-analyze verify: no systemd-analyze on this machine"
fi
unset AGG_SYSTEMD_DIR AGG_NGINX_DIR AGG_NGINX AGG_BIN_DIR AGG_PACKAGES AGG_ALLOW_NONROOT AGG_USER

printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
[[ $FAILED -eq 0 ]]
