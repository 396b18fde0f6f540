#!/usr/bin/env python3
"""Build the starting corpora in fuzz/corpus/<target>/ from the repository's own fixtures.

Corpora are generated, never committed (fuzz/.gitignore). Run from anywhere:
    python3 fuzz/seed.py
Existing corpus files are kept (libFuzzer adds to the directory as it runs).
"""
import hashlib
import json
import pathlib
import re
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
FIX = ROOT / "tests" / "fixtures"


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = FUZZ / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


# Log lines: the sshd fixtures, plus the header shapes the unit tests cover.
for log in sorted((FIX / "sshd").glob("*.log")):
    for line in log.read_text(errors="replace").splitlines():
        if line.strip():
            put("matcher_line", line)
for line in [
    "<38>1 2019-07-08T17:40:16.954167-04:00 h.example.com sshd 57915 - - Failed password for root from 1.2.3.4 port 22 ssh2",
    '<38>1 2019-07-08T17:40:17Z h sshd 5 - [a b="[x]"][c@1 d="\\]"] Invalid user x from ::ffff:1.2.3.4 port 1',
    "<38>Nov 21 06:00:00 h sshd[1]: error: PAM: Authentication failure for root from 2001:db8::1",
    "Nov 21 06:00:00 h sshd[1]: [ID 800047 auth.info] Failed password for invalid user a from 1.2.3.4 port 2 ssh2",
    "2026-11-21T06:13:45.123456+01:00 host sshd-session[1]: Connection closed by authenticating user root 1.2.3.4 port 5 [preauth]",
    # the one rule with no example in the matcher's unit tests
    "Nov 21 06:13:45 host sshd[123]: Disconnecting invalid user admin 203.0.113.5 port 22: Change of username or service not allowed: (admin,ssh-connection) -> (root,ssh-connection) [preauth]",
]:
    put("matcher_line", line)

# Every (message, expectation) pair in the matcher's unit tests, so each rule's shape is in
# the corpus (rules are table-driven: coverage alone does not keep one input per rule).
matcher_tests = (ROOT / "src" / "matcher" / "tests.rs").read_text()
STR = r'"((?:[^"\\]|\\.)*)"'
for msg, _want in re.findall(r"\(\s*" + STR + r",\s*" + STR + r",?\s*\)", matcher_tests):
    msg = msg.encode().decode("unicode_escape")
    put("matcher_line", "Nov 21 06:13:45 host sshd[123]: " + msg)
    put("matcher_journal", bytes([5]) + struct.pack("<Q", 1795240933250117) + msg.encode() + b"\xffsshd")

# Journal JSON lines, and the same records laid out for matcher_journal.
jsonl = FIX / "journal" / "sshd.jsonl"
for line in jsonl.read_bytes().splitlines():
    if not line.strip():
        continue
    put("journal_json", line)
    try:
        e = json.loads(line)
    except ValueError:
        continue
    msg = e.get("MESSAGE")
    if not isinstance(msg, str):
        continue
    ident = e.get("SYSLOG_IDENTIFIER")
    unit = e.get("_SYSTEMD_UNIT")
    ts = e.get("__REALTIME_TIMESTAMP")
    flags = (1 if isinstance(ident, str) else 0) | (2 if isinstance(unit, str) else 0)
    head = bytes([flags])
    if isinstance(ts, str) and ts.isdigit():
        head = bytes([flags | 4]) + struct.pack("<Q", int(ts) % 2**64)
    put(
        "matcher_journal",
        head + b"\xff".join(x.encode() for x in [msg, ident or "", unit or ""]),
    )
for extra in [
    '{"MESSAGE":[70,97,105,108,101,100,32,112,97,115,115,119,111,114,100],"SYSLOG_IDENTIFIER":"sshd"}',
    '{"MESSAGE":["Invalid user a from 1.2.3.4 port 2","x"],"_SYSTEMD_UNIT":"ssh.service","__CURSOR":"s=1"}',
    '{"MESSAGE":null,"__REALTIME_TIMESTAMP":1795240933250117}',
]:
    put("journal_json", extra)

# Configs: the sample, and the TOML snippets in the config unit tests.
put("config", (ROOT / "docs" / "sample.toml").read_text())
tests = (ROOT / "src" / "config" / "tests.rs").read_text()
for snippet in re.findall(r'r#"(.*?)"#', tests, re.S):
    put("config", snippet)
for lit in re.findall(r'"((?:[^"\\\n]|\\.)*)"', tests):
    text = lit.encode().decode("unicode_escape")
    if "=" in text or "[" in text:
        put("config", text)

# Control requests: every command's wire form.
for req in [
    {"cmd": "status"},
    {"cmd": "bans"},
    {"cmd": "jails"},
    {"cmd": "metrics"},
    {"cmd": "ban", "target": "1.2.3.4", "seconds": 3600, "permanent": False, "reason": "r"},
    {"cmd": "ban", "target": "2001:db8::/64", "permanent": True},
    {"cmd": "explain", "target": "1.2.3.4"},
    {"cmd": "unban", "target": "10.0.0.0/8"},
]:
    put("control_request", json.dumps(req))

# Shell sessions: each attack-session fixture as one input (its lines run in order), each
# line alone, and the command lines quoted in the shell's unit tests.
SESSIONS = next(
    (d for d in [ROOT.parent / "shared" / "fixtures" / "attack-sessions",
                 pathlib.Path("/work/shared/fixtures/attack-sessions")] if d.is_dir()),
    None,
)
if SESSIONS:
    for f in sorted(SESSIONS.glob("*.txt")):
        lines = [l for l in f.read_text().splitlines() if l.strip() and not l.startswith("#")]
        put("shell", "\n".join(lines))
        for l in lines:
            put("shell", l)
shell_tests = (ROOT / "src" / "honeypot" / "shell.rs").read_text()
for lit in re.findall(r'sh\.run\("((?:[^"\\\n]|\\.)*)"\)', shell_tests):
    put("shell", lit.encode().decode("unicode_escape"))

for d in sorted((FUZZ / "corpus").iterdir()):
    print(f"{d.name}: {len(list(d.iterdir()))} seeds")
