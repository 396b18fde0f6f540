//! `ravelin audit` and `ravelin harden ssh` against fixture roots and a real sshd.
//!
//! Fixture roots live in `tests/audit/<name>/` with `<name>.expect` (one line per check id:
//! expected status and substrings of that result's JSON) and `<name>.modes` (permission bits,
//! which git does not keep; applied to a temp copy). The live tests start the real
//! `/usr/sbin/sshd` (openssh-server) on 127.0.0.1:2299 with scratch configs and host keys,
//! and skip with a note when it is not installed or not run as root.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/audit");
const SSHD: &str = "/usr/sbin/sshd";

/// The sshd tests share port 2299: one at a time.
static SSHD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A temp copy of fixture `name` with its `.modes` applied.
fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&Path::new(FIXTURES).join(name), dir.path());
    let modes = std::fs::read_to_string(Path::new(FIXTURES).join(format!("{name}.modes")))
        .unwrap_or_default();
    for l in modes
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (p, m) = l.split_once(' ').unwrap();
        let mode = u32::from_str_radix(m.trim(), 8).unwrap();
        std::fs::set_permissions(dir.path().join(p), std::fs::Permissions::from_mode(mode))
            .unwrap();
    }
    dir
}

/// Run `ravelin audit ARGS --json`. The per-check deadline is raised from its 2.5 s default so
/// that a loaded test machine gets verdicts, not "error: deadline" (the speed itself is
/// measured in bench/, and `the whole live audit` below keeps the default).
fn audit(args: &[&str]) -> (Output, Value) {
    let out = Command::new(BIN)
        .arg("audit")
        .args(args)
        .args(["--json", "--timeout", "20"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", stdout(&out), stderr(&out)));
    (out, v)
}

fn result<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no result for {id}"))
}

#[test]
fn fixture_roots_give_the_expected_result_per_check() {
    for name in ["good", "cloud-init-dropin", "bad-match", "empty"] {
        let root = fixture(name);
        let (out, report) = audit(&["--root", root.path().to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(report["live"], false);
        let expect =
            std::fs::read_to_string(Path::new(FIXTURES).join(format!("{name}.expect"))).unwrap();
        let mut expected_ids = BTreeSet::new();
        for line in expect
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let fields: Vec<&str> = line
                .split("  ")
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect();
            let (id, status) = (fields[0], fields[1]);
            expected_ids.insert(id.to_string());
            let r = result(&report, id);
            let json = r.to_string();
            assert_eq!(r["status"], status, "{name}: {id}: {json}");
            for want in &fields[2..] {
                assert!(json.contains(want), "{name}: {id}: {want:?} not in {json}");
            }
            assert!(
                !r["reason"].as_str().unwrap().is_empty(),
                "{name}: {id}: no reason"
            );
            assert!(!r["remediation"].as_str().unwrap().is_empty());
        }
        let got: BTreeSet<String> = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            got, expected_ids,
            "{name}: every check id has an expectation"
        );
    }
}

#[test]
fn secrets_are_reported_by_path_and_kind_never_by_value() {
    let root = fixture("bad-match");
    for json in [true, false] {
        let mut c = Command::new(BIN);
        c.args([
            "audit",
            "--verbose",
            "--root",
            root.path().to_str().unwrap(),
        ]);
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        let text = stdout(&out);
        assert!(text.contains("/home/ops/app/.env"), "{text}");
        for secret in [
            "fixture-not-a-secret",
            "FIXTURENOTASECRET",
            "b3BlbnNzaC1rZXkt",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}

#[test]
fn fail_on_sets_the_exit_status_and_the_table_shows_locations() {
    let good = fixture("good");
    let bad = fixture("bad-match");
    let cases: &[(&Path, Option<&str>, i32)] = &[
        (good.path(), Some("low"), 0),
        (bad.path(), None, 0),
        (bad.path(), Some("critical"), 1),
        (bad.path(), Some("high"), 1),
    ];
    for (root, fail_on, code) in cases {
        let mut c = Command::new(BIN);
        c.args(["audit", "--root", root.to_str().unwrap()]);
        if let Some(s) = fail_on {
            c.args(["--fail-on", s]);
        }
        let out = c.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(*code),
            "{fail_on:?}: {}",
            stdout(&out)
        );
    }
    let out = Command::new(BIN)
        .args(["audit", "--root", bad.path().to_str().unwrap()])
        .output()
        .unwrap();
    let t = stdout(&out);
    assert!(t.contains("FAIL    critical  accounts.uid0"), "{t}");
    assert!(t.contains("@ /etc/ssh/sshd_config:10"), "{t}");
    assert!(t.contains("fix: "), "{t}");
}

#[test]
fn waivers_turn_failures_into_visible_waived_results_until_they_expire() {
    let bad = fixture("bad-match");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ravelin.toml");
    std::fs::write(
        &cfg,
        "[[audit.waiver]]\nid = \"accounts.uid0\"\nreason = \"vendor appliance account, removal booked\"\nexpires = \"2099-12-31\"\n\n[[audit.waiver]]\nid = \"ssh.empty-passwords\"\nreason = \"old\"\nexpires = \"2020-01-01\"\n",
    )
    .unwrap();
    let (out, report) = audit(&[
        "--config",
        cfg.to_str().unwrap(),
        "--root",
        bad.path().to_str().unwrap(),
        "--only",
        "accounts.",
    ]);
    assert!(out.status.success());
    let r = result(&report, "accounts.uid0");
    assert_eq!(r["status"], "waived");
    assert_eq!(r["waiver"]["original"], "fail");
    assert_eq!(r["waiver"]["expires"], "2099-12-31");
    // The expired waiver leaves the critical failure in place, so --fail-on still trips.
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "audit", "--root"])
        .arg(bad.path())
        .args(["--only", "ssh.", "--fail-on", "critical", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = result(&report, "ssh.empty-passwords");
    assert_eq!(r["status"], "fail");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("waiver expired on 2020-01-01")
    );
    // A malformed waiver is an error, not silently ignored.
    std::fs::write(
        &cfg,
        "[[audit.waiver]]\nid = \"x\"\nreason = \"y\"\nexpires = \"soon\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "audit", "--root"])
        .arg(bad.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("expires"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// Real sshd.

fn can_run_sshd() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let sshd = Path::new(SSHD).is_file();
    let keygen = Command::new("ssh-keygen").arg("-?").output().is_ok();
    if !(root && sshd && keygen) {
        eprintln!(
            "SKIP: needs root, {SSHD} and ssh-keygen (root={root} sshd={sshd} ssh-keygen={keygen}); install openssh-server (the README's test command does)"
        );
        return false;
    }
    // sshd refuses to start (even -t/-T) without its privilege separation directory, which
    // Debian's service creates at boot; there is no service manager on the test machines.
    let _ = std::fs::create_dir_all("/run/sshd");
    true
}

/// A scratch sshd configuration directory: host key, main config with an Include of its
/// own drop-in directory, and the extra text given.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(main_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sshd_config.d")).unwrap();
        std::fs::create_dir_all(d.join("keys")).unwrap();
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join("host_ed25519"))
            .status()
            .unwrap();
        assert!(st.success());
        let main = format!(
            "Include {d}/sshd_config.d/*.conf\nPort 2299\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/keys/%u\n{main_extra}",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), main).unwrap();
        Scratch { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn main(&self) -> String {
        self.path("sshd_config").display().to_string()
    }

    fn dropin(&self, name: &str, text: &str) {
        std::fs::write(self.path("sshd_config.d").join(name), text).unwrap();
    }
}

/// The real sshd on 127.0.0.1:2299, killed on drop.
struct Sshd(Child);

impl Sshd {
    fn start(s: &Scratch) -> Self {
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f", &s.main(), "-p", "2299"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect("127.0.0.1:2299").is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start on 127.0.0.1:2299"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd(child)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const HARDENED: &str = "PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nMaxAuthTries 3\nLoginGraceTime 30\nAllowUsers ann\nMACs hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com\n";

#[test]
fn live_audit_of_a_real_sshd_sees_match_blocks_and_drop_ins() {
    if !can_run_sshd() {
        return;
    }
    let _one = SSHD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // (config, drop-in, check id, status, substrings of the result's JSON)
    type Case<'a> = (&'a str, Option<&'a str>, &'a str, &'a str, &'a [&'a str]);
    let cases: &[Case] = &[
        (
            HARDENED,
            None,
            "ssh.password-auth",
            "pass",
            &["sshd -T -f", "passwordauthentication no"],
        ),
        (HARDENED, None, "ssh.weak-macs", "pass", &[]),
        (
            HARDENED,
            None,
            "ssh.exposure",
            "pass",
            &["127.0.0.1:2299", "(sshd)"],
        ),
        (
            HARDENED,
            Some("PasswordAuthentication yes\n"),
            "ssh.password-auth",
            "fail",
            &[
                "50-cloud-init.conf:1",
                "addr=203.0.113.10",
                "passwordauthentication yes",
            ],
        ),
        (
            // Only a connection from 203.0.113.0/24 as root gets it: `sshd -T -C` shows it.
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nMatch User root Address 203.0.113.0/24\n  PasswordAuthentication yes\n",
            None,
            "ssh.password-auth",
            "fail",
            &[
                "Match User root Address 203.0.113.0/24",
                "user=root,host=client.example,addr=203.0.113.10",
            ],
        ),
        (
            "PermitRootLogin prohibit-password\n",
            None,
            "ssh.root-login",
            "warn",
            &["permitrootlogin without-password"],
        ),
    ];
    for (cfg, dropin, id, status, wants) in cases {
        let s = Scratch::new(cfg);
        if let Some(t) = dropin {
            s.dropin("50-cloud-init.conf", t);
        }
        let _sshd = Sshd::start(&s);
        let t = Instant::now();
        let (out, report) = audit(&["--sshd-config", &s.main(), "--only", "ssh."]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "took {:?}",
            t.elapsed()
        );
        assert_eq!(report["live"], true);
        let r = result(&report, id);
        let json = r.to_string();
        assert_eq!(r["status"], *status, "{id}: {json}");
        for w in *wants {
            assert!(json.contains(w), "{id}: {w:?} not in {json}");
        }
    }
}

#[test]
fn harden_ssh_refuses_a_lockout_then_applies_a_drop_in_the_real_sshd_accepts() {
    if !can_run_sshd() {
        return;
    }
    let _one = SSHD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("PermitRootLogin yes\n");
    s.dropin("50-cloud-init.conf", "PasswordAuthentication yes\n");
    let passwd = s.path("passwd");
    std::fs::write(
        &passwd,
        "root:x:0:0::/root:/bin/bash\nann:x:1000:1000::/home/ann:/bin/bash\n",
    )
    .unwrap();
    let dropin = s.path("sshd_config.d/00-ravelin-hardening.conf");
    let harden = |extra: &[&str]| {
        Command::new(BIN)
            .args(["harden", "ssh", "--config-dir"])
            .arg(s.dir.path())
            .arg("--passwd")
            .arg(&passwd)
            .args(["--allow-users", "ann,root"])
            .args(extra)
            .output()
            .unwrap()
    };
    // No authorized key for ann (root's login is being turned off): refused.
    let out = harden(&["--apply"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("lock everyone out"),
        "{}",
        stderr(&out)
    );
    assert!(!dropin.exists());

    std::fs::write(
        s.path("keys/ann"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE ann@laptop\n",
    )
    .unwrap();
    // Dry run: the diff, nothing written.
    let out = harden(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t = stdout(&out);
    assert!(
        t.contains("+PasswordAuthentication no") && t.contains("+AllowUsers ann root"),
        "{t}"
    );
    assert!(t.contains("dry run"), "{t}");
    assert!(!dropin.exists());

    // Apply: validated by the real sshd -t.
    let out = harden(&["--apply"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("accepts it"), "{}", stdout(&out));
    let st = Command::new(SSHD)
        .args(["-t", "-f", &s.main()])
        .status()
        .unwrap();
    assert!(st.success());
    // The audit now sees the drop-in win over cloud-init's, live and in the files.
    let _sshd = Sshd::start(&s);
    let (_, report) = audit(&["--sshd-config", &s.main(), "--only", "ssh."]);
    for id in [
        "ssh.password-auth",
        "ssh.root-login",
        "ssh.max-auth-tries",
        "ssh.weak-macs",
        "ssh.allow-users",
    ] {
        let r = result(&report, id);
        assert_eq!(r["status"], "pass", "{id}: {r}");
    }
    let r = result(&report, "ssh.password-auth").to_string();
    assert!(r.contains("00-ravelin-hardening.conf:3"), "{r}");
    // Re-running changes nothing.
    let out = harden(&["--apply"]);
    assert!(stdout(&out).contains("no change"), "{}", stdout(&out));

    // A validator that rejects the result: the previous drop-in is restored.
    let before = std::fs::read_to_string(&dropin).unwrap();
    let out = harden(&["--apply", "--port", "2300", "--sshd", "/bin/false"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("previous state restored"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&dropin).unwrap(), before);
}

#[test]
fn harden_ssh_refuses_when_the_drop_in_would_not_be_read_or_would_not_win() {
    if !can_run_sshd() {
        return;
    }
    let _one = SSHD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("");
    std::fs::write(s.path("keys/ann"), "ssh-ed25519 AAAA ann\n").unwrap();
    let passwd = s.path("passwd");
    std::fs::write(&passwd, "ann:x:1000:1000::/home/ann:/bin/bash\n").unwrap();
    let run = || {
        Command::new(BIN)
            .args([
                "harden",
                "ssh",
                "--apply",
                "--allow-users",
                "ann",
                "--config-dir",
            ])
            .arg(s.dir.path())
            .arg("--passwd")
            .arg(&passwd)
            .output()
            .unwrap()
    };
    // A line before the Include wins over any drop-in.
    let main = std::fs::read_to_string(s.path("sshd_config")).unwrap();
    std::fs::write(s.path("sshd_config"), format!("MaxAuthTries 6\n{main}")).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("MaxAuthTries (set earlier at"),
        "{}",
        stderr(&out)
    );
    // No Include at all.
    let no_include: String = main.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(s.path("sshd_config"), no_include).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not include"),
        "{}",
        stderr(&out)
    );
    assert!(!s.path("sshd_config.d/00-ravelin-hardening.conf").exists());
}

#[test]
fn a_live_audit_of_an_empty_ruleset_fails_the_firewall_check_in_time() {
    if !can_run() {
        return;
    }
    // A fresh namespace has an empty ruleset: Lynis would score the installed package.
    let ns = Netns::new();
    let t = Instant::now();
    let out = ns
        .cmd(BIN)
        .args(["audit", "--json", "--timeout", "20", "--only", "fw."])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = result(&report, "fw.default-deny");
    assert_eq!(r["status"], "fail", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("empty"), "{r}");
    // A default-drop inet input chain passes.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.nft");
    std::fs::write(
        &rules,
        "table inet t {\n chain input {\n  type filter hook input priority 0; policy drop;\n  ct state established,related accept\n  iif lo accept\n  tcp dport { 22, 443 } accept\n }\n}\n",
    )
    .unwrap();
    let st = ns.cmd("nft").arg("-f").arg(&rules).status().unwrap();
    assert!(st.success());
    let out = ns
        .cmd(BIN)
        .args(["audit", "--json", "--timeout", "20", "--only", "fw."])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = result(&report, "fw.default-deny");
    assert_eq!(r["status"], "pass", "{r}");
    assert!(r.to_string().contains("tcp/22,443"), "{r}");
    // Nothing listens in the namespace: both openings are stale.
    let r = result(&report, "fw.open-ports");
    assert_eq!(r["status"], "warn", "{r}");
    assert!(
        r["reason"].as_str().unwrap().contains("tcp/22, tcp/443"),
        "{r}"
    );
    // The whole live audit finishes well within 3 s.
    let out = Command::new(BIN)
        .args(["audit", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["duration_ms"].as_u64().unwrap() < 3000,
        "{}",
        report["duration_ms"]
    );
    assert!(t.elapsed() < Duration::from_secs(10));
}

/// `ban.effective` asks the running daemon: its jail's sources read lines and its rules match
/// them, so the ban layer is effective; a jail pointed at a log of other programs is flagged.
#[test]
fn the_ban_layer_is_judged_by_effect_through_the_daemon() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    let s = Setup::new(5, "", "");
    std::fs::write(&s.log, "").unwrap();
    let d = Daemon::start(&ns, &s);
    let audit = |s: &Setup| -> serde_json::Value {
        let out = s.cli(&[
            "audit",
            "--json",
            "--timeout",
            "20",
            "--only",
            "ban.effective",
        ]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}{}", stdout(&out), stderr(&out)))
    };
    let find = |v: &serde_json::Value| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "ban.effective")
            .cloned()
            .unwrap()
    };
    // The audit's verdict once the daemon has caught up (polled, not slept for).
    let settled = |want: &str| -> serde_json::Value {
        let t0 = std::time::Instant::now();
        loop {
            let r = find(&audit(&s));
            if r["status"] == want || t0.elapsed() > std::time::Duration::from_secs(10) {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    // Only cron noise so far: lines read, none matched -> warned.
    s.append(&vec![
        "Nov 21 06:00:01 host CRON[1]: (root) CMD (true)"
            .to_string();
        3
    ]);
    let r = settled("warn");
    assert_eq!(r["status"], "warn", "{r}");
    assert!(
        r["reason"].as_str().unwrap().contains("matched none"),
        "{r}"
    );
    // sshd lines arrive and match: effective.
    s.append(&[failed("203.0.113.88", "x")]);
    let r = settled("pass");
    assert_eq!(r["status"], "pass", "{r}");
    d.stop();
    // Daemon gone: a failure.
    let r = find(&audit(&s));
    assert_eq!(r["status"], "fail", "{r}");
}
