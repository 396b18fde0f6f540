//! Log rotation with the daemon running: every line written around a rotation is seen.
//! max_retry = 1 makes each failure line its own ban, so "no line lost" is "every address banned".

use std::time::Duration;

use crate::harness::*;

fn addrs(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}.{i}")).collect()
}

fn lines(a: &[String]) -> Vec<String> {
    a.iter().map(|x| failed(x, "root")).collect()
}

fn all_banned(ns: &Netns, want: &[String]) -> bool {
    ns.wait_for(Duration::from_secs(10), |e| {
        want.iter().all(|w| e.contains(w))
    })
    .is_some()
}

#[test]
fn rename_copytruncate_and_recreate_lose_no_lines() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    let s = Setup::new(1, "", "");
    std::fs::write(&s.log, "").unwrap();
    let d = Daemon::start(&ns, &s);
    let mut want = Vec::new();

    // Rename rotation: lines written to the old file after the rename still count.
    let a = addrs("203.0.113", 5);
    s.append(&lines(&a[..2]));
    let old = s.log.with_extension("log.1");
    std::fs::rename(&s.log, &old).unwrap();
    append_to(&old, &lines(&a[2..3]));
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(&s.log, "").unwrap();
    s.append(&lines(&a[3..]));
    want.extend(a);
    assert!(
        all_banned(&ns, &want),
        "rename: missing {:?}\n{}",
        missing(&ns, &want),
        d.log()
    );

    // copytruncate: the file is copied then truncated in place.
    let b = addrs("198.51.100", 4);
    s.append(&lines(&b[..2]));
    // What is written before the copy is read from the live file or lost with it (copytruncate
    // can lose lines for any reader); wait until the daemon has read them.
    want.extend(b[..2].iter().cloned());
    assert!(
        all_banned(&ns, &want),
        "before copytruncate: missing {:?}\n{}",
        missing(&ns, &want),
        d.log()
    );
    std::fs::copy(&s.log, s.dir.path().join("auth.log.2")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&s.log)
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.append(&lines(&b[2..]));
    want.extend(b[2..].iter().cloned());
    assert!(
        all_banned(&ns, &want),
        "copytruncate: missing {:?}\n{}",
        missing(&ns, &want),
        d.log()
    );

    // Delete and recreate.
    let c = addrs("192.0.2", 4);
    let c: Vec<String> = c.into_iter().filter(|x| x != "192.0.2.10").collect();
    s.append(&lines(&c[..1]));
    std::thread::sleep(Duration::from_millis(100));
    std::fs::remove_file(&s.log).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.append(&lines(&c[1..]));
    want.extend(c);
    assert!(
        all_banned(&ns, &want),
        "recreate: missing {:?}\n{}",
        missing(&ns, &want),
        d.log()
    );
    d.stop();
}

#[test]
fn restart_neither_rereads_nor_misses_lines() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    let s = Setup::new(1, "", "");
    std::fs::write(&s.log, "").unwrap();
    let d = Daemon::start(&ns, &s);
    s.append(&[failed("203.0.113.1", "a")]);
    assert!(all_banned(&ns, &["203.0.113.1".to_string()]));
    d.stop();
    // While stopped: a new line arrives, and the old ban is lifted by hand in the kernel.
    s.append(&[failed("203.0.113.2", "a")]);
    let d = Daemon::start(&ns, &s);
    assert!(
        all_banned(&ns, &["203.0.113.2".to_string()]),
        "missed a line written while stopped:\n{}",
        d.log()
    );
    // The first line was not re-read: its address is banned once, at level 0.
    let v: serde_json::Value = serde_json::from_slice(&s.cli(&["bans", "--json"]).stdout).unwrap();
    let levels: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["target"].as_str().unwrap().to_string(),
                b["level"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        levels.contains(&("203.0.113.1/32".to_string(), 0)),
        "{levels:?}"
    );
    let st = stdout(&s.cli(&["status", "--json"]));
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_eq!(st["counters"]["records"], 1, "re-read old lines: {st}");
    d.stop();
}

fn missing(ns: &Netns, want: &[String]) -> Vec<String> {
    let e = ns.all_elements();
    want.iter().filter(|w| !e.contains(w)).cloned().collect()
}

#[test]
fn a_log_that_does_not_exist_yet_is_picked_up_when_it_appears() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    let s = Setup::new(1, "", "");
    assert!(!s.log.exists());
    let d = Daemon::start(&ns, &s);
    std::thread::sleep(Duration::from_millis(100));
    // Created after start: read from its first line.
    s.append(&lines(&["203.0.113.77".to_string()]));
    assert!(
        all_banned(&ns, &["203.0.113.77".to_string()]),
        "{}",
        d.log()
    );
    d.stop();
}
