//! The journal source end to end, with the stand-in `journalctl` (journald does not run on
//! these machines) printing real-shaped `-o json` records: sshd-session lines in the journal
//! become kernel bans, and the cursor survives a restart.

use std::time::Duration;

use crate::harness::*;

fn record(cursor: u32, ident: &str, msg: &str) -> String {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    serde_json::json!({
        "__CURSOR": format!("s=4f1e;i={cursor:x};b=77aa;m={cursor:x};t={us:x};x=1"),
        "__REALTIME_TIMESTAMP": us.to_string(),
        "__MONOTONIC_TIMESTAMP": "86412339501",
        "_BOOT_ID": "5c1e2f8a9b7d4e3fa1c6d2b8e4f70a13",
        "_TRANSPORT": "syslog",
        "PRIORITY": "6",
        "SYSLOG_FACILITY": "4",
        "SYSLOG_IDENTIFIER": ident,
        "_PID": "52113",
        "_COMM": ident,
        "_SYSTEMD_UNIT": "ssh.service",
        "MESSAGE": msg,
    })
    .to_string()
}

#[test]
fn journal_records_become_bans_and_the_cursor_survives_restart() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    let journal =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal/journalctl");
    let s = Setup::new(3, "", "");
    let fake = s.dir.path().join("journal.jsonl");
    std::fs::write(&fake, "").unwrap();
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("sources = [\"auth\"]", "sources = [\"journal\"]")
        .replace(
            "[[jail]]",
            &format!("[[source]]\nname = \"journal\"\njournal_units = [\"ssh.service\", \"sshd.service\"]\njournalctl = \"{}\"\n\n[[jail]]", journal.display()),
        );
    std::fs::write(&s.config, text).unwrap();
    let argv = s.dir.path().join("argv.jsonl");
    let ready = s.dir.path().join("ready.jsonl");
    let env = [
        ("FAKE_JOURNAL", fake.as_path()),
        ("FAKE_JOURNALCTL_ARGV", argv.as_path()),
        ("FAKE_JOURNALCTL_READY", ready.as_path()),
    ];
    let d = Daemon::start_with_env(&ns, &s, &env);
    wait_started(&ready, 1);
    let msgs = [
        (
            "sshd-session",
            "Invalid user admin from 203.0.113.80 port 40112",
        ),
        (
            "sshd-session",
            "Failed password for invalid user admin from 203.0.113.80 port 40112 ssh2",
        ),
        (
            "sshd",
            "Connection closed by invalid user admin 203.0.113.80 port 40112 [preauth]",
        ),
    ];
    let lines: Vec<String> = msgs
        .iter()
        .enumerate()
        .map(|(i, (id, m))| record(i as u32 + 1, id, m))
        .collect();
    append_to(&fake, &lines);
    assert!(
        ns.wait_for(Duration::from_secs(10), |e| e
            .iter()
            .any(|x| x == "203.0.113.80"))
            .is_some(),
        "journal lines did not ban: {:?}\n{}",
        ns.all_elements(),
        d.log()
    );
    d.stop();
    // Written while stopped: picked up from the cursor after restart, old ones not re-read.
    let more: Vec<String> = (0..3)
        .map(|i| {
            record(
                10 + i,
                "sshd-session",
                "Failed password for root from 198.51.100.81 port 22 ssh2",
            )
        })
        .collect();
    append_to(&fake, &more);
    let d = Daemon::start_with_env(&ns, &s, &env);
    assert!(
        ns.wait_for(Duration::from_secs(10), |e| e
            .iter()
            .any(|x| x == "198.51.100.81"))
            .is_some(),
        "missed journal records written while stopped\n{}",
        d.log()
    );
    let st: serde_json::Value =
        serde_json::from_slice(&s.cli(&["status", "--json"]).stdout).unwrap();
    assert_eq!(st["counters"]["records"], 3, "old records re-read: {st}");
    // Killed outright, the daemon takes its journalctl child with it (no orphan following
    // the journal forever).
    d.kill9();
    let pids: Vec<i32> = std::fs::read_to_string(&argv)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["pid"]
                .as_i64()
                .unwrap() as i32
        })
        .collect();
    let t0 = std::time::Instant::now();
    while pids
        .iter()
        .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "journalctl outlived a killed daemon: {pids:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stand-in logs each start; it starts at the end of the journal (`--lines=0`), so records
/// appended before it is up would rightly be skipped.
/// Wait until the stand-in has been started `starts` times and each time read the journal to
/// its end (its ready file has that many lines).
fn wait_started(ready: &std::path::Path, starts: usize) {
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(ready)
        .map(|s| s.lines().count())
        .unwrap_or(0)
        < starts
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "journalctl stand-in never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
