//! The SSH decoy driven by the real OpenSSH client on loopback: `ravelin decoy serve` on a
//! free port, `ssh` with the password from an askpass script, assertions on the Cowrie JSON
//! lines it writes. Skips (saying so) when `ssh` is missing.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::BIN;

/// The shared attack-session fixtures: `../shared/fixtures/attack-sessions` beside the
/// checkout, else `/work/shared/fixtures/attack-sessions`; says so and gives `None` when
/// neither exists.
pub(crate) fn fixture_dir() -> Option<PathBuf> {
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/attack-sessions");
    let found = [
        beside,
        PathBuf::from("/work/shared/fixtures/attack-sessions"),
    ]
    .into_iter()
    .find(|d| d.is_dir());
    if found.is_none() {
        eprintln!("SKIP: the shared attack-session fixtures are not present");
    }
    found
}

/// The per-install secret the decoy tests seed, so they know which passwords are accepted.
pub(crate) const SECRET: [u8; 32] = [0x42; 32];

/// Create `state` (0700) holding [`SECRET`] as the decoy's secret.
pub(crate) fn seed_secret(state: &Path) {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state)
        .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(state.join("decoy.secret"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, &SECRET))
        .unwrap();
}
const BANNER: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3";

/// The OpenSSH client options of every login into a decoy: no host key check, one password
/// prompt and nothing else, quiet.
pub(crate) const SSH_OPTS: &[&str] = &[
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "PreferredAuthentications=password",
    "-o",
    "PubkeyAuthentication=no",
    "-o",
    "NumberOfPasswordPrompts=1",
    "-o",
    "LogLevel=ERROR",
];

/// Start `ssh` (an interactive `-tt` login), type `script` and `exit`, and collect what came
/// back. Stdin stays open until the server ends the session on `exit`, as a bot's would.
pub(crate) fn type_session(ssh: &mut Command, script: &str) -> std::process::Output {
    let mut child = ssh
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, format!("{script}\nexit\n").as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    drop(stdin);
    o
}

fn have_ssh() -> bool {
    let ok = Command::new("ssh")
        .arg("-V")
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP: needs the OpenSSH client (apt-get install openssh-client)");
    }
    ok
}

/// `ravelin decoy serve` on 127.0.0.1, a kernel-chosen port; killed on drop.
struct Decoy {
    child: Child,
    port: u16,
    events: PathBuf,
    dir: tempfile::TempDir,
}

impl Decoy {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        seed_secret(&state);
        let events = dir.path().join("events.json");
        let mut child = Command::new(BIN)
            .args(["decoy", "serve", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(&state)
            .arg("--events")
            .arg(&events)
            .args(extra)
            .env("RAVELIN_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("decoy.log")).unwrap())
            .spawn()
            .expect("start decoy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Self {
            child,
            port,
            events,
            dir,
        }
    }

    /// Run `ssh root@127.0.0.1 -p PORT CMD` with `password`; returns (status, stdout, stderr).
    /// `timeout SECS ssh [-tt] -p PORT ... USER@127.0.0.1`, the password given by an askpass
    /// script, password authentication only; the caller adds a command and stdio.
    fn ssh_command(&self, user: &str, password: &str, secs: u32, tty: bool) -> Command {
        let askpass = self.dir.path().join("askpass");
        std::fs::write(
            &askpass,
            format!("#!/bin/sh\nprintf '%s\\n' '{password}'\n"),
        )
        .unwrap();
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut c = Command::new("timeout");
        c.arg(secs.to_string()).arg("ssh");
        if tty {
            c.arg("-tt");
        }
        c.args(["-p", &self.port.to_string()])
            .args(SSH_OPTS)
            .arg(format!("{user}@127.0.0.1"))
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0");
        c
    }

    fn ssh(&self, user: &str, password: &str, cmd: &str) -> (i32, String, String) {
        let o = self
            .ssh_command(user, password, 30, false)
            .arg(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
            .collect()
    }

    /// Wait until `pred` holds for the events written so far.
    fn wait_events(&self, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let t0 = Instant::now();
        loop {
            let ev = self.events();
            if pred(&ev) || t0.elapsed() > Duration::from_secs(10) {
                return ev;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("decoy.log")).unwrap_or_default()
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn of<'a>(ev: &'a [Value], id: &str) -> Vec<&'a Value> {
    ev.iter().filter(|e| e["eventid"] == id).collect()
}

fn first_line(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while buf.len() < 300 && s.read(&mut byte).unwrap_or(0) == 1 {
        buf.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn banner_is_the_configured_string_and_names_no_library() {
    let custom = "SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11u3";
    let d = Decoy::start(&["--banner", custom]);
    assert_eq!(first_line(d.port), format!("{custom}\r\n"));
    let d = Decoy::start(&[]);
    let line = first_line(d.port);
    assert_eq!(line, format!("{BANNER}\r\n"));
    assert!(!line.to_lowercase().contains("russh"));
}

#[test]
fn openssh_client_refused_then_accepted_runs_the_command() {
    if !have_ssh() {
        return;
    }
    let policy = ravelin::honeypot::auth::AuthPolicy::new(SECRET);
    let good = policy
        .an_accepted_password("root")
        .expect("an accepted pair");
    let bad = policy.a_refused_password("root").expect("a refused pair");
    let d = Decoy::start(&[]);

    let (code, _, err) = d.ssh("root", bad, "id");
    assert_eq!(code, 255, "refused login should fail: {err}");
    let ev = d.wait_events(|e| !of(e, "cowrie.session.closed").is_empty());
    let failed = of(&ev, "cowrie.login.failed");
    assert_eq!(failed.len(), 1, "{ev:#?}\n{}", d.log());
    assert_eq!(failed[0]["username"], "root");
    assert_eq!(failed[0]["password"], bad);
    assert_eq!(failed[0]["src_ip"], "127.0.0.1");
    assert_eq!(failed[0]["protocol"], "ssh");
    assert!(of(&ev, "cowrie.login.success").is_empty());
    let version = of(&ev, "cowrie.client.version");
    assert!(
        version[0]["version"]
            .as_str()
            .unwrap()
            .starts_with("SSH-2.0-OpenSSH")
    );
    let kex = of(&ev, "cowrie.client.kex");
    assert_eq!(kex[0]["hassh"].as_str().unwrap().len(), 32, "{kex:?}");

    let (code, out, err) = d.ssh("root", good, "uname -a");
    assert_eq!(code, 0, "stderr: {err}\nlog: {}", d.log());
    assert!(
        out.starts_with("Linux ") && out.ends_with("x86_64 GNU/Linux\n"),
        "{out:?}"
    );
    let (_, probe, _) = d.ssh("root", good, r#"echo -e "\x6F\x6B""#);
    assert_eq!(probe, "ok\n");
    let (code, _, err) = d.ssh("root", good, "nosuchtool --x");
    assert_eq!(code, 127);
    assert_eq!(err, "-bash: nosuchtool: command not found\n");

    let ev = d.wait_events(|e| of(e, "cowrie.session.closed").len() >= 4);
    let ok = of(&ev, "cowrie.login.success");
    assert_eq!(ok.len(), 3, "{ev:#?}");
    assert_eq!(ok[0]["username"], "root");
    assert_eq!(ok[0]["password"], good);
    let inputs: Vec<&str> = of(&ev, "cowrie.command.input")
        .iter()
        .map(|e| e["input"].as_str().unwrap())
        .collect();
    assert_eq!(
        inputs,
        ["uname -a", r#"echo -e "\x6F\x6B""#, "nosuchtool --x"]
    );
    assert_eq!(of(&ev, "cowrie.command.failed").len(), 1);
    let closed = of(&ev, "cowrie.session.closed");
    assert_eq!(closed.len(), 4);
    // Every event of a session carries the same session id, and timestamps look like Cowrie's.
    let sid = ok[0]["session"].as_str().unwrap();
    assert_eq!(sid.len(), 12);
    assert!(closed.iter().any(|c| c["session"] == sid));
    assert!(closed[0]["duration"].is_number());
    for e in &ev {
        let ts = e["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 27, "{ts}");
        assert!(ts.ends_with('Z'));
    }
}

#[test]
fn host_keys_are_kept_in_the_state_dir() {
    let d = Decoy::start(&[]);
    let _ = first_line(d.port);
    let state = d.dir.path().join("state");
    for f in ["ssh_host_ed25519_key", "ssh_host_ecdsa_key"] {
        let p: &Path = &state.join(f);
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}

/// Read until EOF or `limit`; returns how long the server took to close (None if it did not).
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(t0.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(t0.elapsed()),
        }
    }
    None
}

#[test]
fn limits_per_address_and_auth_deadline_and_slow_clients_block_no_one() {
    if !have_ssh() {
        return;
    }
    // The auth deadline must outlast the real login and the quota check below even on a
    // loaded machine, or the stalled clients are cut before the fourth connection is tried.
    let d = Decoy::start(&["--max-per-addr", "3", "--auth-timeout", "12s"]);
    // Two clients that say hello and then stall.
    let mut stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
            std::io::Write::write_all(&mut s, b"SSH-2.0-OpenSSH_8.0\r\n").unwrap();
            s
        })
        .collect();
    // A real login still goes through at once while they hang.
    let good = ravelin::honeypot::auth::AuthPolicy::new(SECRET)
        .an_accepted_password("root")
        .unwrap();
    let t0 = Instant::now();
    let (code, out, err) = d.ssh("root", good, "whoami");
    assert_eq!((code, out.as_str()), (0, "root\n"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    // The client exits on exit-status, a moment before the server's session ends.
    d.wait_events(|e| !of(e, "cowrie.session.closed").is_empty());
    // A third stalled client fills the per-address quota; a fourth is closed at accept.
    let _third = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut fourth = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    let t = closed_within(&mut fourth, Duration::from_secs(2));
    assert!(
        t.is_some(),
        "over-quota connection was not closed: {:#?}\n{}",
        d.events(),
        d.log()
    );
    // The stalled ones are cut off by the auth deadline (12 s), not held forever.
    for s in &mut stalled {
        let t = closed_within(s, Duration::from_secs(20));
        assert!(t.is_some(), "stalled session outlived the auth deadline");
    }
    let ev = d.wait_events(|e| of(e, "cowrie.session.closed").len() >= 3);
    assert!(of(&ev, "cowrie.session.closed").len() >= 3, "{ev:#?}");
}

/// Every fixture session, typed into an interactive shell (`ssh -tt`), is recorded line by
/// line, answers the probe, and ends with `exit`.
#[test]
fn interactive_shell_replays_every_fixture_session() {
    if !have_ssh() {
        return;
    }
    let Some(dir) = fixture_dir() else {
        return;
    };
    let entries = std::fs::read_dir(&dir).unwrap();
    let mut lines: Vec<String> = Vec::new();
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    let d = Decoy::start(&["--hostname", "web-07"]);
    let good = ravelin::honeypot::auth::AuthPolicy::new(SECRET)
        .an_accepted_password("root")
        .unwrap();
    {
        let o = type_session(
            &mut d.ssh_command("root", good, 30, true),
            &lines.join("\n"),
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.contains("root@web-07:~# "), "{out}");
        // Typed ahead, as bots do: the echo comes first, then each answer after a prompt.
        assert!(out.contains("# ok\r\n"), "{out}");
        assert!(out.contains("Linux web-07 "), "{out}");
        assert!(out.ends_with("logout\r\n"), "{out}");
    }
    let ev = d.wait_events(|e| !of(e, "cowrie.session.closed").is_empty());
    let inputs: Vec<&str> = of(&ev, "cowrie.command.input")
        .iter()
        .map(|e| e["input"].as_str().unwrap())
        .collect();
    let mut want: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
    want.push("exit");
    assert_eq!(inputs, want);
    assert!(
        of(&ev, "cowrie.command.failed")
            .iter()
            .any(|e| e["message"] == "Command not found: lockr")
    );
}

/// The byte budget cuts a session that pulls too much; the total lifetime ends a session
/// that stays logged in and idle-but-alive.
#[test]
fn byte_budget_and_session_lifetime_end_sessions() {
    if !have_ssh() {
        return;
    }
    let good = ravelin::honeypot::auth::AuthPolicy::new(SECRET)
        .an_accepted_password("root")
        .unwrap();
    let d = Decoy::start(&["--max-bytes", "20000"]);
    let big = vec!["cat /proc/cpuinfo"; 30].join("; ");
    let (code, out, _) = d.ssh("root", good, &big);
    assert_ne!(code, 0);
    assert!(out.len() < 20_000, "{} bytes got through", out.len());
    let ev = d.wait_events(|e| !of(e, "cowrie.session.closed").is_empty());
    assert_eq!(of(&ev, "cowrie.session.closed").len(), 1);

    // A client that stays logged in and never leaves: ended by the total lifetime (keys
    // typed every 500 ms keep it from being idle), or by the idle timeout (nothing typed).
    for (flag, typing) in [("--session-timeout", true), ("--idle-timeout", false)] {
        let d = Decoy::start(&[flag, "2s"]);
        let t0 = Instant::now();
        let mut child = d
            .ssh_command("root", good, 20, true)
            .stdin(Stdio::piped()) // held open: the client never leaves by itself
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let st = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if typing {
                let _ = std::io::Write::write_all(&mut stdin, b"x");
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let took = t0.elapsed();
        assert_ne!(
            st.code(),
            Some(124),
            "{flag}: the decoy did not end the session"
        );
        assert!(took < Duration::from_secs(8), "{flag}: {took:?}");
        let ev = d.wait_events(|e| !of(e, "cowrie.session.closed").is_empty());
        let closed = of(&ev, "cowrie.session.closed");
        let ms = closed[0]["duration_ms"].as_u64().unwrap();
        assert!((1900..8000).contains(&ms), "{flag}: {ms}");
    }
}

#[test]
fn global_session_cap_closes_extra_connections_at_accept() {
    let d = Decoy::start(&["--max-sessions", "1"]);
    let first = first_line(d.port);
    assert!(first.starts_with("SSH-2.0-"));
    let mut held = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    let mut banner = [0u8; 8];
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // `first_line`'s connection is gone; wait until its slot is free, then hold the only one.
    let t0 = Instant::now();
    while held.read(&mut banner).unwrap_or(0) == 0 && t0.elapsed() < Duration::from_secs(5) {
        held = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
        held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    assert_eq!(&banner, b"SSH-2.0-");
    let mut extra = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    assert!(closed_within(&mut extra, Duration::from_secs(3)).is_some());
    drop(held);
}

/// `ssh-audit` (Debian's) sees a Debian OpenSSH 9.2: no library name anywhere, the three host
/// key types a Debian sshd has, and no SHA-1 `ssh-rsa` host key (gone from OpenSSH since 8.8).
#[test]
fn ssh_audit_sees_openssh_and_no_library() {
    let have = Command::new("ssh-audit")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !have {
        eprintln!("SKIP: needs ssh-audit (apt-get install ssh-audit)");
        return;
    }
    let d = Decoy::start(&[]);
    let o = Command::new("timeout")
        .args([
            "60",
            "ssh-audit",
            "-n",
            "-p",
            &d.port.to_string(),
            "127.0.0.1",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("(gen) software: OpenSSH 9.2p1"), "{out}");
    for lib in [
        "russh", "libssh", "paramiko", "twisted", "cowrie", "go", "dropbear",
    ] {
        let hit = out.lines().any(|l| {
            l.starts_with("(gen) software") && l.to_ascii_lowercase().contains(lib)
                || l.starts_with("(gen) banner") && l.to_ascii_lowercase().contains(lib)
        });
        assert!(!hit, "{lib} named: {out}");
    }
    assert!(!out.to_ascii_lowercase().contains("russh"), "{out}");
    for key in [
        "(key) ssh-ed25519",
        "(key) ecdsa-sha2-nistp256",
        "(key) rsa-sha2-512",
    ] {
        assert!(out.contains(key), "{key} missing: {out}");
    }
    assert!(
        !out.contains("(key) ssh-rsa "),
        "SHA-1 host key offered: {out}"
    );
    drop(d);
}
