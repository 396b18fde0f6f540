#!/usr/bin/env python3
"""Generate a deterministic, labelled auth.log for the detection benchmark.

Usage: gen_labelled.py OUT_LOG OUT_LABELS [--days 7] [--seed N] [--openssh 9.2|9.8]

Same arguments -> byte-identical files. The log covers DAYS days ending 2026-11-21 00:00 UTC,
RFC 3164 stamps (UTC) in time order, host `web1`. Each attempt is one SSH connection written
with the lines OpenSSH 9.x really writes for it (one pid per connection):

  invalid user, password: Invalid user / pam check pass; user unknown / pam authentication
                          failure / Failed password for invalid user ... / Connection closed
                          by invalid user ... [preauth] (or Received disconnect + Disconnected)
  valid user, password:   pam authentication failure ... user=U / Failed password for U ...
                          (x tries) / Connection closed by authenticating user ... [preauth]
  user probe (no auth):   Invalid user / Connection closed by invalid user ... [preauth]
  login:                  Accepted password|publickey / session opened / logind / ... closed

`--openssh 9.2` (default; Debian 12's OpenSSH) tags connection lines `sshd[pid]`; `--openssh
9.8` tags them `sshd-session[pid]` as OpenSSH 9.8+ does (the listener is still `sshd`).

Classes (one label line per source, JSON: source, class, addresses, attempts, where an
attempt is one connection; `starts` lists [start time in Unix seconds, index into addresses]
per connection):
  fast        brute forcers: 1-3 bursts of 20-80 connections, 2-15 s apart
  slow        low-and-slow: one connection every 3-30 min for 2-7 days
  botnet      a /24 or /64; each of its 20-60 addresses connects 1-3 times, over 6-48 h
  enumerator  one address, a new user name each time, every 5-15 min (at most 2 per 10 min)
  legit       users logging in 2-5 times a day, ~20% of logins preceded by a typo
              (Failed password, then Accepted password/publickey within a minute)
  admin       key logins from a fixed address 4-10 times a day
About 30% of lines are cron/sudo/systemd-logind noise.

Addresses: attackers come from public-looking IPv4 ranges plus 198.18.0.0/15 (benchmarking),
and IPv6 from 2001:db8::/32 (documentation) and public-looking 2a0x::/16 space; every
attacker sits in its own /24 or /64. Legitimate users and admins use 192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24 and 2001:db8:1::/48, which no attacker uses. No private
ranges. Everything is written for ravelin; no line is copied from other projects' samples.
"""

import argparse
import ipaddress
import json
import random
import time

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
HOST = "web1"
END = 1795219200  # 2026-11-21T00:00:00Z
# First octets that look like public unicast space (no private, loopback, multicast,
# CGNAT-only or documentation blocks); 192/198/203 are reserved for the legitimate side.
PUBLIC_V4_FIRST = [5, 23, 27, 31, 36, 37, 41, 43, 45, 46, 49, 58, 59, 60, 61, 77, 78, 79, 80,
                   81, 82, 83, 85, 87, 89, 91, 92, 93, 94, 95, 101, 103, 106, 109, 110, 111,
                   112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 139,
                   141, 143, 146, 147, 149, 151, 154, 157, 159, 161, 162, 164, 165, 167, 170,
                   171, 175, 176, 178, 179, 180, 181, 182, 183, 185, 186, 187, 188, 189, 190,
                   191, 193, 194, 195, 196, 197, 200, 201, 202, 210, 211, 212, 213, 217, 218,
                   219, 220, 221, 222]
DICTIONARY = ["admin", "test", "user", "ubuntu", "oracle", "postgres", "git", "ftpuser", "guest",
              "pi", "support", "deploy", "jenkins", "hadoop", "nagios", "dev", "www", "mysql",
              "minecraft", "steam", "ansible", "tomcat", "elastic", "ec2-user", "centos",
              "debian", "ftp", "backup", "server", "test1", "user1", "administrator", "demo",
              "operator", "webmaster", "sysadmin", "vagrant", "docker", "kafka", "redis",
              "odoo", "zabbix", "gitlab", "teamspeak", "csgo", "mongodb", "es", "apache",
              "nginx", "test2", "testuser", "student", "sales", "info", "office", "bitcoin",
              "sol", "solana", "validator", "node", "ethereum", "ubnt", "usuario", "manager"]
VALID_TARGETS = ["root", "root", "root", "root", "www-data", "alice", "bob"]
FP = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def stamp(t):
    tm = time.gmtime(int(t))
    return f"{MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"


class Out:
    """Collects (time, seq, line) and writes them in time order (stable for equal times)."""

    def __init__(self, rng, openssh):
        self.rng = rng
        self.rows = []
        self.seq = 0
        self.pid = 2000
        self.session_prog = "sshd" if openssh == "9.2" else "sshd-session"

    def add(self, t, tag, msg):
        self.seq += 1
        self.rows.append((int(t), self.seq, f"{HOST} {tag}: {msg}"))

    def newpid(self):
        self.pid = 2000 + (self.pid - 2000 + self.rng.randrange(1, 211)) % 4_000_000
        return self.pid

    def conn_tag(self):
        return f"{self.session_prog}[{self.newpid()}]"

    def write(self, path):
        self.rows.sort(key=lambda r: (r[0], r[1]))
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{stamp(t)} {line}\n" for t, _, line in self.rows)


def pam_fail(addr, user=None):
    base = f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}"
    return base + (f"  user={user}" if user else "")


def attempt_invalid(out, rng, t, addr, user, tries):
    """Password guessing for a user that does not exist."""
    tag, port = out.conn_tag(), rng.randrange(1024, 65536)
    out.add(t, tag, f"Invalid user {user} from {addr} port {port}")
    t += rng.randrange(0, 2)
    for _ in range(tries):
        out.add(t, tag, "pam_unix(sshd:auth): check pass; user unknown")
        out.add(t, tag, pam_fail(addr))
        t += rng.randrange(1, 4)
        out.add(t, tag, f"Failed password for invalid user {user} from {addr} port {port} ssh2")
    t += rng.randrange(0, 2)
    if rng.random() < 0.5:
        out.add(t, tag, f"Connection closed by invalid user {user} {addr} port {port} [preauth]")
    else:
        out.add(t, tag, f"Received disconnect from {addr} port {port}:11: Bye Bye [preauth]")
        out.add(t, tag, f"Disconnected from invalid user {user} {addr} port {port} [preauth]")


def attempt_valid(out, rng, t, addr, user, tries):
    """Password guessing for an existing account (root and friends)."""
    tag, port = out.conn_tag(), rng.randrange(1024, 65536)
    t += rng.randrange(0, 2)
    out.add(t, tag, pam_fail(addr, user))
    for i in range(tries):
        t += rng.randrange(1, 4)
        out.add(t, tag, f"Failed password for {user} from {addr} port {port} ssh2")
    t += rng.randrange(0, 2)
    if tries > 1:
        more = tries - 1
        s = "" if more == 1 else "s"
        out.add(t, tag, f"Connection closed by authenticating user {user} {addr} port {port} [preauth]")
        out.add(t, tag, f"PAM {more} more authentication failure{s}; logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}  user={user}")
    else:
        out.add(t, tag, f"Connection closed by authenticating user {user} {addr} port {port} [preauth]")


def attempt_probe(out, rng, t, addr, user):
    """User-name probe: the client stops after learning nothing (no password sent)."""
    tag, port = out.conn_tag(), rng.randrange(1024, 65536)
    out.add(t, tag, f"Invalid user {user} from {addr} port {port}")
    t += rng.randrange(0, 3)
    out.add(t, tag, f"Connection closed by invalid user {user} {addr} port {port} [preauth]")


def attack_attempt(out, rng, t, addr, tries=None):
    tries = tries or rng.choice([1, 1, 2, 3])
    if rng.random() < 0.55:
        attempt_invalid(out, rng, t, addr, rng.choice(DICTIONARY), tries)
    else:
        attempt_valid(out, rng, t, addr, rng.choice(VALID_TARGETS), tries)


def login(out, rng, t, addr, user, uid, method):
    """A successful login and, later, its logout."""
    tag, port = out.conn_tag(), rng.randrange(1024, 65536)
    _login_lines(out, rng, t, tag, port, addr, user, uid, method)


def _login_lines(out, rng, t, tag, port, addr, user, uid, method):
    if method == "publickey":
        fp = "".join(rng.choice(FP) for _ in range(43))
        out.add(t, tag, f"Accepted publickey for {user} from {addr} port {port} ssh2: ED25519 SHA256:{fp}")
    else:
        out.add(t, tag, f"Accepted password for {user} from {addr} port {port} ssh2")
    out.add(t, tag, f"pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)")
    sid = rng.randrange(1, 99999)
    out.add(t, "systemd-logind[512]", f"New session {sid} of user {user}.")
    t2 = t + rng.randrange(20, 4 * 3600)
    out.add(t2, tag, f"Received disconnect from {addr} port {port}:11: disconnected by user")
    out.add(t2, tag, f"Disconnected from user {user} {addr} port {port}")
    out.add(t2, tag, f"pam_unix(sshd:session): session closed for user {user}")
    out.add(t2, "systemd-logind[512]", f"Session {sid} logged out. Waiting for processes to exit.")
    out.add(t2 + 1, "systemd-logind[512]", f"Removed session {sid}.")


def typo_then_login(out, rng, t, addr, user, uid, typos):
    """A wrong password (or two), then success within a minute: in the same connection by
    password, or in a new connection by key (the user gives up and uses the agent)."""
    tag, port = out.conn_tag(), rng.randrange(1024, 65536)
    out.add(t, tag, pam_fail(addr, user))
    for _ in range(typos):
        t += rng.randrange(2, 5)
        out.add(t, tag, f"Failed password for {user} from {addr} port {port} ssh2")
        t += rng.randrange(4, 20)
    if rng.random() < 0.7:
        _login_lines(out, rng, t, tag, port, addr, user, uid, "password")
    else:
        out.add(t, tag, f"Connection closed by authenticating user {user} {addr} port {port} [preauth]")
        t += rng.randrange(3, 20)
        tag2, port2 = out.conn_tag(), rng.randrange(1024, 65536)
        _login_lines(out, rng, t, tag2, port2, addr, user, uid, "publickey")


def noise(out, rng, t):
    """Returns the number of lines written."""
    r = rng.random()
    pid = out.newpid()
    if r < 0.70:
        user = rng.choice(["root", "root", "www-data", "backup"])
        out.add(t, f"CRON[{pid}]", f"pam_unix(cron:session): session opened for user {user}(uid=0) by (uid=0)")
        out.add(t + rng.randrange(0, 3), f"CRON[{pid}]", f"pam_unix(cron:session): session closed for user {user}")
        return 2
    if r < 0.90:
        user = rng.choice(["alice", "bob"])
        cmd = rng.choice(["/usr/bin/apt update", "/usr/bin/systemctl restart nginx",
                          "/usr/bin/journalctl -f", "/usr/bin/true"])
        out.add(t, "sudo", f"   {user} : TTY=pts/{rng.randrange(4)} ; PWD=/home/{user} ; USER=root ; COMMAND={cmd}")
        out.add(t, f"sudo[{pid}]", f"pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid=1000)")
        out.add(t + rng.randrange(0, 30), f"sudo[{pid}]", "pam_unix(sudo:session): session closed for user root")
        return 3
    sid = rng.randrange(1, 99999)
    out.add(t, "systemd-logind[512]", f"New session c{sid} of user gdm.")
    out.add(t + rng.randrange(1, 60), "systemd-logind[512]", f"Removed session c{sid}.")
    return 2


class AddressPool:
    """Hands out attacker /24s and /64s, each used by one source only."""

    def __init__(self, rng):
        self.rng = rng
        self.used = set()

    def v4_net(self):
        while True:
            if self.rng.random() < 0.08:  # benchmarking range 198.18.0.0/15
                net = f"198.{self.rng.choice([18, 19])}.{self.rng.randrange(256)}"
            else:
                net = f"{self.rng.choice(PUBLIC_V4_FIRST)}.{self.rng.randrange(256)}.{self.rng.randrange(256)}"
            if net not in self.used:
                self.used.add(net)
                return net

    def v6_net(self):
        while True:
            if self.rng.random() < 0.5:
                hi = self.rng.randrange(2, 0x10000)  # 2001:db8:0:: and 2001:db8:1::/48 stay unused
                net = f"2001:db8:{hi:x}:{self.rng.randrange(0x10000):x}"
            else:
                net = f"2a0{self.rng.randrange(1, 10)}:{self.rng.randrange(0x10000):x}:{self.rng.randrange(0x10000):x}:{self.rng.randrange(0x10000):x}"
            if net not in self.used:
                self.used.add(net)
                return net

    def single(self, v6_share=0.15):
        if self.rng.random() < v6_share:
            return f"{self.v6_net()}::{self.rng.randrange(1, 0x10000):x}"
        return f"{self.v4_net()}.{self.rng.randrange(1, 255)}"


def canon(addr):
    return str(ipaddress.ip_address(addr))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_log")
    ap.add_argument("out_labels")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=20261121)
    ap.add_argument("--openssh", choices=["9.2", "9.8"], default="9.2",
                    help="9.2: connection lines tagged sshd[pid] (Debian 12); 9.8: sshd-session[pid]")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every class count (quick runs)")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    out = Out(rng, a.openssh)
    pool = AddressPool(rng)
    start = END - a.days * 86400
    day = 86400
    labels = []

    def n(count):
        return max(1, round(count * a.scale))

    def label(source, cls, addresses, starts):
        """`starts` holds (time, address) per connection; written as [time, address index]."""
        index = {x: i for i, x in enumerate(addresses)}
        labels.append({"source": source, "class": cls, "addresses": [canon(x) for x in addresses],
                       "attempts": len(starts),
                       "starts": sorted([int(t), index[x]] for t, x in starts)})

    # fast brute forcers
    for _ in range(n(200)):
        addr = pool.single()
        starts = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            t = rng.uniform(start, END - 3 * 3600)
            for _ in range(rng.randrange(20, 81)):
                starts.append((t, addr))
                attack_attempt(out, rng, t, addr)
                t += rng.uniform(2, 15)
        label(canon(addr), "fast", [addr], starts)

    # low-and-slow
    for _ in range(n(100)):
        addr = pool.single()
        t = rng.uniform(start, start + max(1, a.days - 2) * day)
        stop = min(END - 60, t + rng.uniform(2, 7) * day)
        base = rng.uniform(3, 30) * 60
        starts = []
        while t < stop:
            starts.append((t, addr))
            attack_attempt(out, rng, t, addr, tries=rng.choice([1, 1, 2]))
            t += min(30 * 60, max(3 * 60, base * rng.uniform(0.7, 1.3)))
        label(canon(addr), "slow", [addr], starts)

    # rotating botnets: half IPv4 /24, half IPv6 /64
    nb = n(20)
    for i in range(nb):
        v6 = i >= nb // 2
        net = pool.v6_net() if v6 else pool.v4_net()
        size = rng.randrange(20, 61)
        if v6:
            hosts = rng.sample(range(1, 0x10000), size)
            addrs = [f"{net}::{h:x}" for h in hosts]
            cidr = str(ipaddress.ip_network(f"{net}::/64"))
        else:
            hosts = rng.sample(range(1, 255), size)
            addrs = [f"{net}.{h}" for h in hosts]
            cidr = f"{net}.0/24"
        t0 = rng.uniform(start, END - 50 * 3600)
        span = rng.uniform(6, 48) * 3600
        starts = []
        for addr in addrs:
            t = t0 + rng.uniform(0, span)
            for _ in range(rng.randrange(1, 4)):
                starts.append((t, addr))
                attack_attempt(out, rng, t, addr, tries=rng.choice([1, 2, 3]))
                t += rng.uniform(60, 1200)
        label(cidr, "botnet", addrs, starts)

    # user-name enumerators
    for _ in range(n(30)):
        addr = pool.single()
        names = list(DICTIONARY)
        rng.shuffle(names)
        extra = [f"{rng.choice(DICTIONARY)}{k}" for k in range(200)]
        names += extra
        t = rng.uniform(start, END - 3 * day)
        starts = []
        for user in names[:rng.randrange(30, 151)]:
            starts.append((t, addr))
            if rng.random() < 0.5:
                attempt_probe(out, rng, t, addr, user)
            else:
                attempt_invalid(out, rng, t, addr, user, 1)
            t += rng.uniform(5, 15) * 60
        label(canon(addr), "enumerator", [addr], starts)

    # legitimate users (with typos) and admins
    legit_v4 = [f"{net}.{h}" for net in ("192.0.2", "198.51.100", "203.0.113") for h in range(20, 200)]
    rng.shuffle(legit_v4)
    for k in range(n(20)):
        addr = legit_v4.pop() if k % 4 else f"2001:db8:1:{k:x}::{rng.randrange(2, 0xffff):x}"
        user, uid = f"user{k:02d}", 1100 + k
        starts = []
        for d in range(a.days):
            for _ in range(rng.randrange(2, 6)):
                t = start + d * day + rng.uniform(7 * 3600, 23 * 3600)
                starts.append((t, addr))
                r = rng.random()
                if r < 0.2:
                    typo_then_login(out, rng, t, addr, user, uid, 2 if rng.random() < 0.15 else 1)
                else:
                    login(out, rng, t, addr, user, uid, "publickey" if r < 0.7 else "password")
        label(canon(addr), "legit", [addr], starts)
    for k, addr in enumerate(["192.0.2.10", "2001:db8:1:aa::10"][:n(2)]):
        user = ["alice", "bob"][k % 2]
        starts = []
        for d in range(a.days):
            for _ in range(rng.randrange(4, 11)):
                t = start + d * day + rng.uniform(0, day - 60)
                starts.append((t, addr))
                login(out, rng, t, addr, user, 1000 + k, "publickey")
        label(canon(addr), "admin", [addr], starts)

    # noise: ~30% of all lines
    target_noise = round(len(out.rows) * 0.30 / 0.70)
    written = 0
    while written < target_noise:
        written += noise(out, rng, rng.uniform(start, END - 60))

    out.write(a.out_log)
    with open(a.out_labels, "w", encoding="utf-8", newline="\n") as f:
        for lab in labels:
            f.write(json.dumps(lab, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
