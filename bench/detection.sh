#!/bin/sh
# Detection benchmark: labelled traffic -> ravelin simulate, fail2ban, crowdsec -> scores.
#
# Usage (as root, from the repository root): bench/detection.sh [--days N] [--seed N] [--openssh 9.2|9.8]
#   RAVELIN=path/to/ravelin  use this binary instead of building target/release/ravelin
#   CONFIG=path/to/file.toml run ravelin with this config (default: its built-in default)
#   KEEP=dir                 keep the generated log, labels and scratch files in dir
#
# Installs fail2ban and crowdsec from Debian's packages when missing. crowdsec's postinst
# tries to register with its Central API; on an offline host that step fails and leaves the
# package half-configured, which is enough here: the benchmark uses its binaries and the hub
# snapshot under /usr/share/crowdsec/hub with a private config, never the system service.
# Nothing here sends traffic off the host (crowdsec's local API listens on 127.0.0.1 only).
set -eu

cd "$(dirname "$0")/.."
root=$(pwd)

need_pkg() {
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "installing $2 (Debian package)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >&2 || command -v "$1" >/dev/null 2>&1
}
need_pkg fail2ban-regex fail2ban
# crowdsec's postinst fails offline and leaves dpkg with a half-configured package, which makes
# every later apt-get install fail: if this script installs it, it also purges it at the end.
installed_crowdsec=
if ! command -v crowdsec >/dev/null 2>&1; then
    installed_crowdsec=1
fi
need_pkg crowdsec crowdsec || echo "crowdsec unavailable: its rows will say why" >&2
cleanup_crowdsec() {
    if [ -n "$installed_crowdsec" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y crowdsec >/dev/null 2>&1 || true
    fi
}

if [ -n "${KEEP:-}" ]; then
    work=$KEEP
    mkdir -p "$work"
    trap 'cleanup_crowdsec' EXIT
else
    work=$(mktemp -d /tmp/ravelin-detection.XXXXXX)
    trap 'rm -rf "$work"; cleanup_crowdsec' EXIT
fi

python3 bench/gen_labelled.py "$work/auth.log" "$work/labels.jsonl" "$@"
echo "generated $(wc -l < "$work/auth.log") lines, $(wc -l < "$work/labels.jsonl") labelled sources" >&2

if [ -z "${RAVELIN:-}" ]; then
    cargo build --release >&2
    RAVELIN=$root/target/release/ravelin
fi

set -- "$work/auth.log" "$work/labels.jsonl" --ravelin "$RAVELIN" --workdir "$work/scratch" \
    --json-out "$work/scores.json"
[ -n "${CONFIG:-}" ] && set -- "$@" --config "$CONFIG"
python3 bench/detection_score.py "$@"
