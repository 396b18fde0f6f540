#!/usr/bin/env python3
"""Generate a realistic, deterministic auth.log for the matcher benchmark.

Usage: gen_authlog.py OUTPUT [LINES] [--seed N]

Same seed and line count -> byte-identical file. The log spans ~29 days ending
2026-11-21 with RFC 3164 stamps in order. About 59% of lines are sshd attack lines in the
shapes OpenSSH 7.x-10.x writes (as `sshd`, `sshd-session` and `sshd-auth`): password and
publickey brute force, invalid users, PAM failures, preauth closes/resets/disconnects,
scanners (no identification, bad banners, unable to negotiate), too-many-failures and
max-attempts. Attacking addresses (~29k, ~2.2k of them IPv6) follow a heavy-tailed
(Zipf-like) distribution, every address appearing at least once. About 40% of lines are
cron/sudo/systemd-logind noise, and a few admins log in successfully.

Everything here is written for ravelin; no line is copied from other projects' samples.
"""

import argparse
import bisect
import itertools
import random
import time

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
HOST = "web1"
USERS = ["admin", "test", "user", "ubuntu", "oracle", "postgres", "git", "ftpuser", "guest",
         "pi", "support", "deploy", "jenkins", "hadoop", "nagios", "dev", "www", "mysql",
         "minecraft", "steam", "ansible", "tomcat", "elastic", "ec2-user", "centos", "debian",
         "ftp", "backup", "运维", "a" * 40, ""]
CLIENT_BANNERS = ["GET / HTTP/1.1", "\\026\\003\\001", "SSH-2.0-Go", "MGLNDD_198.51.100.1_22",
                  "HEAD / HTTP/1.0", "\\000\\000"]
ADMINS = ["192.0.2.10", "192.0.2.11", "2001:db8:aa::10"]


def make_addresses(rng, n_v4, n_v6):
    """Distinct attacker addresses; some clustered in shared /24s and /64s."""
    seen = set()
    v4 = []
    prefixes = [(rng.randrange(1, 224), rng.randrange(256), rng.randrange(256)) for _ in range(400)]
    while len(v4) < n_v4:
        if rng.random() < 0.4:
            a, b, c = rng.choice(prefixes)
        else:
            a, b, c = rng.randrange(1, 224), rng.randrange(256), rng.randrange(256)
        if a in (10, 127, 192) or a >= 224:
            continue
        s = f"{a}.{b}.{c}.{rng.randrange(1, 255)}"
        if s not in seen:
            seen.add(s)
            v4.append(s)
    v6 = []
    nets = [f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}" for _ in range(300)]
    while len(v6) < n_v6:
        net = rng.choice(nets) if rng.random() < 0.5 else \
            f"2a0{rng.randrange(10)}:{rng.randrange(65536):x}:{rng.randrange(65536):x}:{rng.randrange(65536):x}"
        s = f"{net}::{rng.randrange(1, 65536):x}"
        if s not in seen:
            seen.add(s)
            v6.append(s)
    addrs = v4 + v6
    rng.shuffle(addrs)
    return addrs


class Log:
    def __init__(self, rng, out, total, start, span):
        self.rng, self.out, self.total = rng, out, total
        self.n = 0
        self.t = float(start)
        self.step = span / total
        self.pid = 1000
        self.buf = []

    def full(self):
        return self.n >= self.total

    def stamp(self):
        tm = time.gmtime(int(self.t))
        return f"{MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"

    def emit(self, tag, msg):
        if self.n >= self.total:
            return
        self.t += self.rng.expovariate(1.0 / self.step)
        self.buf.append(f"{self.stamp()} {HOST} {tag}: {msg}\n")
        self.n += 1
        if len(self.buf) >= 8192:
            self.flush()

    def flush(self):
        self.out.write("".join(self.buf))
        self.buf.clear()

    def newpid(self):
        self.pid = 1000 + (self.pid + self.rng.randrange(1, 97) - 1000) % 4_000_000
        return self.pid


def sshd_tag(rng, pid):
    r = rng.random()
    prog = "sshd" if r < 0.70 else ("sshd-session" if r < 0.95 else "sshd-auth")
    return f"{prog}[{pid}]"


def attack(log, rng, addr):
    """One attack session from `addr`."""
    pid = log.newpid()
    tag = sshd_tag(rng, pid)
    port = rng.randrange(1024, 65536)
    user = rng.choice(USERS)
    kind = rng.random()
    e = log.emit
    if kind < 0.36:  # invalid-user password guessing
        e(tag, f"Invalid user {user} from {addr} port {port}")
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            e(tag, f"pam_unix(sshd:auth): check pass; user unknown")
            e(tag, f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}")
            e(tag, f"Failed password for invalid user {user} from {addr} port {port} ssh2")
        if rng.random() < 0.6:
            e(tag, f"Received disconnect from {addr} port {port}:11: Bye Bye [preauth]")
            e(tag, f"Disconnected from invalid user {user} {addr} port {port} [preauth]")
        else:
            e(tag, f"Connection closed by invalid user {user} {addr} port {port} [preauth]")
    elif kind < 0.62:  # root / existing-user guessing
        u = rng.choice(["root", "root", "root", "www-data"])
        tries = rng.choice([1, 2, 3, 6])
        e(tag, f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}  user={u}")
        for _ in range(min(tries, 5)):
            e(tag, f"Failed password for {u} from {addr} port {port} ssh2")
        if tries >= 6:
            e(tag, f"error: maximum authentication attempts exceeded for {u} from {addr} port {port} ssh2 [preauth]")
            e(tag, f"Disconnecting authenticating user {u} {addr} port {port}: Too many authentication failures [preauth]")
            e(tag, f"PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}  user={u}")
        elif rng.random() < 0.5:
            e(tag, f"Connection closed by authenticating user {u} {addr} port {port} [preauth]")
        else:
            e(tag, f"Received disconnect from {addr} port {port}:11: Bye Bye [preauth]")
            e(tag, f"Disconnected from authenticating user {u} {addr} port {port} [preauth]")
    elif kind < 0.70:  # publickey probing
        fp = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(43))
        e(tag, f"Invalid user {user} from {addr} port {port}")
        e(tag, f"Failed publickey for invalid user {user} from {addr} port {port} ssh2: RSA SHA256:{fp}")
        e(tag, f"Connection reset by invalid user {user} {addr} port {port} [preauth]")
    elif kind < 0.80:  # banner grabbers / scanners
        r = rng.random()
        if r < 0.35:
            e(tag, f"Did not receive identification string from {addr} port {port}")
        elif r < 0.55:
            e(tag, f"error: kex_exchange_identification: Connection closed by remote host")
            e(tag, f"Connection closed by {addr} port {port}")
        elif r < 0.75:
            e(tag, f"banner exchange: Connection from {addr} port {port}: invalid format")
        else:
            e(tag, f"Bad protocol version identification '{rng.choice(CLIENT_BANNERS)}' from {addr} port {port}")
    elif kind < 0.88:  # old clients
        what = rng.choice(["key exchange method", "host key type", "cipher", "MAC"])
        offer = rng.choice(["diffie-hellman-group1-sha1,diffie-hellman-group14-sha1", "ssh-rsa,ssh-dss", "aes128-cbc,3des-cbc"])
        e(tag, f"Unable to negotiate with {addr} port {port}: no matching {what} found. Their offer: {offer} [preauth]")
    elif kind < 0.94:  # quick preauth closes
        r = rng.random()
        if r < 0.5:
            e(tag, f"Connection closed by {addr} port {port} [preauth]")
        elif r < 0.8:
            e(tag, f"Connection reset by {addr} port {port} [preauth]")
        else:
            e(tag, f"Disconnected from {addr} port {port} [preauth]")
    elif kind < 0.97:  # keyboard-interactive
        e(tag, f"Invalid user {user} from {addr} port {port}")
        e(tag, f"Failed keyboard-interactive/pam for invalid user {user} from {addr} port {port} ssh2")
        e(tag, f"Received disconnect from {addr} port {port}:11: Normal Shutdown, Thank you for playing [preauth]")
    else:  # policy refusals
        e(tag, f"User {rng.choice(['root', 'bin', 'daemon'])} from {addr} not allowed because not listed in AllowUsers")
        e(tag, f"Connection closed by {addr} port {port} [preauth]")


def admin_login(log, rng):
    pid = log.newpid()
    tag = f"sshd[{pid}]"
    addr = rng.choice(ADMINS)
    port = rng.randrange(1024, 65536)
    user = rng.choice(["alice", "bob"])
    log.emit(tag, f"Accepted publickey for {user} from {addr} port {port} ssh2: ED25519 SHA256:mBq7Ue1CqYdN4xM2kI9yR0bZ3v8pWfT6hJ5sLcA1oGw")
    log.emit(tag, f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)")
    sid = rng.randrange(1, 99999)
    log.emit("systemd-logind[512]", f"New session {sid} of user {user}.")
    log.emit(tag, f"Received disconnect from {addr} port {port}:11: disconnected by user")
    log.emit(tag, f"Disconnected from user {user} {addr} port {port}")
    log.emit(tag, f"pam_unix(sshd:session): session closed for user {user}")
    log.emit("systemd-logind[512]", f"Session {sid} logged out. Waiting for processes to exit.")
    log.emit("systemd-logind[512]", f"Removed session {sid}.")


def noise(log, rng):
    r = rng.random()
    pid = log.newpid()
    if r < 0.70:
        tag = f"CRON[{pid}]"
        user = rng.choice(["root", "root", "www-data", "backup"])
        log.emit(tag, f"pam_unix(cron:session): session opened for user {user}(uid=0) by (uid=0)")
        log.emit(tag, f"pam_unix(cron:session): session closed for user {user}")
    elif r < 0.90:
        user = rng.choice(["alice", "bob"])
        cmd = rng.choice(["/usr/bin/apt update", "/usr/bin/systemctl restart nginx", "/usr/bin/journalctl -f", "/usr/bin/true"])
        log.emit("sudo", f"   {user} : TTY=pts/{rng.randrange(4)} ; PWD=/home/{user} ; USER=root ; COMMAND={cmd}")
        log.emit(f"sudo[{pid}]", f"pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid=1000)")
        log.emit(f"sudo[{pid}]", "pam_unix(sudo:session): session closed for user root")
    else:
        sid = rng.randrange(1, 99999)
        log.emit("systemd-logind[512]", f"New session c{sid} of user gdm.")
        log.emit("systemd-logind[512]", f"Removed session c{sid}.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output")
    ap.add_argument("lines", nargs="?", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=20261121)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    scale = a.lines / 1_000_000
    n_v6 = max(1, round(2200 * scale))
    n_v4 = max(1, round(27200 * scale))
    addrs = make_addresses(rng, n_v4, n_v6)
    # Zipf-like weights: rank r gets 1/r^1.1; every address is also used once up front.
    cum = list(itertools.accumulate(1.0 / (r ** 1.1) for r in range(1, len(addrs) + 1)))
    first_use = list(addrs)
    rng.shuffle(first_use)
    end = 1795219200  # 2026-11-21T00:00:00Z
    span = 29 * 86400
    with open(a.output, "w", encoding="utf-8", newline="\n") as f:
        log = Log(rng, f, a.lines, end - span, span)
        while not log.full():
            r = rng.random()
            if r < 0.58:
                noise(log, rng)
            elif r < 0.585:
                admin_login(log, rng)
            else:
                if first_use and rng.random() < 0.4:
                    addr = first_use.pop()
                else:
                    addr = addrs[bisect.bisect_left(cum, rng.random() * cum[-1])]
                attack(log, rng, addr)
        log.flush()


if __name__ == "__main__":
    main()
