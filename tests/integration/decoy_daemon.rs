//! The decoy as the daemon runs it: a server namespace where `ravelin run` binds port 22 and
//! starts the confined decoy child, an attacker namespace where the real OpenSSH client (with
//! sshpass) replays every fixture session and hydra brute-forces; assertions on the Cowrie
//! JSON file the daemon writes, the stages, the kernel ban set, `explain`, `sessions` and
//! `replay`; and the confinement itself (`decoy sandbox-check` and the running child's
//! `/proc` status).
//!
//! ```text
//!  attacker 10.79.1.2 (+ 10.79.1.1x on lo, one per fixture) ── veth ── 10.79.1.1 server
//! ```

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::firewall::{in_ns, ip, link};
use crate::harness::{BIN, Daemon, Netns, Setup, can_run, have, stdout, wait_request, webhook_in};
use crate::metrics::scrape;

use crate::decoy::{SECRET, SSH_OPTS, seed_secret, type_session};
const SERVER: &str = "10.79.1.1";
const ATTACKER: &str = "10.79.1.2";

struct Lab {
    server: Netns,
    attacker: Netns,
    setup: Setup,
    daemon: Option<Daemon>,
    events: PathBuf,
    /// Bodies the webhook sink delivered (a receiver on the server's loopback).
    webhook: Arc<Mutex<Vec<String>>>,
}

impl Lab {
    fn new(ban: &str) -> Self {
        let (server, attacker) = (Netns::new(), Netns::new());
        link(
            &attacker,
            [ATTACKER, "fd79:1::2"],
            &server,
            [SERVER, "fd79:1::1"],
            "dd",
        );
        let setup = Setup::new(5, "", "");
        let (port, webhook) = webhook_in(&server);
        setup.add_webhook(port);
        let events_file = setup.dir.path().join("log/decoy.json");
        let extra = format!(
            "\n[honeypot]\nlisten = [\"0.0.0.0:22\", \"[::]:22\"]\nevents_file = \"{}\"\nhostname = \"web-07\"\n\n[honeypot.ban]\n{ban}\n",
            events_file.display()
        );
        setup.add_config(&extra);
        // A known per-install secret, so the test knows which passwords the decoy accepts.
        seed_secret(&setup.dir.path().join("state/decoy"));
        let daemon = Daemon::start(&server, &setup);
        let lab = Self {
            server,
            attacker,
            setup,
            daemon: Some(daemon),
            events: events_file,
            webhook,
        };
        assert!(
            lab.wait_decoy(Duration::from_secs(20)),
            "the decoy never answered; daemon log:\n{}",
            lab.log()
        );
        lab
    }

    fn log(&self) -> String {
        self.daemon.as_ref().map(Daemon::log).unwrap_or_default()
    }

    /// Wait until port 22 answers with an SSH banner from the attacker side.
    fn wait_decoy(&self, limit: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            let sa: SocketAddr = format!("{SERVER}:22").parse().unwrap();
            let ok = in_ns(&self.attacker, move || {
                let Ok(mut s) = TcpStream::connect_timeout(&sa, Duration::from_millis(300)) else {
                    return false;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut b = [0u8; 8];
                std::io::Read::read_exact(&mut s, &mut b).is_ok() && &b == b"SSH-2.0-"
            });
            if ok {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The decoy child's pid (the daemon's child running `decoy serve`).
    fn decoy_pid(&self) -> Option<u32> {
        let daemon = self.daemon.as_ref()?.child.id();
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid: u32 = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            (ppid == daemon && String::from_utf8_lossy(&cmd).contains("decoy")).then_some(pid)
        })
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn wait_events(&self, limit: Duration, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let t0 = Instant::now();
        loop {
            let ev = self.events();
            if pred(&ev) || t0.elapsed() > limit {
                return ev;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Add `addr` to the attacker's loopback, so `ssh -b addr` can use it as its source.
    fn attacker_addr(&self, addr: &str) {
        ip(
            &self.attacker,
            &["addr", "add", &format!("{addr}/32"), "dev", "lo"],
        );
    }

    /// Log in with sshpass from `src` and type `script` into an interactive shell.
    fn ssh_session(&self, src: &str, password: &str, script: &str) -> (bool, String) {
        let o = type_session(
            self.attacker
                .cmd("timeout")
                .args(["40", "sshpass", "-p", password, "ssh", "-tt", "-b", src])
                .args(SSH_OPTS)
                .arg(format!("root@{SERVER}")),
            script,
        );
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }

    fn banned(&self, addr: &str) -> bool {
        self.server.has(addr)
    }
}

fn fixtures() -> Option<Vec<(String, String)>> {
    let dir = crate::decoy::fixture_dir()?;
    let entries = std::fs::read_dir(&dir).ok()?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    Some(
        files
            .iter()
            .map(|f| {
                let name = f.file_stem().unwrap().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(f).unwrap();
                let script: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                    .collect();
                (name, script.join("\n"))
            })
            .collect(),
    )
}

fn of<'a>(ev: &'a [Value], id: &str, src: &str) -> Vec<&'a Value> {
    ev.iter()
        .filter(|e| e["eventid"] == id && e["src_ip"] == src)
        .collect()
}

/// The stage a fixture file's name promises.
fn expected_stage(name: &str) -> &'static str {
    ["probe", "fingerprint", "persistence", "download"]
        .into_iter()
        .find(|s| name.contains(s))
        .unwrap_or_else(|| panic!("fixture {name} names no stage"))
}

#[test]
fn daemon_runs_the_confined_decoy_replays_fixtures_and_bans_by_stage() {
    if !can_run() || !have("ssh", "openssh-client") || !have("sshpass", "sshpass") {
        return;
    }
    let Some(fixtures) = fixtures() else {
        return;
    };
    let lab = Lab::new("logins = 4\nwithin = \"10m\"");

    // The child really is confined: another user, seccomp filter, no new privileges.
    let pid = lab.decoy_pid().expect("decoy child");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| l[k.len()..].trim().to_string())
            .unwrap_or_default()
    };
    assert!(field("Uid:").starts_with("65534"), "{status}");
    assert_eq!(field("Seccomp:"), "2", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");

    let good = ravelin::honeypot::auth::AuthPolicy::new(SECRET)
        .an_accepted_password("root")
        .unwrap();
    let mut sources = Vec::new();
    for (i, (name, script)) in fixtures.iter().enumerate() {
        let src = format!("10.79.1.{}", 10 + i);
        lab.attacker_addr(&src);
        let (ok, out) = lab.ssh_session(&src, good, script);
        assert!(ok, "{name} from {src}: {out}\n{}", lab.log());
        assert!(out.contains("root@web-07:~# "), "{name}: {out}");
        sources.push((name.clone(), src));
    }
    // Sessions that reach persistence or download are banned while still open, so their
    // close may only come with the idle timeout; the others close at `exit`.
    let bans_at_once = |name: &str| matches!(expected_stage(name), "persistence" | "download");
    let ev = lab.wait_events(Duration::from_secs(15), |ev| {
        sources.iter().all(|(n, s)| {
            if bans_at_once(n) {
                of(ev, "ravelin.session.stage", s)
                    .iter()
                    .any(|e| e["stage"] == expected_stage(n))
            } else {
                !of(ev, "cowrie.session.closed", s).is_empty()
            }
        })
    });
    for (name, src) in &sources {
        assert_eq!(of(&ev, "cowrie.login.success", src).len(), 1, "{name}");
        assert!(
            !of(&ev, "cowrie.client.kex", src).is_empty(),
            "{name}: no hassh"
        );
        if !bans_at_once(name) {
            let closed = of(&ev, "cowrie.session.closed", src);
            assert!(closed[0]["duration_ms"].is_u64(), "{name}");
        }
        let stages: Vec<&str> = of(&ev, "ravelin.session.stage", src)
            .iter()
            .filter_map(|e| e["stage"].as_str())
            .collect();
        let want = expected_stage(name);
        assert!(stages.contains(&"spray"), "{name}: {stages:?}");
        assert!(stages.contains(&want), "{name}: {stages:?} lacks {want}");
        let inputs = of(&ev, "cowrie.command.input", src).len();
        assert!(inputs >= 1, "{name}: no commands recorded");
        if want == "download" {
            let dl = of(&ev, "cowrie.session.file_download", src);
            assert!(!dl.is_empty(), "{name}: no download event");
            assert!(dl[0]["url"].as_str().unwrap().contains("://"), "{dl:?}");
        }
    }

    // Persistence and download ban at once (decoy-intrusion); a probe or a look around does
    // not (one login is below the login threshold).
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5)
        && !sources
            .iter()
            .all(|(n, s)| !matches!(expected_stage(n), "persistence" | "download") || lab.banned(s))
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    for (name, src) in &sources {
        let should = matches!(expected_stage(name), "persistence" | "download");
        assert_eq!(
            lab.banned(src),
            should,
            "{name} from {src}: kernel set {:?}\n{}",
            lab.server.all_elements(),
            lab.log()
        );
        if should {
            let ex = stdout(&lab.setup.cli(&["explain", src]));
            assert!(ex.contains("decoy-intrusion"), "{ex}");
        }
    }

    // `sessions --json` and `replay` read what the daemon wrote.
    let o = lab.setup.cli(&["sessions", "--json"]);
    let list: Vec<Value> = stdout(&o)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(list.len() >= sources.len(), "{}", stdout(&o));
    let persist = list
        .iter()
        .find(|s| {
            s["stages"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "persistence"))
        })
        .expect("a session with persistence");
    assert!(!persist["commands"].as_array().unwrap().is_empty());
    assert_eq!(persist["credentials"][0]["username"], "root");
    let id = persist["id"].as_str().unwrap();
    let o = lab
        .setup
        .cli(&["replay", id, "--speed", "1000", "--max-wait", "0"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("web-07"), "{}", stdout(&o));

    // `top` shows the decoy and what it saw last.
    let top = stdout(&lab.setup.cli(&["top", "--once"]));
    assert!(top.contains("DECOY  running"), "{top}");
    assert!(top.contains("decoy.stage."), "{top}");

    // The weekly review shows the decoy's credentials, commands and funnel.
    let rep = stdout(&lab.setup.cli(&["report", "--since", "1d"]));
    assert!(rep.contains(&format!("root / {good}")), "{rep}");
    assert!(rep.contains("decoy commands:"), "{rep}");
    assert!(rep.contains("http://198.51.100.23/bins.sh"), "{rep}");
    assert!(rep.starts_with("ravelin report"), "{rep}");
    assert!(rep.contains("4 counted attempts from 4 sources"), "{rep}");
    let funnel_line = rep
        .lines()
        .skip_while(|l| !l.starts_with("decoy kill chain"))
        .find(|l| l.trim_start().starts_with("persistence"))
        .unwrap_or_default()
        .to_string();
    assert!(funnel_line.split_whitespace().last() != Some("0"), "{rep}");
    // And the operations channel heard about the persistence and the download.
    for stage in ["persistence", "download"] {
        let hit = wait_request(&lab.webhook, Duration::from_secs(10), |b| {
            b.contains("decoy session") && b.contains(&format!("reached {stage}"))
        });
        assert!(hit.is_some(), "{stage}: {:?}", lab.webhook.lock().unwrap());
    }

    // The metrics count the decoy's sessions and stages.
    let m = scrape(&lab.server, "/metrics");
    assert!(
        m.lines().any(
            |l| l.starts_with("ravelin_decoy_stages_total{stage=\"persistence\"} ")
                && !l.ends_with(" 0")
        ),
        "{m}"
    );

    // The decoy process reports its own counters (every 10 s): recordings were written.
    let t0 = Instant::now();
    let lines_recorded = || {
        scrape(&lab.server, "/metrics")
            .lines()
            .find(|l| l.starts_with("ravelin_decoy_process_total{counter=\"recordings_lines\"} "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    while t0.elapsed() < Duration::from_secs(15) && lines_recorded() == 0.0 {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        lines_recorded() > 0.0,
        "no recording counted by the decoy's report"
    );
    // Its reports stay out of the Cowrie file.
    assert!(
        lab.events()
            .iter()
            .all(|e| e["eventid"] != "ravelin.decoy.stats")
    );

    // A crash of the decoy is survived: the daemon restarts it on the same port.
    let old = lab.decoy_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let t0 = Instant::now();
    let mut new = None;
    while t0.elapsed() < Duration::from_secs(10) {
        if let Some(p) = lab.decoy_pid().filter(|p| *p != old) {
            new = Some(p);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(new.is_some(), "no restart; log:\n{}", lab.log());
    assert!(lab.wait_decoy(Duration::from_secs(10)));
    assert!(lab.log().contains("decoy stopped"), "{}", lab.log());
    let crashed = wait_request(&lab.webhook, Duration::from_secs(10), |b| {
        b.contains("SSH decoy stopped")
    });
    assert!(crashed.is_some(), "{:?}", lab.webhook.lock().unwrap());
    let st = lab.setup.cli(&["status"]);
    assert!(st.status.success());
    assert!(
        stdout(&st).contains("decoy: running, 1 restarts"),
        "{}",
        stdout(&st)
    );

    // The decoy dies with the daemon, even a SIGKILLed one (the parent-death signal is set
    // again after the privilege drop, which clears it).
    let child = lab.decoy_pid().unwrap();
    drop(lab.daemon);
    let gone = || {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        stat.is_empty() || stat.contains(") Z ")
    };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) && !gone() {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone(), "decoy {child} outlived its daemon");
}

#[test]
fn hydra_against_the_decoy_gets_banned() {
    if !can_run() || !have("hydra", "hydra") {
        return;
    }
    let lab = Lab::new("logins = 5\nwithin = \"10m\"");
    let words = lab.setup.dir.path().join("words");
    // Passwords the decoy refuses for this user (it accepts a plausible few, like a weak
    // real server would, and hydra stops at the first that works).
    let policy = ravelin::honeypot::auth::AuthPolicy::new(SECRET);
    let list: Vec<&str> = [
        "123456", "password", "admin", "qwerty", "letmein", "root", "toor", "1234", "abc123",
        "changeme", "passw0rd", "12345678", "default", "guest",
    ]
    .into_iter()
    .filter(|p| !policy.accepts("admin", p))
    .take(10)
    .collect();
    assert!(list.len() >= 6);
    std::fs::write(&words, list.join("\n") + "\n").unwrap();
    let o = lab
        .attacker
        .cmd("timeout")
        .args(["60", "hydra", "-I", "-l", "admin", "-P"])
        .arg(&words)
        .args(["-t", "4", "-w", "5", &format!("ssh://{SERVER}")])
        .output()
        .unwrap();
    let hydra = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let ev = lab.wait_events(Duration::from_secs(10), |ev| {
        of(ev, "cowrie.login.failed", ATTACKER).len() >= 5
    });
    let failed = of(&ev, "cowrie.login.failed", ATTACKER);
    assert!(failed.len() >= 5, "{hydra}\n{}", lab.log());
    assert!(failed.iter().all(|e| e["username"] == "admin"));
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) && !lab.banned(ATTACKER) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        lab.banned(ATTACKER),
        "kernel set {:?}\n{hydra}\n{}",
        lab.server.all_elements(),
        lab.log()
    );
    let ex = stdout(&lab.setup.cli(&["explain", ATTACKER]));
    assert!(ex.contains("decoy"), "{ex}");
    // And the ban holds in the kernel: the decoy no longer answers the attacker.
    assert!(!lab.wait_decoy(Duration::from_secs(1)));
}

#[test]
fn decoy_confinement_denies_writes_exec_and_connections() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A world-writable directory: only the sandbox can stop the write.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    for user in [None, Some("nobody")] {
        let data = dir.path().join(format!("data-{}", user.unwrap_or("root")));
        let mut cmd = Command::new(BIN);
        cmd.args(["decoy", "sandbox-check", "--state-dir"])
            .arg(&data)
            .arg("--outside")
            .arg(open.join(format!("escaped-{}", user.unwrap_or("root"))))
            .args(["--exec", "/bin/true", "--connect", &target]);
        if let Some(u) = user {
            cmd.args(["--user", u]);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["write_inside"], "allowed", "{v}");
        assert_eq!(v["seccomp"], true, "{v}");
        assert_eq!(v["landlock"], "full", "{v}");
        for k in [
            "write_outside",
            "read_outside",
            "exec",
            "connect",
            "udp_socket",
            "mlock",
        ] {
            assert!(
                v[k].as_str().unwrap().starts_with("denied"),
                "{k} was not denied for {user:?}: {v}"
            );
        }
        assert!(
            !open
                .join(format!("escaped-{}", user.unwrap_or("root")))
                .exists()
        );
        if user.is_some() {
            assert_eq!(v["uid"], 65534);
        }
    }
    // The listener never saw a connection.
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err());
}
