#!/usr/bin/env python3
"""Score ravelin, fail2ban and CrowdSec on one labelled auth.log (detection benchmark).

Usage: detection_score.py LOG LABELS --ravelin BIN [--config F] [--ravelin-json FILE]
                          [--only ravelin,fail2ban,crowdsec] [--json-out FILE]

LOG and LABELS come from bench/gen_labelled.py. Each system turns the log into ban intervals
(target address or CIDR, from, until), all in log time:

  ravelin   `BIN simulate LOG --json [--config F]`: one JSON object per decision
            ({"time", "action": "ban"|"unban", "target", "duration_s", "jail", "detector"});
            a ban lasts duration_s (null: for ever) or until an unban of the same target.
            `--ravelin-json FILE` reads that output from a file instead of running BIN.
  fail2ban  the default sshd jail of fail2ban 1.0.2 (maxretry 5, findtime 10m, bantime 10m,
            stock filter /etc/fail2ban/filter.d/sshd.conf, mode normal, no bantime.increment):
            `fail2ban-regex -o row` lists every failure the filter counts (address, time), and
            FailManager's own arithmetic is replayed on them: a failure adds 1 to the address's
            ticket; FailTicket.adjustTime rescales the count when the ticket spans more than
            findtime; a ticket idle for findtime is dropped (FailManager.cleanup); count >=
            maxretry bans for bantime and deletes the ticket. Failures while the address is
            banned are skipped: the firewall would have dropped the connection, so sshd would
            never have written them.
  crowdsec  CrowdSec 1.4.6 (Debian) in replay mode (`crowdsec -dsn file://LOG -type syslog`)
            with the hub items the package ships in /usr/share/crowdsec/hub (parsers
            syslog-logs, sshd-logs, dateparse-enrich; scenarios ssh-bf and ssh-slow-bf with
            their user-enum variants), a private config, SQLite database and local API on
            127.0.0.1 in a temp dir (no Central API, nothing leaves the host), and the
            package's default profile (4h ban per alert). Ban intervals are read from its
            database: from the alert's stop (overflow) time until the decision's `until`.
            The replay still sees lines from banned addresses (it cannot drop them), so later
            alerts of an address may come sooner than on a live host.

Scores, per system and per class (an attempt is one connection; it is *dropped* when its start
time falls inside an active ban covering its address: an exact ban or a CIDR containing it):
  stopped     fast/slow/enumerator: the address was covered by a ban at some point; stop time
              is the first such ban. botnet: a ban on a prefix containing all its addresses
              was issued (stop time: that ban), or, from the first ban touching any of its
              addresses on, >= 95% of its attempts were dropped (stop time: that first ban).
  before      median number of attempts a stopped source made before its stop time.
  dropped     share of the class's attempts that were dropped.
  legit/admin sources with any ban covering them at any time (target 0), and logins dropped.
"""

import argparse
import bisect
import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ATTACK_CLASSES = ["fast", "slow", "botnet", "enumerator"]
LEGIT_CLASSES = ["legit", "admin"]
FOREVER = float("inf")
F2B_FILTER = "/etc/fail2ban/filter.d/sshd.conf"
F2B_MAXRETRY, F2B_FINDTIME, F2B_BANTIME = 5, 600, 600
CS_HUB = "/usr/share/crowdsec/hub"
CS_ITEMS = ["parsers/s00-raw/crowdsecurity/syslog-logs.yaml",
            "parsers/s01-parse/crowdsecurity/sshd-logs.yaml",
            "parsers/s02-enrich/crowdsecurity/dateparse-enrich.yaml",
            "scenarios/crowdsecurity/ssh-bf.yaml",
            "scenarios/crowdsecurity/ssh-slow-bf.yaml"]


class SystemFailed(Exception):
    """A system could not be run; its row says why instead of showing figures."""


def utc_env():
    env = dict(os.environ)
    env["TZ"] = "UTC"  # the generator writes UTC stamps; every tool must read them as UTC
    return env


# ---------------------------------------------------------------------------- ravelin

def ravelin_bans(lines):
    """Ban intervals from `simulate --json` output lines."""
    bans, open_by_target = [], {}
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
            t = dt.datetime.fromisoformat(d["time"].replace("Z", "+00:00")).timestamp()
            net = ipaddress.ip_network(d["target"], strict=False)
            action = d["action"]
        except (ValueError, KeyError, TypeError) as e:
            raise SystemFailed(f"simulate output line {n} is not a decision object ({e}): {line[:120]}")
        if action == "ban":
            dur = d.get("duration_s")
            ban = [t, FOREVER if dur is None else t + float(dur), net, d.get("detector") or d.get("jail") or ""]
            bans.append(ban)
            open_by_target.setdefault(net, []).append(ban)
        elif action == "unban":
            for ban in open_by_target.pop(net, []):
                ban[1] = min(ban[1], t)
        else:
            raise SystemFailed(f"simulate output line {n}: unknown action {action!r}")
    return [tuple(b) for b in bans]


def run_ravelin(binary, log, config):
    if not binary:
        raise SystemFailed("no --ravelin BIN given")
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)) and not shutil.which(binary):
        raise SystemFailed(f"{binary} not found or not executable (build it: cargo build --release)")
    cmd = [binary, "simulate", log, "--json"] + (["--config", config] if config else [])
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=utc_env())
    except OSError as e:
        raise SystemFailed(f"cannot run {binary}: {e}")
    if p.returncode != 0:
        lines = [x.strip() for x in p.stderr.splitlines() if x.strip()] or ["(no message)"]
        panic = [i for i, x in enumerate(lines) if "panicked at" in x]
        errors = [x for x in lines if x.lower().startswith("error")]
        err = " ".join(lines[panic[0]:panic[0] + 2]) if panic else errors[0] if errors else lines[-1]
        raise SystemFailed(f"`{os.path.basename(binary)} simulate LOG --json` exited {p.returncode}: {err[:240]}")
    return ravelin_bans(p.stdout.splitlines())


# ---------------------------------------------------------------------------- fail2ban

def fail2ban_failures(log):
    """(time, address) of every failure the stock sshd filter counts, from fail2ban-regex."""
    exe = shutil.which("fail2ban-regex")
    if not exe:
        raise SystemFailed("fail2ban-regex not found (apt-get install fail2ban)")
    if not os.path.exists(F2B_FILTER):
        raise SystemFailed(f"{F2B_FILTER} missing")
    p = subprocess.run([exe, "-o", "row", log, F2B_FILTER], capture_output=True, text=True, env=utc_env())
    if p.returncode != 0:
        raise SystemFailed(f"fail2ban-regex exited {p.returncode}: {p.stderr.strip()[-200:]}")
    out = []
    for line in p.stdout.splitlines():
        # ['203.0.113.5',\t1794636133.0,\t{...}],
        if not line.startswith("['"):
            continue
        q = line.index("'", 2)
        ip = line[2:q]
        rest = line[q + 2:].lstrip()
        t = float(rest[:rest.index(",")])
        if "'nofail': True" in line:
            continue
        out.append((t, ip))
    out.sort()
    return out


def fail2ban_replay(failures, maxretry=F2B_MAXRETRY, findtime=F2B_FINDTIME, bantime=F2B_BANTIME):
    """FailManager/FailTicket arithmetic of fail2ban 1.0.2 over (time, address) failures."""
    tickets, banned_until, bans = {}, {}, []
    for t, ip in failures:
        if t < banned_until.get(ip, -1):
            continue  # dropped by the firewall: never logged on a live host
        tk = tickets.get(ip)
        if tk is not None and tk[2] <= t - findtime:
            tk = None  # FailManager.cleanup: ticket idle for findtime
        if tk is None:
            tk = [1, t, t]  # retry, first time, last time
        else:
            if t > tk[2]:  # FailTicket.adjustTime
                if tk[1] < t - findtime:
                    tk[0] = int(round(tk[0] / float(t - tk[1]) * findtime))
                    tk[1] = t - findtime
                tk[2] = t
            tk[0] += 1
        tickets[ip] = tk
        if tk[0] >= maxretry:
            del tickets[ip]
            banned_until[ip] = t + bantime
            bans.append((t, t + bantime, ipaddress.ip_network(ip), "sshd"))
    return bans


def run_fail2ban(log):
    return fail2ban_replay(fail2ban_failures(log))


# ---------------------------------------------------------------------------- crowdsec

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_crowdsec(log, workdir):
    for exe in ("crowdsec", "cscli"):
        if not shutil.which(exe):
            raise SystemFailed(f"{exe} not found (apt-get install crowdsec)")
    for item in CS_ITEMS:
        if not os.path.exists(os.path.join(CS_HUB, item)):
            raise SystemFailed(f"hub item {item} not shipped under {CS_HUB}")
    root = os.path.join(workdir, "crowdsec")
    shutil.rmtree(root, ignore_errors=True)
    etc = os.path.join(root, "etc")
    for item in CS_ITEMS:
        parts = item.split("/")
        dest = os.path.join(etc, *parts[:-2]) if parts[0] == "parsers" else os.path.join(etc, parts[0])
        os.makedirs(dest, exist_ok=True)
        shutil.copy(os.path.join(CS_HUB, item), dest)
    os.symlink("/etc/crowdsec/patterns", os.path.join(etc, "patterns"))
    os.makedirs(os.path.join(root, "data"))
    with open(os.path.join(etc, "simulation.yaml"), "w") as f:
        f.write("simulation: false\n")
    open(os.path.join(etc, "acquis.yaml"), "w").close()
    with open(os.path.join(etc, "profiles.yaml"), "w") as f:
        f.write(open("/etc/crowdsec/profiles.yaml").read() if os.path.exists("/etc/crowdsec/profiles.yaml") else
                'name: default_ip_remediation\nfilters:\n - Alert.Remediation == true && Alert.GetScope() == "Ip"\n'
                'decisions:\n - type: ban\n   duration: 4h\non_success: break\n')
    db = os.path.join(root, "data", "crowdsec.db")
    creds = os.path.join(root, "creds.yaml")
    cfg = os.path.join(root, "config.yaml")
    with open(cfg, "w") as f:
        f.write(f"""common:
  daemonize: false
  log_media: file
  log_dir: {root}/
  log_level: info
  working_dir: .
config_paths:
  config_dir: {etc}/
  data_dir: {root}/data/
  simulation_path: {etc}/simulation.yaml
  hub_dir: {CS_HUB}/
  index_path: {CS_HUB}/.index.json
crowdsec_service:
  acquisition_path: {etc}/acquis.yaml
  parser_routines: 1
  buckets_routines: 1
  output_routines: 1
prometheus:
  enabled: false
db_config:
  type: sqlite
  db_path: {db}
  use_wal: true
api:
  client:
    credentials_path: {creds}
  server:
    log_level: info
    listen_uri: 127.0.0.1:{free_port()}
    profiles_path: {etc}/profiles.yaml
""")
    env = utc_env()
    p = subprocess.run(["cscli", "-c", cfg, "machines", "add", "bench", "--password", "bench-replay-only",
                        "-f", creds], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemFailed(f"cscli machines add failed: {p.stderr.strip()[-200:]}")
    p = subprocess.run(["crowdsec", "-c", cfg, "-dsn", "file://" + os.path.abspath(log), "-type", "syslog",
                        "-no-capi"], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        tail = ""
        try:
            tail = open(os.path.join(root, "crowdsec.log")).read().strip().splitlines()[-1]
        except OSError:
            pass
        raise SystemFailed(f"crowdsec replay exited {p.returncode}: {(p.stderr.strip() or tail)[-200:]}")
    con = sqlite3.connect(db)
    rows = con.execute("select d.value, d.scope, a.stopped_at, d.until, d.scenario from decisions d "
                       "join alerts a on d.alert_decisions = a.id where d.type = 'ban'").fetchall()

    def ts(s):
        return dt.datetime.fromisoformat(s.replace(" ", "T")).timestamp()

    CS_REAL_ALERTS[:] = [(ts(stop), str(ipaddress.ip_address(v)), sc) for sc, v, stop in
                         con.execute("select scenario, source_value, stopped_at from alerts where source_scope = 'Ip'")]
    con.close()

    bans = []
    for value, scope, start, until, scenario in rows:
        if scope.lower() not in ("ip", "range"):
            continue
        bans.append((ts(start), ts(until), ipaddress.ip_network(value, strict=False), scenario))
    return bans


# ------------------------------------------------------- crowdsec, closed loop (model)
#
# A replay cannot drop the lines of banned addresses, so the real replay above lets a banned
# source keep pouring into its buckets and re-trigger the moment its ban would end. On a live
# host those connections are dropped and never logged. The model below re-implements what the
# shipped hub items do (sshd-logs grok nodes in their order, then the four leaky buckets:
# token bucket starting full, capacity/leakspeed from the YAML, bucket expiry after
# (capacity+1) x leakspeed idle, `distinct` on target_user, 1m blackhole per bucket key, one
# 4h ban per alert from the default profile). Run open loop it must reproduce the real
# replay's alerts; run closed loop it skips the events of banned addresses.

_IP4 = r"(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
_IP = r"(?P<ip>[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*|" + _IP4 + ")"
_USER = r"[a-zA-Z0-9._-]+"
_SYSLOG = re.compile(r"^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) \S+ ([^\[: ]+)(?:\[\d+\])?: (.*)$")
_MONTHS = {m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                        "Sep", "Oct", "Nov", "Dec"], 1)}
# (regex, emits ssh_failed-auth) in the order of the nodes of crowdsecurity/sshd-logs
_CS_NODES = [(re.compile(x), fail) for x, fail in [
    (rf"Failed \w+ for (?P<user>{_USER}) from {_IP} port \d+ \w+", True),
    (rf"Disconnected from (?:authenticating|invalid) user (?P<user>{_USER}) {_IP} port \d+ \[preauth\]", True),
    (rf"Connection closed by (?:authenticating|invalid) user (?P<user>{_USER}) {_IP} port \d+ \[preauth\]", True),
    (rf"Disconnected from {_IP} port \d+", False),
    (rf"Bad protocol version identification '.*' from {_IP}", False),
    (rf"Invalid user\s*(?P<user>{_USER})? from {_IP}(?: port \d+)?", True),
    (rf"banner exchange: Connection from {_IP} port \d+: invalid format", True),
    (rf"Failed password for invalid user (?P<user>{_USER}) from {_IP} port \d+ \w+", True),
    (rf"pam_.*?\(sshd:auth\): authentication failure; logname= uid=\d*? euid=\d*? tty=ssh ruser= "
     rf"rhost={_IP}(?: \s*user=(?P<user>{_USER}))?", True),
    (rf"Magic value check failed \(\d+\) on obfuscated handshake from {_IP} port \d+", True),
]]
# (name, capacity, leakspeed s, distinct users) from the shipped ssh-bf.yaml / ssh-slow-bf.yaml
CS_SCENARIOS = [("crowdsecurity/ssh-bf", 5, 10, False), ("crowdsecurity/ssh-bf_user-enum", 5, 10, True),
                ("crowdsecurity/ssh-slow-bf", 10, 60, False), ("crowdsecurity/ssh-slow-bf_user-enum", 10, 60, True)]
CS_BLACKHOLE, CS_BAN = 60, 4 * 3600
CS_REAL_ALERTS = []  # (time, address, scenario) of the last real replay, to validate the model


def crowdsec_events(log, year=2026):
    """(time, address, target user) of every ssh_failed-auth event the sshd-logs parser emits."""
    out = []
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _SYSLOG.match(line.rstrip("\n"))
            if not m or m.group(6) != "sshd":  # the parser's filter: evt.Parsed.program == 'sshd'
                continue
            msg = m.group(7)
            for rx, fail in _CS_NODES:
                hit = rx.search(msg)
                if hit:
                    if fail:
                        try:
                            ip = str(ipaddress.ip_address(hit.group("ip")))
                        except ValueError:
                            break
                        t = dt.datetime(year, _MONTHS[m.group(1)], int(m.group(2)), int(m.group(3)),
                                        int(m.group(4)), int(m.group(5)), tzinfo=dt.timezone.utc).timestamp()
                        user = hit.groupdict().get("user") or ""
                        out.append((t, ip, user))
                    break
    return out


def crowdsec_model(events, closed_loop):
    """Alerts (time, address, scenario) of the four ssh scenarios over the events."""
    buckets = {}  # (scenario, ip) -> [tokens, last_refill, last_pour, users]
    hole = {}  # (scenario, ip) -> blackholed until
    dying = {}  # (scenario, ip) -> time of its last overflow
    banned_until = {}
    alerts = []
    for t, ip, user in events:
        if closed_loop and t < banned_until.get(ip, -1):
            continue
        for name, cap, leak, distinct in CS_SCENARIOS:
            key = (name, ip)
            b = buckets.get(key)
            if b is None and dying.get(key) == t:
                continue  # poured into the bucket that just overflowed (it is still being torn down)
            if b is not None and t > b[2] + (cap + 1) * leak:
                b = None  # expired (underflow): a fresh bucket
            if b is None:
                b = buckets[key] = [float(cap), t, t, set()]
            if distinct:
                if user in b[3]:
                    continue
                b[3].add(user)
            b[0] = min(float(cap), b[0] + (t - b[1]) / leak)
            b[1] = b[2] = t
            if b[0] >= 1:
                b[0] -= 1
                continue
            del buckets[key]  # overflow destroys the bucket
            dying[key] = t
            if hole.get(key, -1) > t:
                continue  # blackholed: overflow discarded
            hole[key] = t + CS_BLACKHOLE
            alerts.append((t, ip, name))
            banned_until[ip] = max(banned_until.get(ip, -1), t + CS_BAN)
    return alerts


def match_alerts(model, real, tolerance):
    """How many real alerts have a model alert (same address and scenario) within tolerance s."""
    pools = {}
    for t, ip, name in model:
        pools.setdefault((ip, name), []).append(t)
    matched = 0
    for t, ip, name in sorted(real):
        pool = pools.get((ip, name), [])
        for j, u in enumerate(pool):
            if abs(u - t) <= tolerance:
                del pool[j]
                matched += 1
                break
    return matched


def crowdsec_model_bans(log, note):
    events = crowdsec_events(log)
    if CS_REAL_ALERTS:
        open_loop = crowdsec_model(events, closed_loop=False)
        n = len(CS_REAL_ALERTS)
        note.append(f"model check, open loop against the real replay: {len(open_loop)} model alerts vs {n} real; "
                    + ", ".join(f"{pct(match_alerts(open_loop, CS_REAL_ALERTS, tol), n)} of real alerts matched "
                                f"within {tol} s" for tol in (0, 5, 60)))
    return [(t, t + CS_BAN, ipaddress.ip_network(ip), name)
            for t, ip, name in crowdsec_model(events, closed_loop=True)]


# ---------------------------------------------------------------------------- scoring

class Coverage:
    """Ban intervals per address of interest (exact bans plus CIDR bans that contain it)."""

    def __init__(self, bans, addresses):
        self.by_addr = {a: [] for a in addresses}
        exact = {}
        prefixes = []
        for b in bans:
            net = b[2]
            if net.prefixlen == net.max_prefixlen:
                exact.setdefault(net.network_address, []).append(b)
            else:
                prefixes.append(b)
        for a in addresses:
            iv = list(exact.get(a, []))
            iv += [b for b in prefixes if b[2].version == a.version and a in b[2]]
            iv.sort(key=lambda b: b[0])
            self.by_addr[a] = iv
        self.prefix_bans = prefixes

    def first_ban(self, a):
        iv = self.by_addr[a]
        return iv[0][0] if iv else None

    def dropped(self, a, t):
        iv = self.by_addr[a]
        k = bisect.bisect_right([b[0] for b in iv], t)
        return any(b[1] > t for b in iv[:k])


def load_labels(path):
    sources = []
    with open(path) as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                d["addresses"] = [ipaddress.ip_address(x) for x in d["addresses"]]
                d["starts"] = [(t, d["addresses"][i]) for t, i in d["starts"]]
                sources.append(d)
    return sources


def score(sources, bans):
    addrs = {a for s in sources for a in s["addresses"]}
    cov = Coverage(bans, addrs)
    res = {"bans": len(bans), "prefix_bans": len(cov.prefix_bans), "classes": {}}
    all_att = all_drop = 0
    for cls in ATTACK_CLASSES + LEGIT_CLASSES:
        srcs = [s for s in sources if s["class"] == cls]
        if not srcs:
            continue
        r = {"sources": len(srcs), "stopped": 0, "before": [], "attempts": 0, "dropped": 0,
             "banned": 0, "addr_total": 0, "addr_covered": 0, "prefix_banned": 0}
        for s in srcs:
            drops = [cov.dropped(a, t) for t, a in s["starts"]]
            r["attempts"] += len(drops)
            r["dropped"] += sum(drops)
            firsts = [f for f in (cov.first_ban(a) for a in s["addresses"]) if f is not None]
            r["addr_total"] += len(s["addresses"])
            r["addr_covered"] += len(firsts)
            if firsts:
                r["banned"] += 1
            stop = None
            if cls == "botnet":
                whole = [b[0] for b in cov.prefix_bans
                         if all(a.version == b[2].version and a in b[2] for a in s["addresses"])]
                if whole:
                    stop = min(whole)
                    r["prefix_banned"] += 1
                elif firsts:
                    t1 = min(firsts)
                    later = [d for (t, _), d in zip(s["starts"], drops) if t >= t1]
                    if later and sum(later) >= 0.95 * len(later):
                        stop = t1
            elif firsts:
                stop = min(firsts)
            if stop is not None:
                r["stopped"] += 1
                r["before"].append(sum(1 for t, _ in s["starts"] if t < stop))
        if cls in ATTACK_CLASSES:
            all_att += r["attempts"]
            all_drop += r["dropped"]
        res["classes"][cls] = r
    res["attack_attempts"] = all_att
    res["attack_dropped"] = all_drop
    return res


def pct(a, b):
    return f"{100.0 * a / b:.1f}%" if b else "n/a"


def med(xs):
    return f"{statistics.median(xs):g}" if xs else "–"


def system_table(name, res):
    out = [f"### {name}", ""]
    if "error" in res:
        return out + [f"**not run:** {res['error']}", ""]
    out += [f"{res['bans']} ban decisions ({res['prefix_bans']} on prefixes), {res['seconds']:.1f} s."]
    out += [f"{n}." for n in res.get("notes", [])]
    out += ["",
            "| class | sources | stopped | median attempts before stop | attempts | dropped (after ban) | addresses ever banned |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for cls in ATTACK_CLASSES:
        r = res["classes"].get(cls)
        if r:
            out.append(f"| {cls} | {r['sources']} | {r['stopped']} ({pct(r['stopped'], r['sources'])}) | "
                       f"{med(r['before'])} | {r['attempts']} | {r['dropped']} ({pct(r['dropped'], r['attempts'])}) | "
                       f"{r['addr_covered']}/{r['addr_total']} |")
    out.append(f"| **all attacks** | | | | {res['attack_attempts']} | {res['attack_dropped']} "
               f"({pct(res['attack_dropped'], res['attack_attempts'])}) | |")
    for cls in LEGIT_CLASSES:
        r = res["classes"].get(cls)
        if r:
            out.append(f"| {cls} (must be 0) | {r['sources']} | banned: **{r['banned']}** | | "
                       f"{r['attempts']} logins | {r['dropped']} blocked | |")
    return out + [""]


def summary_table(results):
    names = list(results)
    out = ["### Side by side", "", "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]

    def row(label, f):
        cells = []
        for n in names:
            res = results[n]
            cells.append("not run" if "error" in res else f(res))
        out.append(f"| {label} | " + " | ".join(cells) + " |")

    for cls in ATTACK_CLASSES:
        row(f"{cls}: sources stopped", lambda r, c=cls: pct(r["classes"][c]["stopped"], r["classes"][c]["sources"])
            if c in r["classes"] else "n/a")
        row(f"{cls}: median attempts before stop", lambda r, c=cls: med(r["classes"][c]["before"])
            if c in r["classes"] else "n/a")
    row("botnet: prefixes banned", lambda r: f"{r['classes']['botnet']['prefix_banned']}/{r['classes']['botnet']['sources']}"
        if "botnet" in r["classes"] else "n/a")
    row("attack attempts dropped (after ban)", lambda r: pct(r["attack_dropped"], r["attack_attempts"]))
    row("legitimate sources banned (target 0)", lambda r: str(sum(r["classes"][c]["banned"] for c in LEGIT_CLASSES
                                                                  if c in r["classes"])))
    row("ban decisions", lambda r: str(r["bans"]))
    return out + [""]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log")
    ap.add_argument("labels")
    ap.add_argument("--ravelin", metavar="BIN", help="ravelin binary (runs `BIN simulate LOG --json`)")
    ap.add_argument("--config", metavar="F", help="ravelin config file (default: its built-in default)")
    ap.add_argument("--ravelin-json", metavar="FILE", help="read ravelin's simulate --json output from FILE")
    ap.add_argument("--only", default="ravelin,fail2ban,crowdsec,crowdsec-closed",
                    help="comma-separated systems to run (crowdsec-closed is validated against crowdsec when "
                         "both run, in that order)")
    ap.add_argument("--workdir", help="scratch directory (default: a temp dir, removed afterwards)")
    ap.add_argument("--json-out", metavar="FILE", help="also write the raw scores as JSON")
    a = ap.parse_args()

    sources = load_labels(a.labels)
    work = a.workdir or tempfile.mkdtemp(prefix="ravelin-detect-")
    runners = {
        "ravelin": lambda: ravelin_bans(open(a.ravelin_json).read().splitlines()) if a.ravelin_json
        else run_ravelin(a.ravelin, a.log, a.config),
        "fail2ban": lambda: run_fail2ban(a.log),
        "crowdsec": lambda: run_crowdsec(a.log, work),
        "crowdsec-closed": lambda: crowdsec_model_bans(a.log, notes["crowdsec-closed"]),
    }
    notes = {name: [] for name in runners}
    titles = {"ravelin": "ravelin (simulate, " + (a.config or "default config") + ")",
              "fail2ban": "fail2ban 1.0.2 sshd jail (5 in 10m, ban 10m), replayed from fail2ban-regex",
              "crowdsec": "crowdsec 1.4.6 replay (ssh-bf + ssh-slow-bf, 4h bans; open loop)",
              "crowdsec-closed": "crowdsec 1.4.6 scenarios, closed loop (simulated: model of its parser and buckets)"}
    results = {}
    try:
        for name in a.only.split(","):
            name = name.strip()
            if name not in runners:
                ap.error(f"unknown system {name!r}")
            t0 = time.monotonic()
            try:
                bans = runners[name]()
                res = score(sources, bans)
                res["seconds"] = time.monotonic() - t0
                res["notes"] = notes[name]
            except SystemFailed as e:
                print(f"{name}: not run: {e}", file=sys.stderr)
                res = {"error": str(e)}
            results[name] = res
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)

    counts = {c: sum(1 for s in sources if s["class"] == c) for c in ATTACK_CLASSES + LEGIT_CLASSES}
    print(f"## Detection benchmark: {os.path.basename(a.log)}\n")
    print("sources: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + "\n")
    for name, res in results.items():
        print("\n".join(system_table(titles[name], res)))
    print("\n".join(summary_table({n: results[n] for n in results})))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
