#!/usr/bin/env bash
# Parse throughput of ravelin's matcher against its peers, on one generated auth.log, in one run.
#
#   bench/parse_throughput.sh            # 1,000,000 lines (fail2ban-regex on the same file)
#   LINES=200000 bench/parse_throughput.sh
#   F2B_LINES=200000 bench/parse_throughput.sh   # fail2ban-regex on the first 200k lines only
#
# Measures (median of $RUNS runs for the fast tools, one run each for fail2ban-regex, which is
# slow): `cat` (I/O floor), `ravelin test-rules` (human and --json), sshguard's `sshg-parser`,
# `fail2ban-regex` with the stock sshd filter in normal and aggressive mode. Then compares the
# lines ravelin matches with the lines fail2ban-regex matches on the same file, grouped by
# program and message shape. Prints a Markdown fragment for docs/benchmarks.md (parse throughput section).
#
# Needs python3, fail2ban, sshguard, hyperfine (installed with apt-get when missing) and cargo.
set -euo pipefail

cd "$(dirname "$0")/.."
LINES=${LINES:-1000000}
F2B_LINES=${F2B_LINES:-$LINES}
RUNS=${RUNS:-3}
WORK=${BENCH_DIR:-${TMPDIR:-/tmp}/ravelin-bench}
SSHG=/usr/libexec/sshguard/sshg-parser
mkdir -p "$WORK"

need=()
command -v fail2ban-regex >/dev/null || need+=(fail2ban)
[ -x "$SSHG" ] || need+=(sshguard)
command -v hyperfine >/dev/null || need+=(hyperfine)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    apt-get install -y "${need[@]}" >&2
fi

LOG=$WORK/auth-$LINES.log
if [ ! -s "$LOG" ]; then
    echo "generating $LOG ($LINES lines)" >&2
    python3 bench/gen_authlog.py "$LOG" "$LINES"
fi
F2B_LOG=$LOG
if [ "$F2B_LINES" != "$LINES" ]; then
    F2B_LOG=$WORK/auth-$LINES-head-$F2B_LINES.log
    head -n "$F2B_LINES" "$LOG" >"$F2B_LOG"
fi

echo "building release" >&2
cargo build --release --quiet
BIN=$PWD/target/release/ravelin

echo "timing the fast tools ($RUNS runs each)" >&2
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/hyperfine.json" \
    -n cat "cat $LOG" \
    -n ravelin "$BIN test-rules $LOG" \
    -n ravelin-json "$BIN test-rules --json $LOG" \
    -n sshg-parser "$SSHG < $LOG" \
    --output=null >&2

# ravelin's own in-process figure (reading + matching, no process start): median of RUNS.
# Output goes to a file (a pipe would slow the writer down).
: >"$WORK/ravelin-summaries.json"
: >"$WORK/ravelin-human.txt"
for _ in $(seq "$RUNS"); do
    "$BIN" test-rules --json "$LOG" >"$WORK/ravelin.jsonl"
    tail -n 1 "$WORK/ravelin.jsonl" >>"$WORK/ravelin-summaries.json"
    "$BIN" test-rules "$LOG" >>"$WORK/ravelin-human.txt"
done

echo "timing fail2ban-regex, normal and aggressive (one run each; slow)" >&2
f2b() { # $1 name, $2 filter
    local s e
    s=$(date +%s.%N)
    fail2ban-regex --raw "$F2B_LOG" "$2" >"$WORK/f2b-$1.txt"
    e=$(date +%s.%N)
    python3 -c "print($e - $s)" >"$WORK/f2b-$1.secs"
    fail2ban-regex --raw --print-all-matched --print-no-missed --print-no-ignored \
        "$F2B_LOG" "$2" >"$WORK/f2b-$1-matched.txt"
}
f2b normal /etc/fail2ban/filter.d/sshd.conf
f2b aggressive 'sshd[mode=aggressive]'

python3 - "$WORK" "$LOG" "$F2B_LOG" "$LINES" "$F2B_LINES" "$RUNS" <<'PY'
import collections, json, re, statistics, subprocess, sys, platform, datetime
work, log, f2b_log, lines, f2b_lines, runs = sys.argv[1:7]
lines, f2b_lines = int(lines), int(f2b_lines)

hf = {r["command"]: r for r in json.load(open(f"{work}/hyperfine.json"))["results"]}
def med(name):
    return statistics.median(hf[name]["times"])
rows = []
for name in ["cat", "ravelin", "ravelin-json", "sshg-parser"]:
    rows.append((name, lines, med(name)))
summ = [json.loads(l)["summary"] for l in open(f"{work}/ravelin-summaries.json")]
inproc_json = statistics.median(s["lines_per_sec"] for s in summ)
inproc = statistics.median(float(x) for x in re.findall(r"\(([0-9.]+) lines/s\)", open(f"{work}/ravelin-human.txt").read()))
for mode in ["normal", "aggressive"]:
    secs = float(open(f"{work}/f2b-{mode}.secs").read())
    rows.append((f"fail2ban-regex ({mode})", f2b_lines, secs))

def f2b_counts(mode):
    txt = open(f"{work}/f2b-{mode}.txt").read()
    m = re.search(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", txt)
    return tuple(int(x) for x in m.groups())

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
print(f"## Matcher parse throughput ({datetime.date.today()})\n")
print(f"Machine: {nproc} cores, {cpu}, {platform.platform()}.  ")
print(f"Input: `bench/gen_authlog.py` (seed 20261121), {lines:,} lines"
      + (f" (fail2ban-regex on the first {f2b_lines:,})" if f2b_lines != lines else "") + ".  ")
print(f"Command: `LINES={lines} F2B_LINES={f2b_lines} RUNS={runs} bench/parse_throughput.sh`\n")
rav = lines / med("ravelin")
print("| tool | lines | seconds | lines/s | ravelin is x faster |")
print("|---|---:|---:|---:|---:|")
for name, n, secs in rows:
    lps = n / secs
    print(f"| {name} | {n:,} | {secs:.3f} | {lps:,.0f} | {rav / lps:.2f} |")
print(f"\nravelin's own figure (reading + matching inside the process, median of {runs}): "
      f"{inproc:,.0f} lines/s, {inproc_json:,.0f} lines/s with `--json` written to a file. "
      "The `ravelin` rows above include process start and output.\n")

# ---- match comparison on the fail2ban file ------------------------------------------------
text = open(f2b_log, encoding="utf-8", errors="replace").read().split("\n")
if text and text[-1] == "":
    text.pop()
rav_lines = {}
for l in open(f"{work}/ravelin.jsonl"):
    o = json.loads(l)
    if "line" in o and o["line"] <= f2b_lines:
        rav_lines[o["line"]] = o["rule"]
import ipaddress
def norm(w):
    try:
        ipaddress.ip_address(w)
        return "ADDR"
    except ValueError:
        return re.sub(r"\d+", "N", w)
def shape(line):
    parts = line.split(maxsplit=5)
    if len(parts) < 6:
        return ("?", line[:40])
    prog = parts[4].split("[")[0].rstrip(":")
    words = [norm(w) for w in parts[5].split()]
    return (prog, " ".join(words[:5]))
rav_all = collections.Counter(text[n - 1] for n in rav_lines)
rav_fail = collections.Counter(text[n - 1] for n, r in rav_lines.items() if not r.startswith("sshd.accepted"))
print("| | lines | matched | notes |")
print("|---|---:|---:|---|")
print(f"| ravelin (all rules) | {f2b_lines:,} | {sum(rav_all.values()):,} | incl. {sum(rav_all.values()) - sum(rav_fail.values()):,} `sshd.accepted` |")
for mode in ["normal", "aggressive"]:
    n, ign, mat, miss = f2b_counts(mode)
    print(f"| fail2ban-regex {mode} | {n:,} | {mat:,} | {ign:,} more lines matched as no-failure helpers (\"ignored\") |")
print()
for mode in ["normal", "aggressive"]:
    f2b = collections.Counter()
    for l in open(f"{work}/f2b-{mode}-matched.txt", encoding="utf-8", errors="replace"):
        if l.startswith("|  ") and re.match(r"\|  \w{3} [ \d]\d ", l):
            f2b[l[3:].rstrip("\n")] += 1
    both = sum((rav_fail & f2b).values())
    only_f2b = collections.Counter()
    for l, c in (f2b - rav_fail).items():
        only_f2b[shape(l)] += c
    only_rav = collections.Counter()
    for l, c in (rav_fail - f2b).items():
        only_rav[shape(l)] += c
    print(f"### vs fail2ban-regex {mode}: both {both:,}, only fail2ban {sum(only_f2b.values()):,}, "
          f"only ravelin {sum(only_rav.values()):,} (failure rules; accepted logins left out)\n")
    for title, cnt in [("only fail2ban", only_f2b), ("only ravelin", only_rav)]:
        if not cnt:
            continue
        print(f"| {title}: program | message shape | lines |")
        print("|---|---|---:|")
        for (prog, sh), c in cnt.most_common(14):
            print(f"| {prog} | `{sh} ...` | {c:,} |")
        print()
PY
