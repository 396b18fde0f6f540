//! The CLI's contract: config checking, clear start-up errors, dry-run backend.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;

const SAMPLE: &str = include_str!("../../docs/sample.toml");

#[test]
fn check_config_accepts_the_documented_sample() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.toml");
    std::fs::write(&p, SAMPLE).unwrap();
    // --config before and after the subcommand name.
    for args in [
        vec!["--config", p.to_str().unwrap(), "check-config"],
        vec!["check-config", "--config", p.to_str().unwrap()],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("jail sshd: 5 failures in 10m -> ban 10m"),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn a_bad_config_lists_every_error_and_the_daemon_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.toml");
    std::fs::write(&p, "[enforce]\nbackend = \"ipset\"\n[[jail]]\nname = \"sshd\"\nsources = [\"auth\"]\nfind_time = \"ten\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for want in [
        "enforce.backend",
        "jail[0].sources[0]",
        "jail[0].find_time",
        "3 errors",
    ] {
        assert!(err.contains(want), "missing {want}: {err}");
    }
    let out = Command::new(BIN)
        .args(["run", "--config", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("enforce.backend"), "{}", stderr(&out));
}

#[test]
fn missing_nftables_is_a_clear_error_naming_the_fix() {
    let s = Setup::new(3, "", "");
    let text = std::fs::read_to_string(&s.config).unwrap().replace(
        "table = \"ravelin\"",
        "table = \"ravelin\"\nnft = \"/nonexistent/nft\"",
    );
    std::fs::write(&s.config, text).unwrap();
    let out = s.cli(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("apt-get install nftables") && err.contains("backend = \"log\""),
        "{err}"
    );
}

#[test]
fn the_log_backend_decides_and_records_without_touching_the_firewall() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    let s = Setup::new(2, "", "");
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("backend = \"nftables\"", "backend = \"log\"");
    std::fs::write(&s.config, text).unwrap();
    std::fs::write(&s.log, "").unwrap();
    let d = Daemon::start(&ns, &s);
    s.append(&[failed("203.0.113.5", "a"), failed("203.0.113.5", "b")]);
    let t0 = std::time::Instant::now();
    loop {
        let bans = stdout(&s.cli(&["bans"]));
        if bans.contains("203.0.113.5/32") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "no recorded ban: {bans}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ruleset = stdout(&ns.cmd("nft").args(["list", "ruleset"]).output().unwrap());
    assert!(
        ruleset.trim().is_empty(),
        "log backend touched nftables: {ruleset}"
    );
    d.stop();
}

#[test]
fn cli_without_a_daemon_says_how_to_fix_it() {
    let s = Setup::new(3, "", "");
    let out = s.cli(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ravelin run"), "{}", stderr(&out));
}

#[test]
fn an_unreadable_store_stops_the_start_with_a_clear_error() {
    let s = Setup::new(3, "", "");
    let state = s.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("ravelin.db"), vec![b'x'; 4096]).unwrap();
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("backend = \"nftables\"", "backend = \"log\"");
    std::fs::write(&s.config, text).unwrap();
    let out = s.cli(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot open the store") && err.contains("ravelin.db"),
        "{err}"
    );
    // Nothing was thrown away: the file is still there for the operator to inspect.
    assert_eq!(std::fs::read(state.join("ravelin.db")).unwrap().len(), 4096);
}

#[test]
fn the_control_socket_is_private() {
    if !can_run() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let ns = Netns::new();
    let s = Setup::new(3, "", "");
    let d = Daemon::start(&ns, &s);
    let sock = s.dir.path().join("run/ravelin.sock");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sock), 0o600);
    assert_eq!(mode(sock.parent().unwrap()), 0o700);
    // A second daemon on the same socket refuses to start instead of stealing it.
    let out = s.cli(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already listening"),
        "{}",
        stderr(&out)
    );
    assert!(s.cli(&["status"]).status.success());
    d.stop();
    assert!(!sock.exists(), "socket left behind after a clean stop");
}
