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
# A unit NAME@PORT is an instance: its binary gets FAKE_INSTANCE=PORT, and
# its state files end in .PORT. `kill --signal=SIGUSR2` drains it (unless
# the release it runs has a NODRAIN file: a release from before the drain),
# SIGUSR1 resumes it.
echo "$*" >>"$FAKE_STATE/systemctl.log"
echo "systemctl $*" >>"$FAKE_STATE/events"
# A real service must not inherit aggregatorctl's lock (fd 9).
if { true >&9; } 2>/dev/null; then echo "fd 9 leaked" >>"$FAKE_STATE/leaks"; fi
unit=${!#}
inst=
if [[ $unit == *@* ]]; then inst=${unit#*@}; fi
sfx=${inst:+.$inst}
case $1 in
    start | restart)
        rm -f "$FAKE_STATE/health$sfx" "$FAKE_STATE/drain$sfx"
        cd "$AGG_PREFIX/current" || exit 1
        pwd -P >"$FAKE_STATE/running$sfx"
        FAKE_INSTANCE=$inst ./bin/aggregator >>"$FAKE_STATE/service.log" 2>&1 || true
        ;;
    stop) rm -f "$FAKE_STATE/health$sfx" "$FAKE_STATE/drain$sfx" ;;
    kill)
        case $* in
            *SIGUSR2*) [[ -e $(cat "$FAKE_STATE/running$sfx")/NODRAIN ]] || touch "$FAKE_STATE/drain$sfx" ;;
            *SIGUSR1*) rm -f "$FAKE_STATE/drain$sfx" ;;
        esac
        ;;
    status) echo "fake status of $*" ;;
    is-enabled | is-active) exit 1 ;;
esac
exit 0
EOF

cat >"$FAKEBIN/health" <<'EOF'
#!/usr/bin/env bash
# Fake health check: healthy when the running fake service said so. The
# URL's port picks the instance (health.PORT), else the single one. While
# an instance drains it answers 503 {"status":"draining","sessions":N}, N
# counting down from sessions.PORT, one session ending per check.
port=${1##*:}
port=${port%%/*}
f=$FAKE_STATE/health.$port
[[ -e $f ]] || f=$FAKE_STATE/health
if [[ -e $FAKE_STATE/drain.$port ]]; then
    n=$(cat "$FAKE_STATE/sessions.$port" 2>/dev/null || echo 0)
    echo "health $port draining $n" >>"$FAKE_STATE/events"
    printf '{"status":"draining","reason":"test","sessions":%d}\n' "$n"
    if ((n > 0)); then echo $((n - 1)) >"$FAKE_STATE/sessions.$port"; fi
    exit 1
fi
if [[ $(cat "$f" 2>/dev/null) == ok* ]]; then
    echo "health $port ok" >>"$FAKE_STATE/events"
    echo '{"status":"ok"}'
    exit 0
fi
echo "health $port none" >>"$FAKE_STATE/events"
exit 1
EOF
chmod +x "$FAKEBIN/systemctl" "$FAKEBIN/health"

# make_release DIR VERSION KIND: a fake release directory. KIND: good; bad
# (crashes); badon:PORT (crashes as the instance PORT only); nodrain (good,
# but ignores the drain signal, like a release from before it).
make_release() {
    local dir=$1 version=$2 kind=$3
    mkdir -p "$dir/bin" "$dir/src" "$dir/script"
    echo '<?php // fake worker' >"$dir/worker.php"
    echo '{}' >"$dir/composer.json"
    echo "$version" >"$dir/VERSION"
    if [[ $kind == nodrain ]]; then touch "$dir/NODRAIN"; fi
    if [[ $kind == badon:* ]]; then echo "${kind#badon:}" >"$dir/BAD_ON"; fi
    if [[ $kind != bad ]]; then
        cat >"$dir/bin/aggregator" <<'EOF'
#!/usr/bin/env bash
if [[ -n $FAKE_INSTANCE && -e BAD_ON && $(cat BAD_ON) == "$FAKE_INSTANCE" ]]; then exit 1; fi
echo "ok $(cat VERSION)" >"$FAKE_STATE/health${FAKE_INSTANCE:+.$FAKE_INSTANCE}"
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
    unset AGG_HEALTH_URL AGG_HTTP_CLIENT AGG_KEEP_RELEASES AGG_PORT AGG_HOST AGG_INSTANCES AGG_ROLL_PAUSE AGG_DRAIN_TIMEOUT AGG_DRAIN_CONFIRM
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
not() { ! "$@"; }
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
    echo '{"status":"draining","reason":"drained","sessions":0}' >"$TMP/www/draining"
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
        env -u AGG_HEALTH_CMD AGG_HEALTH_URL=http://127.0.0.1:$port/draining AGG_HTTP_CLIENT=$client "$CTL" drain >"$OUT" 2>&1
        RC=$?
        check "health via $client: drain reads the answer's sessions" rc_and_out 0 "drained after"
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

# --- several instances: a rolling deploy ---------------------------------------------

# line_of PATTERN: the number of the first line of the events log matching
# PATTERN (a whole line), 0 if none; after N: the first one after line N.
line_of() {
    local n
    n=$(grep -nx -- "$1" "$FAKE_STATE/events" | awk -F: -v after="${2:-0}" '$1 > after {print $1; exit}')
    printf '%s' "${n:-0}"
}
# in_order PATTERN...: each PATTERN matches a line of the events log after
# the previous one's.
in_order() {
    local at=0 next p
    for p in "$@"; do
        next=$(line_of "$p" "$at")
        ((next > at)) || return 1
        at=$next
    done
}
running_on() { cat "$FAKE_STATE/health.$1" 2>/dev/null; }
events_since() { tail -n +"$(($1 + 1))" "$FAKE_STATE/events"; }
no_event() { ! events_since "$1" | grep -qx -- "$2"; }
mark() { wc -l <"$FAKE_STATE/events"; }

new_env roll
export AGG_INSTANCES="8001 8002" AGG_ROLL_PAUSE=0
ctl deploy "$R/v1"
check "instances: first deploy exits 0" is_eq "$RC" 0
check "instances: both run v1" is_eq "$(running_on 8001)/$(running_on 8002)" "ok v1/ok v1"
check "instances: nothing to drain where nothing runs" out_has "aggregator@8001 does not answer"
check "instances: 8001 started and healthy before 8002" \
    in_order "systemctl restart aggregator@8001" "health 8001 ok" "systemctl restart aggregator@8002" "health 8002 ok"

echo 3 >"$FAKE_STATE/sessions.8001"
echo 2 >"$FAKE_STATE/sessions.8002"
m=$(mark)
ctl deploy "$R/v2"
check "instances: deploy v2 exits 0" is_eq "$RC" 0
check "instances: both run v2" is_eq "$(running_on 8001)/$(running_on 8002)" "ok v2/ok v2"
check "instances: one at a time: drain 8001, its sessions end, restart, healthy; then 8002" in_order \
    "systemctl kill --kill-who=main --signal=SIGUSR2 aggregator@8001" "health 8001 draining 3" "health 8001 draining 0" \
    "systemctl restart aggregator@8001" "health 8001 ok" \
    "systemctl kill --kill-who=main --signal=SIGUSR2 aggregator@8002" "health 8002 draining 2" "health 8002 draining 0" \
    "systemctl restart aggregator@8002" "health 8002 ok"
check "instances: no restart while sessions are left" \
    [ "$(line_of "systemctl restart aggregator@8001" "$m")" -gt "$(line_of "health 8001 draining 0" "$m")" ]
check "instances: 8002 is not drained before 8001 is healthy again" \
    is_eq "$(events_since "$m" | grep -c 'SIGUSR2 aggregator@8002')" 1
check "instances: the roll says each drained" out_has "aggregator@8002 drained after"
check "instances: and where it ends" out_has "running and healthy on aggregator@8001 aggregator@8002"
V2_DIR=$(readlink "$AGG_PREFIX/current")

# The new release fails on the first instance: it goes back, the second is never touched.
m=$(mark)
ctl deploy "$R/v3"
check "instances: a bad release exits 1" is_eq "$RC" 1
check "instances: ... naming the instance it failed on" out_has "did not become healthy on aggregator@8001"
check "instances: ... and the rollback" out_has "rolled back to $V2_DIR, which is running and healthy on aggregator@8001"
check "instances: ... and the instance not touched" out_has "aggregator@8002 not touched, still on $V2_DIR"
check "instances: 8002 was neither drained nor restarted" no_event "$m" "systemctl restart aggregator@8002"
check "instances: ... not even signalled" is_eq "$(events_since "$m" | grep -c 'aggregator@8002')" 0
check "instances: both run v2" is_eq "$(running_on 8001)/$(running_on 8002)" "ok v2/ok v2"
check "instances: current is v2" is_eq "$(current_version)" v2

# It fails on the second: the first, already on it, is drained and goes back too.
make_release "$R/v6" v6 badon:8002
m=$(mark)
ctl deploy "$R/v6"
check "instances: a release failing on 8002 exits 1" rc_and_out 1 "did not become healthy on aggregator@8002"
check "instances: ... 8001 ran it, then drained and went back" in_order \
    "systemctl restart aggregator@8001" "health 8001 ok" "systemctl restart aggregator@8002" \
    "systemctl restart aggregator@8002" "systemctl kill --kill-who=main --signal=SIGUSR2 aggregator@8001" "systemctl restart aggregator@8001" "health 8001 ok"
check "instances: ... says both are back" out_has "rolled back to $V2_DIR, which is running and healthy on aggregator@8002 aggregator@8001"
check "instances: both run v2 again" is_eq "$(running_on 8001)/$(running_on 8002)" "ok v2/ok v2"

# A running release that does not drain (one from before the drain) is restarted anyway.
make_release "$R/v7" v7 nodrain
ctl deploy "$R/v7"
export AGG_DRAIN_CONFIRM=1
ctl deploy "$R/v4"
check "instances: from a release that does not drain: exits 0" is_eq "$RC" 0
check "instances: ... warns that its sessions get 1001" out_has "does not say it drains after 1s"
check "instances: ... both run v4" is_eq "$(running_on 8001)/$(running_on 8002)" "ok v4/ok v4"

# Sessions that do not end are waited for at most AGG_DRAIN_TIMEOUT.
echo 100000 >"$FAKE_STATE/sessions.8001"
export AGG_DRAIN_TIMEOUT=1
ctl deploy "$R/v2"
check "instances: a drain that does not end within AGG_DRAIN_TIMEOUT: exits 0" is_eq "$RC" 0
check "instances: ... warns of the sessions it cuts" out_has "aggregator@8001 still runs [0-9]* sessions after 1s"
unset AGG_DRAIN_TIMEOUT
rm -f "$FAKE_STATE/sessions.8001"

# The default bound is aggregator.timeout.session plus the margin.
printf 'aggregator.timeout.session=2.5\n' >"$AGG_ETC/application.properties"
echo 100000 >"$FAKE_STATE/sessions.8001"
AGG_DRAIN_MARGIN=1 ctl deploy "$R/v4"
check "instances: the drain's bound is aggregator.timeout.session (rounded up) + AGG_DRAIN_MARGIN" \
    out_has "waiting up to 4s for its"
rm -f "$FAKE_STATE/sessions.8001" "$AGG_ETC/application.properties"

# The pause between instances.
start=$SECONDS
AGG_ROLL_PAUSE=2 ctl deploy "$R/v2"
check "instances: AGG_ROLL_PAUSE waits between the instances" out_has "waiting 2s before draining the next instance"
check "instances: ... for real" [ $((SECONDS - start)) -ge 2 ]
start=$SECONDS
AGG_ROLL_PAUSE=2 ctl restart
check "instances: ... and a command right after another waits too" out_has "waiting [12]s before draining the next instance"

# restart rolls too; drain and resume one instance.
m=$(mark)
ctl restart
check "instances: restart rolls" in_order "systemctl kill --kill-who=main --signal=SIGUSR2 aggregator@8001" \
    "systemctl restart aggregator@8001" "systemctl kill --kill-who=main --signal=SIGUSR2 aggregator@8002" "systemctl restart aggregator@8002"
check "instances: ... exits 0" is_eq "$RC" 0
ctl drain
check "instances: drain needs the instance" rc_and_out 2 "drain which instance"
echo 2 >"$FAKE_STATE/sessions.8002"
ctl drain 8002
check "instances: drain 8002 waits for its sessions" rc_and_out 0 "aggregator@8002 drained after"
check "instances: ... and 8002 keeps draining" [ -e "$FAKE_STATE/drain.8002" ]
ctl resume 8002
check "instances: resume 8002 sends SIGUSR1" last_systemctl_is "kill --kill-who=main --signal=SIGUSR1 aggregator@8002"
check "instances: ... and it takes sessions" [ ! -e "$FAKE_STATE/drain.8002" ]
ctl drain 9999
check "instances: drain of an unknown instance fails" rc_and_out 1 "no instance 9999"
ctl status
check "instances: status shows each" out_has "status --no-pager aggregator@8002"
ctl stop
check "instances: stop stops each" systemctl_log_has "stop aggregator@8001" "stop aggregator@8002"
ctl start

# An interrupted deploy lets the instance it was draining take sessions again.
echo 100000 >"$FAKE_STATE/sessions.8001"
"$CTL" deploy "$R/v4" >"$OUT" 2>&1 &
pid=$!
for _ in $(seq 50); do
    if grep -q "drains: new sessions go" "$OUT"; then break; fi
    sleep 0.1
done
kill -TERM "$pid"
wait "$pid"
RC=$?
check "instances: an interrupted deploy exits 1" rc_and_out 1 "interrupted"
check "instances: ... and resumes the instance it drained" systemctl_log_has "kill --kill-who=main --signal=SIGUSR1 aggregator@8001"
check "instances: ... which takes sessions again" [ ! -e "$FAKE_STATE/drain.8001" ]
rm -f "$FAKE_STATE/sessions.8001"

# The instances can come from $AGG_ETC/instances; bad lists are refused.
unset AGG_INSTANCES
printf '# the instances\n8001\n8002 # second\n' >"$AGG_ETC/instances"
m=$(mark)
ctl deploy "$R/v1"
check "instances from \$AGG_ETC/instances: both rolled" in_order "systemctl restart aggregator@8001" "systemctl restart aggregator@8002"
rm -f "$AGG_ETC/instances"
AGG_INSTANCES="8001 80x" ctl deploy "$R/v2"
check "instances: a word that is no port is refused" rc_and_out 1 "instance '80x' is not a port"
AGG_INSTANCES="8001 8001" ctl deploy "$R/v2"
check "instances: a port listed twice is refused" rc_and_out 1 "listed twice"
AGG_INSTANCES="8001 8002" AGG_HEALTH_URL=http://127.0.0.1:1/health ctl deploy "$R/v2"
check "instances: AGG_HEALTH_URL is refused with instances" rc_and_out 1 "AGG_HEALTH_URL names one instance"

# One instance says it cannot avoid the gap.
new_env single
ctl deploy "$R/v1"
check "one instance: the deploy says its restart closes sessions" rc_and_out 0 "one instance: its restart closes its sessions in flight with 1001"

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

# --- install with instances ----------------------------------------------------------------

new_env install-instances
N=$TMP/install-instances/nginx
mkdir -p "$N/sites-available" "$N/sites-enabled"
export AGG_SYSTEMD_DIR=$TMP/install-instances/systemd AGG_NGINX_DIR=$N AGG_NGINX=true AGG_BIN_DIR=
export AGG_PACKAGES=0 AGG_ALLOW_NONROOT=1 AGG_USER AGG_INSTANCES="8001 8002" AGG_ROLL_PAUSE=0
AGG_USER=$(id -un)
ctl install "$R/v1"
check "install with instances exits 0" is_eq "$RC" 0
TEMPLATE=$AGG_SYSTEMD_DIR/aggregator@.service
check "the template unit gives each instance its port, log file and the warm-up gate" grep -qx \
    "ExecStart=$AGG_PREFIX/current/bin/aggregator -c $AGG_ETC/application.properties -Dserver.port=%i -Daggregator.log.file=$AGG_LOG/aggregator-%i.log -Daggregator.drain.until-warm=true" "$TEMPLATE"
check "... its own journal name" grep -qx "SyslogIdentifier=aggregator-%i" "$TEMPLATE"
check "the instances are written down" is_eq "$(grep -v '^#' "$AGG_ETC/instances" | tr '\n' ' ')" "8001 8002 "
check "the nginx upstream lists each instance" is_eq \
    "$(grep -E '^[[:space:]]*server 127' "$N/sites-available/aggregator.conf" | tr -s ' ')" \
    " server 127.0.0.1:8001 max_fails=3 fail_timeout=10s;
 server 127.0.0.1:8002 max_fails=3 fail_timeout=10s;"
check "the instances are enabled" systemctl_log_has "enable aggregator@8001" "enable aggregator@8002"
check "... the single unit is not" not systemctl_log_has "enable aggregator"
check "install RELEASE deploys it to both" is_eq "$(running_on 8001)/$(running_on 8002)" "ok v1/ok v1"
unset AGG_INSTANCES
ctl deploy "$R/v2"
check "a later deploy finds the instances in \$AGG_ETC/instances" is_eq "$(running_on 8001)/$(running_on 8002)" "ok v2/ok v2"
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$TMP/analyze"
    ln -s "$TEMPLATE" "$TMP/analyze/aggregator@8001.service"
    OUT=$TMP/analyze.out
    check "systemd-analyze verify accepts an instance of the template" verify_unit "$TMP/analyze/aggregator@8001.service"
else
    skip "systemd-analyze verify of the template: no systemd-analyze on this machine"
fi
unset AGG_SYSTEMD_DIR AGG_NGINX_DIR AGG_NGINX AGG_BIN_DIR AGG_PACKAGES AGG_ALLOW_NONROOT AGG_USER AGG_ROLL_PAUSE


printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
[[ $FAILED -eq 0 ]]
