#!/usr/bin/env bash
# Wall time of a live posture audit: `ravelin audit` against `lynis audit system --quick`, on the
# same machine in one run, plus what each says about the items Lynis scores by installation.
#
#   bench/audit_vs_lynis.sh               # ravelin: median of RUNS=5 runs; Lynis: LYNIS_RUNS=1
#   RUNS=9 LYNIS_RUNS=3 bench/audit_vs_lynis.sh
#   RAVELIN=target/debug/ravelin bench/audit_vs_lynis.sh    # skip the release build
#
# Lynis writes its log and report into a temp dir (not /var/log). Both tools read the live
# system; neither changes it. Prints a Markdown fragment for docs/benchmarks.md (audit section).
# Needs lynis (installed with apt-get when missing) and cargo.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
LYNIS_RUNS=${LYNIS_RUNS:-1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ravelin-audit-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if ! command -v lynis >/dev/null; then
    echo "installing: lynis" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lynis >&2
fi
if [ -z "${RAVELIN:-}" ]; then
    cargo build --release --quiet
    RAVELIN=target/release/ravelin
fi

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

rav_times=()
for _ in $(seq "$RUNS"); do
    t0=$(now)
    "$RAVELIN" audit --json >"$WORK/ravelin.json" || true
    t1=$(now)
    rav_times+=("$(awk "BEGIN{print $t1 - $t0}")")
done
rav=$(printf '%s\n' "${rav_times[@]}" | median)

lyn_times=()
for _ in $(seq "$LYNIS_RUNS"); do
    t0=$(now)
    lynis audit system --quick --no-colors --log-file "$WORK/lynis.log" \
        --report-file "$WORK/lynis-report.dat" >"$WORK/lynis.out" 2>&1 || true
    t1=$(now)
    lyn_times+=("$(awk "BEGIN{print $t1 - $t0}")")
done
lyn=$(printf '%s\n' "${lyn_times[@]}" | median)

summary=$(python3 - "$WORK/ravelin.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = {}
for x in r["results"]:
    c[x["status"]] = c.get(x["status"], 0) + 1
print(f'{len(r["results"])} checks ({", ".join(f"{v} {k}" for k, v in sorted(c.items()))}), '
      f'internal {r["duration_ms"]} ms')
for x in r["results"]:
    if x["id"] in ("fw.default-deny", "ssh.password-auth", "updates.unattended"):
        print(f'- ravelin `{x["id"]}`: **{x["status"]}**, {x["reason"]}')
PY
)
hardening=$(grep -m1 '^hardening_index=' "$WORK/lynis-report.dat" 2>/dev/null | cut -d= -f2 || true)
lynis_tests=$(grep -m1 '^tests_executed=' "$WORK/lynis-report.dat" 2>/dev/null | cut -d= -f2 | tr '|' '\n' | grep -c . || true)
lynis_fw=$(grep -E 'FIRE-45|firewall' "$WORK/lynis.log" 2>/dev/null | grep -iE 'result|found|empty' | head -3 | sed 's/^[^]]*] *//' || true)
lynis_ssh=$(grep -iE 'PasswordAuthentication' "$WORK/lynis.log" 2>/dev/null | head -2 | sed 's/^[^]]*] *//' || true)

cat <<MD
## Posture audit: ravelin audit vs Lynis

$(date -u +%F), $(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"), $(lynis --version 2>/dev/null | head -1 | sed 's/^/Lynis /'),
command: \`bench/audit_vs_lynis.sh\` (RUNS=$RUNS, LYNIS_RUNS=$LYNIS_RUNS), live system, root.

| tool | command | wall time (median) | runs |
|---|---|---:|---:|
| ravelin | \`ravelin audit --json\` | $(printf '%.3f' "$rav") s | $RUNS |
| Lynis | \`lynis audit system --quick\` | $(printf '%.1f' "$lyn") s | $LYNIS_RUNS |

Ratio: Lynis takes **$(awk "BEGIN{printf \"%.0f\", $lyn / $rav}")x** the time of ravelin's audit.

ravelin: $summary

Lynis: hardening index ${hardening:-?}, ${lynis_tests:-?} tests executed.
Lynis log lines on the firewall: ${lynis_fw:-(none)}
Lynis log lines on PasswordAuthentication: ${lynis_ssh:-(none)}
MD
