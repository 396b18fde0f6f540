#!/usr/bin/env python3
"""Ban latency: failure line appended -> element present in the kernel set.

Side by side in one run, each tool in its own private network namespace with real nftables:
ravelin (release build) and fail2ban (Debian's package, stock sshd filter, nftables action).
The moment an element enters a set is taken from `nft monitor`, whose events are timestamped
as they arrive, so the measurement does not depend on a polling interval.

Usage: sudo bench/ban_latency.py [--trials N] [--f2b-trials N] [--bin target/release/ravelin]
Prints p50/p90/p99/max per tool and the ratio. Touches only namespaces it creates.
"""
import argparse
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def sh(*args, **kw):
    return subprocess.run(list(args), check=True, **kw)


class Netns:
    def __init__(self, name):
        self.name = name
        subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
        sh("ip", "netns", "add", name)
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")

    def cmd(self, *args):
        return ["ip", "netns", "exec", self.name, *args]

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name])


class Monitor:
    """`nft monitor new elements` in the namespace; each line timestamped on arrival."""

    def __init__(self, ns):
        self.p = subprocess.Popen(ns.cmd("nft", "monitor", "new", "elements"), stdout=subprocess.PIPE, text=True, bufsize=1)
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.q.put((time.perf_counter(), line))

    def wait_for(self, addr, timeout):
        end = time.perf_counter() + timeout
        while True:
            left = end - time.perf_counter()
            if left <= 0:
                return None
            try:
                t, line = self.q.get(timeout=left)
            except queue.Empty:
                return None
            if addr in line.replace("{", " ").replace("}", " ").replace(",", " ").split():
                return t

    def drain(self):
        while not self.q.empty():
            self.q.get_nowait()

    def close(self):
        self.p.kill()


def line(addr, user):
    stamp = time.strftime("%b %e %H:%M:%S", time.gmtime())
    return f"{stamp} bench sshd[4242]: Failed password for invalid user {user} from {addr} port 50022 ssh2\n"


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


def trials(ns, log, n, max_retry, prefix):
    mon = Monitor(ns)
    time.sleep(0.3)
    out = []
    for i in range(n):
        addr = f"198.18.{prefix}.{i + 1}"
        append(log, "".join(line(addr, f"u{k}") for k in range(max_retry - 1)))
        time.sleep(0.05)
        mon.drain()
        t0 = time.perf_counter()
        append(log, line(addr, "last"))
        t1 = mon.wait_for(addr, 10)
        if t1 is None:
            print(f"  trial {i}: {addr} not banned within 10 s", file=sys.stderr)
            continue
        out.append((t1 - t0) * 1000)
        time.sleep(0.02)
    mon.close()
    return out


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def report(name, xs):
    if not xs:
        print(f"{name:10} no successful trials")
        return None
    print(f"{name:10} n={len(xs):3}  p50 {pct(xs, 50):8.2f} ms  p90 {pct(xs, 90):8.2f} ms  p99 {pct(xs, 99):8.2f} ms  max {max(xs):8.2f} ms")
    return pct(xs, 50), pct(xs, 99)


def run_ravelin(binary, n, max_retry):
    ns = Netns("rvbench-lat-rv")
    d = tempfile.mkdtemp(prefix="rvbench-")
    log = os.path.join(d, "auth.log")
    open(log, "w").close()
    cfg = os.path.join(d, "ravelin.toml")
    with open(cfg, "w") as f:
        f.write(f"""state_dir = "{d}/state"
control_socket = "{d}/ravelin.sock"
[[source]]
name = "auth"
file = "{log}"
[[jail]]
name = "sshd"
sources = ["auth"]
max_retry = {max_retry}
""")
    p = subprocess.Popen(ns.cmd(os.path.abspath(binary), "run", "--config", cfg), stderr=open(os.path.join(d, "daemon.log"), "w"))
    for _ in range(200):
        if subprocess.run([binary, "--config", cfg, "status"], capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    try:
        return trials(ns, log, n, max_retry, 1)
    finally:
        p.terminate()
        p.wait()
        ns.close()
        shutil.rmtree(d, ignore_errors=True)


def run_fail2ban(n, max_retry):
    if not shutil.which("fail2ban-server"):
        print("fail2ban not installed (apt-get install fail2ban); skipping the peer", file=sys.stderr)
        return []
    ns = Netns("rvbench-lat-f2b")
    d = tempfile.mkdtemp(prefix="rvbench-f2b-")
    conf = os.path.join(d, "conf")
    shutil.copytree("/etc/fail2ban", conf)
    for extra in ("jail.d",):
        shutil.rmtree(os.path.join(conf, extra), ignore_errors=True)
        os.mkdir(os.path.join(conf, extra))
    log = os.path.join(d, "auth.log")
    open(log, "w").close()
    with open(os.path.join(conf, "fail2ban.local"), "w") as f:
        f.write(f"[Definition]\nlogtarget = {d}/fail2ban.log\nsocket = {d}/f2b.sock\npidfile = {d}/f2b.pid\ndbfile = :memory:\n")
    with open(os.path.join(conf, "jail.local"), "w") as f:
        f.write(f"""[DEFAULT]
banaction = nftables-multiport
banaction_allports = nftables-allports
[sshd]
enabled = true
backend = pyinotify
logpath = {log}
maxretry = {max_retry}
findtime = 600
bantime = 600
""")
    p = subprocess.Popen(ns.cmd("fail2ban-server", "-f", "-x", "-c", conf), stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "stderr"), "w"))
    time.sleep(3)
    try:
        return trials(ns, log, n, max_retry, 2)
    finally:
        p.terminate()
        p.wait()
        ns.close()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--f2b-trials", type=int, default=30)
    ap.add_argument("--bin", default="target/release/ravelin")
    ap.add_argument("--max-retry", type=int, default=3)
    a = ap.parse_args()
    print(f"ban latency: line appended -> element in kernel set (nft monitor), max_retry {a.max_retry}")
    rv = run_ravelin(a.bin, a.trials, a.max_retry)
    f2b = run_fail2ban(a.f2b_trials, a.max_retry)
    r = report("ravelin", rv)
    f = report("fail2ban", f2b)
    if r and f:
        print(f"ratio (fail2ban / ravelin): p50 {f[0] / r[0]:.0f}x, p99 {f[1] / r[1]:.0f}x")


if __name__ == "__main__":
    main()
