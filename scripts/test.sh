#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine: installs what the tests use from
# Debian's packages, then runs the CI gates (fmt, clippy, tests). Run as root (the tests make
# network namespaces and drive real nftables).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
command -v ssh >/dev/null || need+=(openssh-client)
# A real sshd for the firewall and audit tests (started by the tests on their own ports).
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# The decoy is attacked by real tools: sshpass (OpenSSH logins), hydra, ssh-audit.
command -v sshpass >/dev/null || need+=(sshpass)
command -v hydra >/dev/null || need+=(hydra)
command -v ssh-audit >/dev/null || need+=(ssh-audit)
# A local SMTP server and a throwaway CA for the alert tests.
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
command -v openssl >/dev/null || need+=(openssl)
# `ravelin top` is tested in a real terminal.
command -v tmux >/dev/null || need+=(tmux)
# The HTML review is opened in headless Chromium.
command -v chromium >/dev/null || need+=(chromium)
command -v python3 >/dev/null || need+=(python3)
# fail2ban: its sample sshd logs are read by the matcher tests (never copied into the repo).
[ -d /usr/lib/python3/dist-packages/fail2ban/tests/files/logs ] || need+=(fail2ban)
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Install services without starting them (no sshd on port 22, no fail2ban server). Some
    # images already ship a policy-rc.d that does this; leave theirs alone.
    made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    if [ -n "$made_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
fi
# fail2ban's package starts no service here (no systemd), but make sure none is running.
pkill -x fail2ban-server 2>/dev/null || true

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
echo "== cargo test"
log=$(mktemp)
set +e
cargo test --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one summary per test binary, the last
# being the doc tests).
passed=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed.*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(sed -n 's/^test result: .* \([0-9]*\) failed.*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')
rm -f "$log"
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
exit "$status"
