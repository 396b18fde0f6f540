#!/usr/bin/env bash
# The SSH decoy (`ravelin decoy serve`) against Cowrie 3.x from PyPI, on the same machine in one
# run, driven by the same Rust client (`bench/decoy_load.rs`) on loopback:
#
#   rate: for each value in CONC, that many sessions in flight for RATE_SECONDS: connect, key
#         exchange, password auth, `exec uname -a`, read to exit status, disconnect.
#         Sessions/s, p50/p99 session time, server and client CPU per session.
#   hold: HOLD interactive sessions (pty + shell), HOLD_CONC logins in flight while opening,
#         kept open HOLD_SECONDS; how many stay open, and the server's VmRSS while held.
#
#   bench/decoy_vs_cowrie.sh                        # defaults below, ~5 minutes
#   CONC="8 32 128" HOLD=3000 bench/decoy_vs_cowrie.sh
#   RAVELIN=target/release/ravelin LOAD=path/to/decoy_load bench/decoy_vs_cowrie.sh  # no build
#
# Each server is started fresh for each mode (so the memory figure of `hold` is not what the
# `rate` run left behind), as the unprivileged user nobody (Cowrie refuses to run as root), in
# a temp dir, listening on 127.0.0.1 only, with the same credentials: the decoy gets a fixed
# per-install secret, the load generator prints a password it accepts, and Cowrie's userdb gets
# that same pair. Cowrie runs with its shipped defaults (cowrie.cfg.dist) except the listen
# endpoint; JSON output stays on, as the decoy's JSON events do. The decoy's session limits
# are raised (every client is on 127.0.0.x); everything else is the decoy's default, session
# recordings included (STATE_DIR/recordings, --recordings-quota-mb 512). The decoy opens --events
# and chdirs into --state-dir as nobody, so both are owned by nobody. The client shares the 2
# cores with the server.
#
# Cowrie is installed into COWRIE_VENV (default /opt/cowrie-venv) with pip when missing; the
# venv is made with /usr/bin/python3 so user nobody can run it. Needs root, cargo, python3.
# Prints a Markdown fragment for docs/benchmarks.md ("Decoy vs Cowrie").
set -euo pipefail

cd "$(dirname "$0")/.."
RATE_SECONDS=${RATE_SECONDS:-20}
CONC=${CONC:-16 64}
HOLD=${HOLD:-2000}
HOLD_CONC=${HOLD_CONC:-32}
HOLD_SECONDS=${HOLD_SECONDS:-20}
DECOY_PORT=${DECOY_PORT:-22022}
COWRIE_PORT=${COWRIE_PORT:-22023}
COWRIE_VENV=${COWRIE_VENV:-/opt/cowrie-venv}
COWRIE_SPEC=${COWRIE_SPEC:-cowrie>=3,<4}
RUN_AS=${RUN_AS:-nobody}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ravelin-decoy-bench.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
chmod 755 "$WORK"

# Both ends hold thousands of sockets.
hard=$(ulimit -Hn)
want=65536
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
ulimit -n "$want"

if [ ! -x "$COWRIE_VENV/bin/cowrie" ]; then
    echo "installing: $COWRIE_SPEC into $COWRIE_VENV" >&2
    /usr/bin/python3 -m venv "$COWRIE_VENV"
    "$COWRIE_VENV/bin/pip" install -q "$COWRIE_SPEC" >&2
fi
# Twisted caches its plugin list next to its code; build it once as root (nobody cannot). In a
# scratch dir: loading Cowrie's plugin writes var/lib/cowrie/uuid under the current directory.
mkdir "$WORK/plugin-cache"
(cd "$WORK/plugin-cache" && "$COWRIE_VENV/bin/python" -c \
    'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))' 2>/dev/null) || true
cowrie_version=$("$COWRIE_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("cowrie"))')
twisted_version=$("$COWRIE_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("twisted"))')
python_version=$("$COWRIE_VENV/bin/python" -c 'import platform; print(platform.python_version())')

if [ -z "${RAVELIN:-}" ]; then
    cargo build --release --quiet
    RAVELIN=target/release/ravelin
fi
if [ -z "${LOAD:-}" ]; then
    LOAD=$(cargo build --release --bench decoy_load --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "decoy_load" and m.get("executable"):
        print(m["executable"])')
fi
# A copy user nobody can run, whatever the permissions of the work tree.
install -m 755 "$RAVELIN" "$WORK/ravelin"

wait_port() { # wait_port PORT PID
    for _ in $(seq 300); do
        if ss -Htln "sport = :$1" | grep -q .; then return 0; fi
        kill -0 "$2" 2>/dev/null || { echo "server exited" >&2; return 1; }
        sleep 0.1
    done
    echo "port $1 never opened" >&2
    return 1
}

banner() { # the identification string a server sends first
    timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; head -1 <&3" | tr -d '\r'
}

check_pid() { # the pid measured must be the listening server (not a wrapper)
    if ! ss -Htlnp | grep -q "\"$1\",pid=$SERVER_PID,"; then
        echo "pid $SERVER_PID is not the listening $1: $(ss -Htlnp | grep -E 'ravelin|twistd')" >&2
        exit 1
    fi
}

stop_server() {
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# --- the decoy ------------------------------------------------------------------------------
state=$WORK/decoy-state
mkdir -m 700 "$state"
# A fixed per-install secret (as tests/integration/decoy.rs does), so the password is known.
python3 -c 'import sys; sys.stdout.buffer.write(bytes([0x42]) * 32)' >"$state/decoy.secret"
chmod 600 "$state/decoy.secret"
PASSWORD=$("$LOAD" password --secret-file "$state/decoy.secret" --user root)
mkdir "$WORK/decoy-events"
chown -R "$RUN_AS" "$state" "$WORK/decoy-events"

start_decoy() {
    # exec: $! must be the server itself, not a subshell around it.
    (exec setpriv --reuid="$RUN_AS" --regid="$(id -g "$RUN_AS")" --clear-groups \
        "$WORK/ravelin" decoy serve --listen "127.0.0.1:$DECOY_PORT" --state-dir "$state" \
        --events "$WORK/decoy-events/$1.json" --max-sessions 100000 --max-per-addr 100000 \
        --idle-timeout 15m) >"$WORK/decoy-$1.out" 2>"$WORK/decoy-$1.log" &
    SERVER_PID=$!
    wait_port "$DECOY_PORT" "$SERVER_PID"
    check_pid ravelin
}

# --- Cowrie ---------------------------------------------------------------------------------
cw=$WORK/cowrie
mkdir -p "$cw/etc" "$cw/var/log/cowrie" "$cw/var/lib/cowrie/downloads" "$cw/var/lib/cowrie/tty" \
    "$cw/var/run"
cat >"$cw/etc/cowrie.cfg" <<CFG
[ssh]
listen_endpoints = tcp:$COWRIE_PORT:interface=127.0.0.1

[output_jsonlog]
enabled = true
CFG
printf 'root:x:%s\n' "$PASSWORD" >"$cw/etc/userdb.txt"
chown -R "$RUN_AS" "$cw"

start_cowrie() {
    # `cowrie start` with COWRIE_STDOUT=yes execs `twistd -n` in the same process: $! is it.
    (cd "$cw" && exec setpriv --reuid="$RUN_AS" --regid="$(id -g "$RUN_AS")" --clear-groups \
        env HOME="$cw" PATH="$COWRIE_VENV/bin:$PATH" COWRIE_STDOUT=yes \
        "$COWRIE_VENV/bin/cowrie" start) >"$WORK/cowrie-$1.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$COWRIE_PORT" "$SERVER_PID"
    check_pid twistd
}

run_modes() { # run_modes NAME PORT START_FN
    local name=$1 port=$2 start=$3
    "$start" rate
    banner "$port" >"$WORK/$name.banner"
    echo "== $name: rate (pid $SERVER_PID, $(cat "$WORK/$name.banner"))" >&2
    for c in $CONC; do
        "$LOAD" rate --addr "127.0.0.1:$port" --password "$PASSWORD" --pid "$SERVER_PID" \
            --concurrency "$c" --seconds "$RATE_SECONDS" >"$WORK/$name-rate-$c.json"
    done
    stop_server
    "$start" hold
    echo "== $name: hold $HOLD (pid $SERVER_PID)" >&2
    "$LOAD" hold --addr "127.0.0.1:$port" --password "$PASSWORD" --pid "$SERVER_PID" \
        --sessions "$HOLD" --connect-concurrency "$HOLD_CONC" --hold-seconds "$HOLD_SECONDS" \
        >"$WORK/$name-hold.json"
    stop_server
}

t0=$(date +%s)
run_modes decoy "$DECOY_PORT" start_decoy
run_modes cowrie "$COWRIE_PORT" start_cowrie
elapsed=$(($(date +%s) - t0))

python3 - "$WORK" $CONC <<PY
import json, sys
w = sys.argv[1]
def load(n):
    return json.load(open(f"{w}/{n}.json"))
concs = sys.argv[2:]
rates = [(k, load(f"decoy-rate-{k}"), load(f"cowrie-rate-{k}")) for k in concs]
dh, ch = load("decoy-hold"), load("cowrie-hold")
banner = {n: open(f"{w}/{n}.banner").read().strip() for n in ("decoy", "cowrie")}
def ratio(d, c):
    return d["sessions_per_s"] / c["sessions_per_s"] if c["sessions_per_s"] else float("inf")
def fails(r):
    return f'{r["failures"]}' + (f' {json.dumps(r["failures_by_stage"])}' if r["failures"] else "")
def cpu_client(r):
    return f'{r["client_cpu_s"] * 1e3 / r["sessions"]:.2f} ms' if r["sessions"] else "?"
def cpu(r):
    v = r.get("server_cpu_ms_per_session")
    return f"{v:.2f} ms" if v is not None else "?"
rows = []
for k, d, c in rates:
    rows += [
        f'| sessions/s, {k} in flight ($RATE_SECONDS s) | {d["sessions_per_s"]:.1f} | {c["sessions_per_s"]:.1f} | **{ratio(d, c):.1f}x** |',
        f'| session time p50 / p99, {k} in flight | {d["p50_ms"]:.1f} / {d["p99_ms"]:.1f} ms | {c["p50_ms"]:.1f} / {c["p99_ms"]:.1f} ms | |',
        f'| failed sessions, {k} in flight | {fails(d)} | {fails(c)} | |',
        f'| server / client CPU per session, {k} in flight | {cpu(d)} / {cpu_client(d)} | {cpu(c)} / {cpu_client(c)} | |',
    ]
rows = chr(10).join(rows)
print(f"""## Decoy vs Cowrie (\`bench/decoy_vs_cowrie.sh\`)

- **Date:** $(date -u +%F). **Machine:** $(. /etc/os-release && echo "$PRETTY_NAME"), $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB, kernel $(uname -r).
- **Command:** \`RATE_SECONDS=$RATE_SECONDS CONC="$CONC" HOLD=$HOLD HOLD_CONC=$HOLD_CONC HOLD_SECONDS=$HOLD_SECONDS bench/decoy_vs_cowrie.sh\` (${elapsed} s of load).
- **Session (rate rows):** TCP connect, key exchange, password auth, \`exec uname -a\` read to exit status and close, disconnect.
- **Peer:** Cowrie $cowrie_version (PyPI), Twisted $twisted_version, Python $python_version. Banners: decoy \`{banner["decoy"]}\`, Cowrie \`{banner["cowrie"]}\`.

| | ravelin decoy | Cowrie | decoy / Cowrie |
|---|---:|---:|---:|
{rows}
| interactive sessions opened ($HOLD tried, $HOLD_CONC logins in flight) | {dh["held_after_ramp"]} in {dh["ramp_s"]:.1f} s | {ch["held_after_ramp"]} in {ch["ramp_s"]:.1f} s | |
| held open after $HOLD_SECONDS s (min over the hold) | {dh["held_end"]} ({dh["held_min"]}) | {ch["held_end"]} ({ch["held_min"]}) | |
| failed / closed by server | {fails(dh)} / {dh["closed_by_server"]} | {fails(ch)} / {ch["closed_by_server"]} | |
| server RSS idle | {dh["rss_idle_mib"]:.1f} MiB | {ch["rss_idle_mib"]:.1f} MiB | |
| server RSS with the sessions held | **{dh["rss_held_mib"]:.1f} MiB** | **{ch["rss_held_mib"]:.1f} MiB** | {(dh["rss_held_mib"] / ch["rss_held_mib"]) if ch["rss_held_mib"] else 0:.2f} |
| server RSS peak (VmHWM) | {dh["server_hwm_mib"]:.1f} MiB | {ch["server_hwm_mib"]:.1f} MiB | |
| RSS per held session | {(dh["kib_per_session"] or 0):.1f} KiB | {(ch["kib_per_session"] or 0):.1f} KiB | |
""")
ok_rate = all(ratio(d, c) >= 10 for _, d, c in rates)
ratios = ", ".join(f"{ratio(d, c):.1f}x at {k} in flight" for k, d, c in rates)
MB = 1.048576  # MiB -> MB (10^6 bytes), the unit of the target
ok_hold = dh["held_end"] >= 2000 and dh["rss_held_mib"] * MB < 200 and dh["server_hwm_mib"] * MB < 200
print(f"Targets: >= 10x Cowrie's sessions/s: **{'met' if ok_rate else 'missed'}** ({ratios}); "
      f"2,000 concurrent sessions under 200 MB: **{'met' if ok_hold else 'missed'}** "
      f"({dh['held_end']} held, RSS {dh['rss_held_mib'] * MB:.0f} MB, peak {dh['server_hwm_mib'] * MB:.0f} MB).")
for n in [f"{s}-rate-{k}" for k in concs for s in ("decoy", "cowrie")] + ["decoy-hold", "cowrie-hold"]:
    print(f"<!-- {n}: {json.dumps(load(n))} -->")
PY
