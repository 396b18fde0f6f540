//! The firewall layer against real nftables: three namespaces (server, attacker, admin) joined
//! by veth pairs, IPv4 and IPv6 on each link, listeners bound inside the server namespace and
//! connections made from threads that joined the attacker or admin namespace.
//!
//! ```text
//!  attacker 10.77.1.2 fd77:1::2 ── veth ── 10.77.1.1 fd77:1::1  server  10.77.2.1 fd77:2::1 ── veth ── 10.77.2.2 fd77:2::2 admin
//! ```
//!
//! Needs root, `nft` and `ip` (iproute2); nothing else (no nc/nmap: the scans are bounded
//! loops of `connect()` with a short timeout, from Rust).

use std::fs::File;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness::{BIN, Netns, can_run, stdout};

const ATTACKER4: &str = "10.77.1.2";
const ATTACKER6: &str = "fd77:1::2";
const SERVER_A4: &str = "10.77.1.1";
const SERVER_A6: &str = "fd77:1::1";
const SERVER_M4: &str = "10.77.2.1";
const SERVER_M6: &str = "fd77:2::1";
const ADMIN4: &str = "10.77.2.2";
const ADMIN6: &str = "fd77:2::2";

/// The three namespaces, with the server's listeners.
struct Lab {
    server: Netns,
    attacker: Netns,
    admin: Netns,
    dir: tempfile::TempDir,
    listeners: Vec<TcpListener>,
}

pub(crate) fn ip(ns: &Netns, args: &[&str]) {
    let st = ns.cmd("ip").args(args).status().unwrap();
    assert!(st.success(), "ip {args:?} in {}", ns.name);
}

/// Join two namespaces with a veth pair and put one v4 and one v6 address on each end.
pub(crate) fn link(a: &Netns, a_addrs: [&str; 2], b: &Netns, b_addrs: [&str; 2], tag: &str) {
    // Created directly inside the namespaces, so names only need to be unique per test run.
    static LINKS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = LINKS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 1000;
    let id = std::process::id() % 10_000;
    let (ea, eb) = (format!("{tag}a{id}x{n}"), format!("{tag}b{id}x{n}"));
    let st = Command::new("ip")
        .args([
            "link", "add", &ea, "netns", &a.name, "type", "veth", "peer", "name", &eb, "netns",
            &b.name,
        ])
        .status()
        .unwrap();
    assert!(st.success(), "veth {ea}/{eb}");
    for (ns, dev, [v4, v6]) in [(a, &ea, a_addrs), (b, &eb, b_addrs)] {
        ip(ns, &["addr", "add", &format!("{v4}/24"), "dev", dev]);
        ip(
            ns,
            &["addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"],
        );
        ip(ns, &["link", "set", dev, "up"]);
    }
}

/// Run `f` on a thread that joined namespace `ns` (sockets it makes live there).
pub(crate) fn in_ns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = PathBuf::from("/run/netns").join(&ns.name);
    std::thread::spawn(move || {
        let fd = File::open(&path).expect("open netns");
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .unwrap()
}

/// Does a TCP handshake to `addr:port` complete from `ns`? (A dropped SYN times out.)
fn reaches(ns: &Netns, addr: &str, port: u16) -> bool {
    let sa = SocketAddr::new(addr.parse().unwrap(), port);
    in_ns(ns, move || {
        TcpStream::connect_timeout(&sa, Duration::from_millis(400)).is_ok()
    })
}

/// A child process killed on drop.
struct Sshd(std::process::Child);

/// Another child killed on drop (the ssh client).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Does the server namespace hold an established connection from `peer` to port 2222 that
/// belongs to a logged-in sshd session? (Asks `ss`-free: the socket table plus /proc.)
fn logged_in(peer: &str, lab: &Lab) -> bool {
    let o = lab.server.cmd("cat").arg("/proc/net/tcp").output().unwrap();
    let inodes: Vec<u64> =
        ravelin::firewall::sockets::parse(&stdout(&o), ravelin::firewall::policy::Proto::Tcp)
            .into_iter()
            .filter(|s| s.established && s.remote.0.to_string() == peer && s.local.1 == 2222)
            .map(|s| s.inode)
            .collect();
    let owners = ravelin::firewall::sockets::owners(Path::new("/proc"));
    inodes
        .iter()
        .any(|i| owners.get(i).is_some_and(|o| o.is_ssh_login()))
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The SSH identification line a server at `addr:port` sends, seen from `ns`.
fn banner(ns: &Netns, addr: &str, port: u16) -> Option<String> {
    use std::io::Read;
    let sa = SocketAddr::new(addr.parse().unwrap(), port);
    in_ns(ns, move || {
        let mut s = TcpStream::connect_timeout(&sa, Duration::from_millis(400)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}

/// Touch `ports` once each from `ns`, short timeouts (a bounded scan).
fn scan(ns: &Netns, addr: &str, ports: impl IntoIterator<Item = u16> + Send + 'static) {
    let ip: IpAddr = addr.parse().unwrap();
    in_ns(ns, move || {
        for p in ports {
            let _ = TcpStream::connect_timeout(&SocketAddr::new(ip, p), Duration::from_millis(60));
        }
    });
}

impl Lab {
    fn new() -> Self {
        Self::with_listeners(&[22, 80, 2222, 8080])
    }

    fn with_listeners(ports: &[u16]) -> Self {
        let (server, attacker, admin) = (Netns::new(), Netns::new(), Netns::new());
        link(
            &attacker,
            [ATTACKER4, ATTACKER6],
            &server,
            [SERVER_A4, SERVER_A6],
            "fa",
        );
        link(
            &admin,
            [ADMIN4, ADMIN6],
            &server,
            [SERVER_M4, SERVER_M6],
            "fm",
        );
        let mut lab = Self {
            server,
            attacker,
            admin,
            dir: tempfile::tempdir().unwrap(),
            listeners: Vec::new(),
        };
        // Listeners never accept: the kernel completes handshakes into the backlog, which is
        // all "answers" means here. 2222 stands in for the real sshd, 22 for the decoy.
        for &port in ports {
            lab.listeners.push(in_ns(&lab.server, move || {
                TcpListener::bind(("::", port)).expect("bind")
            }));
        }
        // Let neighbour discovery and ARP settle before any firewall exists, so that the
        // first probes of a test are not lost to an unresolved neighbour.
        for (ns, addr) in [
            (&lab.attacker, SERVER_A4),
            (&lab.attacker, SERVER_A6),
            (&lab.admin, SERVER_M4),
            (&lab.admin, SERVER_M6),
        ] {
            let t0 = Instant::now();
            while !reaches(ns, addr, 22) {
                assert!(t0.elapsed() < Duration::from_secs(10), "no path to {addr}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        lab
    }

    /// A real OpenSSH server in the server namespace on `port` (None if sshd cannot run here).
    fn sshd(&self, port: u16) -> Option<Sshd> {
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.exists() || !Path::new("/run/sshd").is_dir() {
            eprintln!("SKIP part: needs openssh-server (/usr/sbin/sshd and /run/sshd)");
            return None;
        }
        let d = self.dir.path().join(format!("sshd{port}"));
        std::fs::create_dir_all(&d).unwrap();
        let key = d.join("hostkey");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        let cfg = d.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "Port {port}\nListenAddress ::\nListenAddress 0.0.0.0\nHostKey {}\nPidFile {}\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\nAuthorizedKeysFile {}\n",
                key.display(),
                d.join("pid").display(),
                self.client_key().1.display()
            ),
        )
        .unwrap();
        let child = self
            .server
            .cmd("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let sshd = Sshd(child);
        // Up when it answers on loopback inside the server namespace.
        let t0 = Instant::now();
        while banner(&self.server, "127.0.0.1", port).is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "sshd did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(sshd)
    }

    /// A client key pair (private key, authorized_keys file), made once per lab.
    fn client_key(&self) -> (PathBuf, PathBuf) {
        let key = self.dir.path().join("client_key");
        let auth = self.dir.path().join("authorized_keys");
        if !key.exists() {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key)
                .status()
                .unwrap();
            assert!(st.success());
            std::fs::copy(key.with_extension("pub"), &auth).unwrap();
        }
        (key, auth)
    }

    fn config(&self, firewall: &str) -> PathBuf {
        let p = self.dir.path().join("ravelin.toml");
        std::fs::write(&p, firewall).unwrap();
        p
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `ravelin --config <cfg> firewall <args> --state-dir <dir>` in the server namespace.
    fn fw(&self, cfg: &Path, args: &[&str], ssh_connection: Option<&str>) -> Output {
        let mut c = self.server.cmd(BIN);
        c.arg("--config")
            .arg(cfg)
            .arg("firewall")
            .args(args)
            .arg("--state-dir")
            .arg(self.state());
        c.env_remove("SSH_CONNECTION");
        if let Some(sc) = ssh_connection {
            c.env("SSH_CONNECTION", sc);
        }
        c.output().unwrap()
    }

    fn apply(&self, cfg: &Path) {
        let o = self.fw(cfg, &["apply", "--no-confirm"], None);
        assert!(
            o.status.success(),
            "apply: {}{}",
            stdout(&o),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// The live firewall table without set elements (`nft -s -t list table`), or None.
    fn live(&self) -> Option<String> {
        let o = self
            .server
            .cmd("nft")
            .args(["-s", "-t", "list", "table", "inet", "ravelin_fw"])
            .output()
            .unwrap();
        o.status.success().then(|| stdout(&o))
    }

    fn scanners(&self) -> Vec<String> {
        let mut v = self.server.elements("ravelin_fw", "scanners4");
        v.extend(self.server.elements("ravelin_fw", "scanners6"));
        v
    }
}

fn policy(allow_from: &str, extra_allow: &str) -> String {
    format!(
        r#"
[firewall]
allow = ["tcp/80"{extra_allow}]
[firewall.ssh]
real_port = 2222
allow_from = [{allow_from}]
decoy_port = 22
[firewall.scan]
closed_ports = 5
within = "1m"
honeyports = [23, 6379]
"#
    )
}

fn standard() -> String {
    policy(&format!("\"{ADMIN4}\", \"{ADMIN6}\""), "")
}

#[test]
fn allowed_ports_answer_closed_do_not_and_the_real_ssh_only_for_the_admin() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    // Before: everything answers (no firewall yet), so the listeners are really there.
    assert!(reaches(&lab.attacker, SERVER_A4, 8080) && reaches(&lab.attacker, SERVER_A6, 2222));
    lab.apply(&lab.config(&standard()));
    // Forget every neighbour: IPv6 below must resolve through the firewall (ND accepted).
    for ns in [&lab.server, &lab.attacker, &lab.admin] {
        ip(ns, &["neigh", "flush", "all"]);
    }
    for (attacker_to, admin_to) in [(SERVER_A4, SERVER_M4), (SERVER_A6, SERVER_M6)] {
        assert!(
            reaches(&lab.attacker, attacker_to, 80),
            "allowed port from the attacker via {attacker_to}"
        );
        assert!(
            reaches(&lab.attacker, attacker_to, 22),
            "the decoy is open to all ({attacker_to})"
        );
        assert!(
            !reaches(&lab.attacker, attacker_to, 8080),
            "a closed port answered ({attacker_to})"
        );
        assert!(
            !reaches(&lab.attacker, attacker_to, 2222),
            "the real sshd answered the attacker ({attacker_to})"
        );
        assert!(
            reaches(&lab.admin, admin_to, 2222),
            "the admin cannot reach the real sshd ({admin_to})"
        );
        assert!(
            !reaches(&lab.admin, admin_to, 8080),
            "a closed port answered the admin ({admin_to})"
        );
    }
    // The ban table is not ours: nothing of it was created or touched.
    let o = lab
        .server
        .cmd("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert_eq!(stdout(&o).trim(), "table inet ravelin_fw");
}

#[test]
fn a_closed_port_scan_and_a_honeyport_touch_put_the_source_in_the_scanner_set() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    let cfg = lab.config(&standard());
    lab.apply(&cfg);
    for (server, attacker) in [(SERVER_A4, ATTACKER4), (SERVER_A6, ATTACKER6)] {
        // 4 distinct closed ports (closed_ports = 5), each twice: not yet a scanner.
        scan(&lab.attacker, server, [1001, 1002, 1003, 1004]);
        scan(&lab.attacker, server, [1001, 1002, 1003, 1004]);
        assert!(
            !lab.scanners().contains(&attacker.to_string()),
            "{attacker} flagged after 4 distinct ports: {:?}",
            lab.scanners()
        );
        // The fifth distinct one makes it a scanner, in the kernel.
        scan(&lab.attacker, server, [1005]);
        assert!(
            lab.scanners().contains(&attacker.to_string()),
            "{attacker} not flagged after 5 ports: {:?}",
            lab.scanners()
        );
    }
    // The admin touches a honeyport once: flagged at once.
    scan(&lab.admin, SERVER_M6, [6379]);
    assert!(
        lab.scanners().contains(&ADMIN6.to_string()),
        "{:?}",
        lab.scanners()
    );
    assert!(!lab.scanners().contains(&ADMIN4.to_string()));
    scan(&lab.admin, SERVER_M4, [23]);
    // What the daemon will do: read the sets, turn new scanners into `scan` observations.
    let listed = in_ns(&lab.server, || {
        ravelin::firewall::read_scanners(Path::new("nft"), "ravelin_fw").expect("read_scanners")
    });
    let mut watch = ravelin::firewall::scan::ScanWatch::new();
    let obs = watch.observe(&listed, std::time::SystemTime::now());
    let addrs: Vec<String> = obs.iter().map(|o| o.addr.to_string()).collect();
    for a in [ATTACKER4, ATTACKER6, ADMIN6] {
        assert!(
            addrs.contains(&a.to_string()),
            "{a} not observed: {addrs:?}"
        );
    }
    assert!(
        obs.iter()
            .all(|o| &*o.rule == "scan.portscan" && &*o.source == "firewall")
    );
    assert!(
        watch
            .observe(&listed, std::time::SystemTime::now())
            .is_empty(),
        "reported twice"
    );
    // The same through the CLI.
    let o = lab.fw(&cfg, &["scanners"], None);
    let out = stdout(&o);
    for a in [ATTACKER4, ATTACKER6, ADMIN4, ADMIN6] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{a}\t"))),
            "{a} missing from:\n{out}"
        );
    }
}

#[test]
fn apply_with_confirm_rolls_back_unless_confirmed() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    let a = lab.config(&standard());
    lab.apply(&a);
    let before = lab.live().unwrap();
    let b = lab.dir.path().join("b.toml");
    std::fs::write(
        &b,
        policy(&format!("\"{ADMIN4}\", \"{ADMIN6}\""), ", \"tcp/8080\""),
    )
    .unwrap();

    // plan: a readable diff naming the new port, nothing applied.
    let o = lab.fw(&b, &["plan"], None);
    let plan = stdout(&o);
    assert!(o.status.success(), "{plan}");
    assert!(
        plan.lines()
            .any(|l| l.starts_with("+ ") && l.contains("8080")),
        "{plan}"
    );
    assert!(
        plan.lines()
            .any(|l| l.starts_with("- ") && l.contains("tcp dport 80 accept")),
        "{plan}"
    );
    assert_eq!(lab.live().unwrap(), before);

    // Not confirmed: back by itself after the window (the watcher child does it).
    let asked = std::time::SystemTime::now();
    let o = lab.fw(&b, &["apply", "--confirm", "2s"], None);
    assert!(o.status.success(), "{}", stdout(&o));
    let pending: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(lab.state().join("firewall/pending.json")).unwrap(),
    )
    .unwrap();
    let deadline =
        std::time::UNIX_EPOCH + Duration::from_secs(pending["deadline"].as_u64().unwrap());
    // The window is rounded up, never down: at least the 2 s asked, at most 1 s more.
    assert!(
        deadline >= asked + Duration::from_secs(2),
        "deadline {deadline:?} is less than 2 s after {asked:?}"
    );
    assert!(reaches(&lab.attacker, SERVER_A4, 8080), "B not live");
    let t0 = Instant::now();
    while lab.live().as_deref() != Some(&before) && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        lab.live().unwrap(),
        before,
        "not rolled back after the window"
    );
    assert!(
        std::time::SystemTime::now() >= deadline,
        "rolled back before the deadline {deadline:?}"
    );
    assert!(!reaches(&lab.attacker, SERVER_A4, 8080));

    // Confirmed: stays.
    let o = lab.fw(&b, &["apply", "--confirm", "2s"], None);
    assert!(o.status.success());
    let o = lab.fw(&b, &["confirm"], None);
    assert!(o.status.success(), "{}", stdout(&o));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        lab.live().unwrap().contains("8080"),
        "confirmed apply was rolled back"
    );

    // rollback: restores what was before the last apply (A) at once.
    let o = lab.fw(&b, &["rollback"], None);
    assert!(o.status.success(), "{}", stdout(&o));
    assert_eq!(lab.live().unwrap(), before);

    // A reboot forgets the table; `firewall boot` (the daemon's start does the same) loads
    // the last confirmed one, which after that rollback is A again.
    let st = lab
        .server
        .cmd("nft")
        .args(["delete", "table", "inet", "ravelin_fw"])
        .status()
        .unwrap();
    assert!(st.success());
    let o = lab.fw(&b, &["boot"], None);
    assert!(
        stdout(&o).contains("loaded the last confirmed table"),
        "{}",
        stdout(&o)
    );
    assert_eq!(lab.live().unwrap(), before);
}

#[test]
fn an_unconfirmed_apply_is_rolled_back_even_if_the_watcher_died() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    let a = lab.config(&standard());
    lab.apply(&a);
    let before = lab.live().unwrap();
    let b = lab.dir.path().join("b.toml");
    std::fs::write(&b, policy(&format!("\"{ADMIN4}\""), ", \"tcp/8080\"")).unwrap();
    // A window long enough that the watcher cannot act before it is killed on a loaded machine.
    let o = lab.fw(&b, &["apply", "--confirm", "3s"], None);
    assert!(o.status.success(), "{}", stdout(&o));
    // Kill the watcher this apply started (found by its token), as a reboot or OOM would.
    let pending: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(lab.state().join("firewall/pending.json")).unwrap(),
    )
    .unwrap();
    let token = pending["token"].as_str().unwrap().to_string();
    let deadline = pending["deadline"].as_u64().unwrap();
    let pid = watcher_pid(&token).expect("a watcher process runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Wait until the deadline has passed (it is a whole Unix second, rounded up).
    let due = std::time::UNIX_EPOCH + Duration::from_secs(deadline) + Duration::from_millis(300);
    if let Ok(wait) = due.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(wait);
    }
    assert_ne!(
        lab.live().unwrap(),
        before,
        "nothing should have restored it yet"
    );
    // The next ravelin start (here any firewall command; the daemon calls honour_pending)
    // sees the passed deadline and restores.
    let o = lab.fw(&b, &["status"], None);
    assert!(o.status.success());
    assert_eq!(lab.live().unwrap(), before);
    assert!(!lab.state().join("firewall/pending.json").exists());
}

/// The pid of the rollback watcher holding `token` on its command line.
fn watcher_pid(token: &str) -> Option<i32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if args.contains(&token.as_bytes()) && args.iter().any(|a| *a == b"--if-unconfirmed") {
            return Some(pid);
        }
    }
    None
}

#[test]
fn the_lockout_guard_refuses_a_policy_that_cuts_the_admin() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    // The admin is logged in (per SSH_CONNECTION) from ADMIN4, but the policy admits only a
    // different address: refused, nothing applied.
    let wrong = lab.config(&policy("\"192.0.2.10\"", ""));
    let sc = format!("{ADMIN4} 50000 {SERVER_M4} 2222");
    let o = lab.fw(&wrong, &["apply", "--confirm", "60s"], Some(&sc));
    let out = stdout(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("lockout guard") && out.contains(ADMIN4),
        "{out}"
    );
    assert_eq!(lab.live(), None, "applied despite the guard");

    // An established connection (opened while there was no firewall) to the real SSH port.
    let sa = SocketAddr::new(SERVER_M6.parse().unwrap(), 2222);
    let session = in_ns(&lab.admin, move || {
        TcpStream::connect_timeout(&sa, Duration::from_secs(1)).expect("session")
    });

    // --force overrides; the established session survives the apply (established accepted).
    let o = lab.fw(&wrong, &["apply", "--no-confirm", "--force"], None);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(lab.live().is_some());
    {
        use std::io::Write;
        let mut s = &session;
        assert!(s.write_all(b"still here\n").is_ok());
    }
    assert!(
        !reaches(&lab.admin, SERVER_M6, 2222),
        "a new login from the cut admin worked"
    );
    drop(session);

    // The right policy passes the guard with the same evidence.
    let right = lab.dir.path().join("right.toml");
    std::fs::write(&right, standard()).unwrap();
    let o = lab.fw(&right, &["apply", "--no-confirm"], Some(&sc));
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn a_bad_policy_reports_every_error_and_applies_nothing() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    let cfg = lab.config(
        r#"
[firewall]
allow = ["tcp/80", "tcp/99999", "icmp/1"]
[firewall.ssh]
real_port = 2222
allow_interfaces = ["wg0"]
[firewall.scan]
honeyports = [80]
"#,
    );
    let o = lab.fw(&cfg, &["apply", "--no-confirm"], None);
    let out = stdout(&o);
    assert!(!o.status.success());
    for want in [
        "firewall.allow[1]",
        "firewall.allow[2]",
        "no interface \"wg0\"",
        "honeyport 80",
        "nothing was applied",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert_eq!(lab.live(), None);
}

#[test]
fn exposure_compares_listeners_with_the_policy() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    let cfg = lab.config(&policy(&format!("\"{ADMIN4}\""), ", \"udp/51820\""));
    let o = lab.fw(&cfg, &["exposure", "--json"], None);
    assert!(o.status.success(), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let has = |kind: &str, svc: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == kind && f["service"] == svc)
    };
    assert!(has("open", "tcp/80"), "{v:#}");
    assert!(has("hidden", "tcp/8080"), "{v:#}");
    assert!(has("no_listener", "udp/51820"), "{v:#}");
    assert!(
        !has("hidden", "tcp/2222"),
        "the real SSH port is expected to be closed to the world: {v:#}"
    );
}

#[test]
fn a_real_sshd_is_reachable_only_from_the_admin_and_the_guard_knows_its_port() {
    if !can_run() {
        return;
    }
    let lab = Lab::with_listeners(&[22, 80]);
    let cfg = lab.config(&standard());
    // sshd still on its old port: the policy (real_port 2222) would leave no way to it.
    {
        let Some(_old) = lab.sshd(2200) else { return };
        let o = lab.fw(&cfg, &["apply", "--confirm", "60s"], None);
        let out = stdout(&o);
        assert!(!o.status.success(), "{out}");
        assert!(out.contains("sshd listens on port 2200"), "{out}");
        assert_eq!(lab.live(), None);
    }
    let Some(_sshd) = lab.sshd(2222) else { return };
    lab.apply(&cfg);
    for (admin_to, attacker_to) in [(SERVER_M4, SERVER_A4), (SERVER_M6, SERVER_A6)] {
        let b = banner(&lab.admin, admin_to, 2222);
        assert!(
            b.as_deref()
                .is_some_and(|b| b.starts_with("SSH-2.0-OpenSSH")),
            "admin via {admin_to}: {b:?}"
        );
        assert_eq!(
            banner(&lab.attacker, attacker_to, 2222),
            None,
            "the attacker reached the real sshd via {attacker_to}"
        );
    }
    // A real login from the admin (no SSH_CONNECTION in our environment): the guard finds it
    // in the socket table and refuses a policy that would not let the admin back in.
    let (key, _) = lab.client_key();
    let mut login = KillOnDrop(
        lab.admin
            .cmd("ssh")
            .args(["-i"])
            .arg(&key)
            .args([
                "-p",
                "2222",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("root@{SERVER_M4}"))
            .args(["sleep", "30"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while !logged_in(ADMIN4, &lab) {
        assert!(login.0.try_wait().unwrap().is_none(), "ssh login failed");
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no ssh login within 10s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let wrong = lab.dir.path().join("wrong.toml");
    std::fs::write(&wrong, policy("\"192.0.2.10\"", "")).unwrap();
    let o = lab.fw(&wrong, &["apply", "--confirm", "60s"], None);
    let out = stdout(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains(&format!("session from {ADMIN4}")) && out.contains("socket table"),
        "{out}"
    );
    drop(login);

    // The exposure report names the real sshd bound to every address.
    let o = lab.fw(&cfg, &["exposure", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "public_sshd"
                && f["service"] == "tcp/2222"
                && f["process"] == "sshd"),
        "{v:#}"
    );
}

#[test]
fn the_ban_table_drops_first_and_is_never_touched_by_apply_or_rollback() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    // The daemon's ban table, made by the enforcer itself, with the attacker banned.
    in_ns(&lab.server, || {
        use ravelin::enforce::Enforcer;
        ravelin::enforce::NftEnforcer::new("nft".into(), "ravelin".into())
            .setup()
            .expect("ban table setup");
    });
    let st = lab
        .server
        .cmd("nft")
        .args([&format!(
            "add element inet ravelin ban4 {{ {ATTACKER4} timeout 1h }}; add element inet ravelin ban6 {{ {ATTACKER6} timeout 1h }}"
        )])
        .status()
        .unwrap();
    assert!(st.success());
    let bans_before = lab.server.all_elements();
    let cfg = lab.config(&standard());
    let o = lab.fw(&cfg, &["apply", "--confirm", "1s"], None);
    assert!(o.status.success(), "{}", stdout(&o));
    // Banned: not even the allowed port or the decoy answers; the admin is unaffected.
    for to in [SERVER_A4, SERVER_A6] {
        assert!(
            !reaches(&lab.attacker, to, 80),
            "a banned source reached port 80 via {to}"
        );
        assert!(
            !reaches(&lab.attacker, to, 22),
            "a banned source reached the decoy via {to}"
        );
    }
    assert!(reaches(&lab.admin, SERVER_M4, 80) && reaches(&lab.admin, SERVER_M6, 2222));
    // Let the unconfirmed apply roll back; the bans and the ban chains are as they were.
    let t0 = Instant::now();
    while lab.live().is_some() && t0.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lab.live(), None, "not rolled back");
    assert_eq!(lab.server.all_elements(), bans_before);
    let o = lab
        .server
        .cmd("nft")
        .args(["-s", "-t", "list", "table", "inet", "ravelin"])
        .output()
        .unwrap();
    let ban_table = stdout(&o);
    for part in [
        "chain input",
        "chain forward",
        "ip saddr @ban4 counter drop",
        "ip6 saddr @ban6 counter drop",
    ] {
        assert!(
            ban_table.contains(part),
            "{part:?} missing from the ban table:\n{ban_table}"
        );
    }
}

#[test]
fn plan_warns_about_a_lockout_before_anything_is_applied() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    let wrong = lab.config(&policy("\"192.0.2.10\"", ""));
    let sc = format!("{ADMIN4} 50000 {SERVER_M4} 2222");
    let o = lab.fw(&wrong, &["plan"], Some(&sc));
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("# lockout guard: apply would refuse") && out.contains(ADMIN4),
        "{out}"
    );
    assert!(out.contains("# live: no table inet ravelin_fw"), "{out}");
    assert_eq!(lab.live(), None);
}

/// Send `count` ICMP(v6) echo requests to `addr` from `ns` as fast as possible, then count
/// the echo replies that come back within a short wait. Raw sockets (root only).
fn pings(ns: &Netns, addr: &str, count: u16) -> usize {
    let ip: IpAddr = addr.parse().unwrap();
    in_ns(ns, move || {
        let v6 = ip.is_ipv6();
        let (fam, proto) = if v6 {
            (libc::AF_INET6, libc::IPPROTO_ICMPV6)
        } else {
            (libc::AF_INET, libc::IPPROTO_ICMP)
        };
        // SAFETY: plain socket calls on a descriptor we own and close below.
        let fd = unsafe { libc::socket(fam, libc::SOCK_RAW, proto) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 300_000,
        };
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        let id: u16 = 0x5256;
        let (req, rep) = if v6 { (128u8, 129u8) } else { (8u8, 0u8) };
        for seq in 0..count {
            let mut pkt = vec![req, 0, 0, 0];
            pkt.extend_from_slice(&id.to_be_bytes());
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(b"ravelin-firewall");
            if !v6 {
                let sum = checksum(&pkt);
                pkt[2..4].copy_from_slice(&sum.to_be_bytes());
            }
            // (The kernel fills in the ICMPv6 checksum.)
            let sent = match ip {
                IpAddr::V4(a) => {
                    let sa = libc::sockaddr_in {
                        sin_family: libc::AF_INET as u16,
                        sin_port: 0,
                        sin_addr: libc::in_addr {
                            s_addr: u32::from_ne_bytes(a.octets()),
                        },
                        sin_zero: [0; 8],
                    };
                    unsafe {
                        libc::sendto(
                            fd,
                            pkt.as_ptr().cast(),
                            pkt.len(),
                            0,
                            (&sa as *const libc::sockaddr_in).cast(),
                            std::mem::size_of_val(&sa) as u32,
                        )
                    }
                }
                IpAddr::V6(a) => {
                    let sa = libc::sockaddr_in6 {
                        sin6_family: libc::AF_INET6 as u16,
                        sin6_port: 0,
                        sin6_flowinfo: 0,
                        sin6_addr: libc::in6_addr {
                            s6_addr: a.octets(),
                        },
                        sin6_scope_id: 0,
                    };
                    unsafe {
                        libc::sendto(
                            fd,
                            pkt.as_ptr().cast(),
                            pkt.len(),
                            0,
                            (&sa as *const libc::sockaddr_in6).cast(),
                            std::mem::size_of_val(&sa) as u32,
                        )
                    }
                }
            };
            assert!(sent > 0, "sendto: {}", std::io::Error::last_os_error());
        }
        let mut replies = 0;
        let mut buf = [0u8; 2048];
        loop {
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                break;
            }
            let b = &buf[..n as usize];
            // IPv4 raw sockets see the IP header; IPv6 ones do not.
            let icmp = if v6 {
                b
            } else {
                &b[usize::from(b[0] & 0xf) * 4..]
            };
            if icmp.len() >= 8 && icmp[0] == rep && icmp[4..6] == id.to_be_bytes() {
                replies += 1;
            }
        }
        unsafe { libc::close(fd) };
        replies
    })
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn echo_requests_are_answered_but_rate_limited() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    assert_eq!(
        pings(&lab.attacker, SERVER_A4, 40),
        40,
        "before the firewall every ping is answered"
    );
    // echo_per_second = 10 (default): burst 20, then 10 a second.
    lab.apply(&lab.config(&standard()));
    for to in [SERVER_A4, SERVER_A6] {
        std::thread::sleep(Duration::from_secs(3)); // let the bucket refill
        let t = Instant::now();
        let got = pings(&lab.attacker, to, 40);
        // The burst of 20, plus what the bucket refills (10/s) while this machine is slow to
        // send the 40 (the call's time bounds the sending time).
        let hi = 25 + (10.0 * t.elapsed().as_secs_f64()).ceil() as usize;
        assert!(
            (15..=hi).contains(&got),
            "{got} of 40 echo requests to {to} answered (at most {hi} expected)"
        );
    }
}

/// The whole chain: the kernel flags a scanner, the daemon reads the scanner set as a
/// structured source (kind `scan`), the built-in portscan jail bans it in the ban set, and the
/// attacker's next packets are dropped; `ravelin selftest` proves every layer live.
#[test]
fn a_scan_caught_in_the_kernel_becomes_a_ban_and_selftest_passes() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    let log = lab.dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let text = format!(
        "state_dir = \"{state}\"\ncontrol_socket = \"{dir}/ravelin.sock\"\n[metrics]\nenabled = false\n\
         [[source]]\nname = \"auth\"\nfile = \"{log}\"\n[[jail]]\nname = \"sshd\"\nsources = [\"auth\"]\n{policy}",
        state = lab.state().display(),
        dir = lab.dir.path().display(),
        log = log.display(),
        policy = standard(),
    );
    let cfg = lab.config(&text);
    lab.apply(&cfg);
    let daemon_log = lab.dir.path().join("daemon.log");
    let mut child = lab
        .server
        .cmd(BIN)
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .stderr(std::fs::File::create(&daemon_log).unwrap())
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };
    let t0 = Instant::now();
    while !cli(&["status"]).status.success() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "daemon did not start: {}",
            std::fs::read_to_string(&daemon_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = cli(&["selftest"]);
    assert!(
        st.status.success(),
        "selftest failed:\n{}{}",
        stdout(&st),
        String::from_utf8_lossy(&st.stderr)
    );
    let out = stdout(&st);
    for step in [
        "decide",
        "enforce",
        "kernel set",
        "drop rule",
        "firewall policy",
        "cleanup",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with("ok") && l.contains(step)),
            "step {step} missing:\n{out}"
        );
    }
    // A honeyport touch from the attacker: kernel scanner set -> observation -> ban.
    scan(&lab.attacker, SERVER_A4, [6379]);
    let banned = lab
        .server
        .wait_for(Duration::from_secs(8), |e| e.iter().any(|x| x == ATTACKER4));
    assert!(
        banned.is_some(),
        "scanner not banned: {:?}\n{}",
        lab.server.all_elements(),
        std::fs::read_to_string(&daemon_log).unwrap_or_default()
    );
    let bans: serde_json::Value = serde_json::from_slice(&cli(&["bans", "--json"]).stdout).unwrap();
    assert_eq!(bans[0]["jail"], "portscan", "{bans}");
    // Banned: even the decoy port no longer answers it.
    assert!(
        !reaches(&lab.attacker, SERVER_A4, 22),
        "a banned scanner still reaches the server"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}
