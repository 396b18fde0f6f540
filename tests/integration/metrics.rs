//! The Prometheus endpoint: scraped from inside the daemon's namespace, parsed, checked for
//! the expected families and for bounded labels (no address ever appears).

use std::time::Duration;

use crate::harness::*;

pub(crate) fn scrape(ns: &Netns, path: &str) -> String {
    let code = format!(
        "import urllib.request,sys\ntry:\n print(urllib.request.urlopen('http://127.0.0.1:9847{path}', timeout=5).read().decode())\nexcept Exception as e:\n print('ERROR', e)"
    );
    stdout(&ns.cmd("python3").args(["-c", &code]).output().unwrap())
}

#[test]
fn metrics_are_served_on_loopback_with_bounded_labels() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    let s = Setup::new(2, "", "");
    std::fs::write(&s.log, "").unwrap();
    let d = Daemon::start(&ns, &s);
    s.append(&[
        failed("203.0.113.31", "a"),
        failed("203.0.113.31", "b"),
        "garbage line".to_string(),
    ]);
    assert!(
        ns.wait_for(Duration::from_secs(10), |e| e
            .iter()
            .any(|x| x == "203.0.113.31"))
            .is_some()
    );
    let text = scrape(&ns, "/metrics");
    for want in [
        "ravelin_source_lines_total{source=\"auth\"} 3",
        "ravelin_matches_total{jail=\"sshd\",rule=\"sshd.failed-password\"} 2",
        "ravelin_bans_added_total{jail=\"sshd\",detector=\"threshold\"} 1",
        "ravelin_bans_active{jail=\"sshd\"} 1",
        "# TYPE ravelin_enforce_seconds histogram",
        "ravelin_enforce_seconds_count ",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // Every sample line parses as name{labels} value, and no label carries an address.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("name value");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        assert!(
            !series.contains("203.0.113"),
            "an address leaked into a label: {line}"
        );
    }
    assert!(
        scrape(&ns, "/other").contains("404"),
        "unknown paths are refused"
    );
    d.stop();
}

/// The Grafana dashboard in the repo only queries metric families the daemon really exports.
#[test]
fn the_grafana_dashboard_uses_only_exported_families() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dashboards/grafana-ravelin.json"
    ))
    .unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/daemon/worker.rs"))
        .unwrap()
        + &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/metrics/mod.rs"))
            .unwrap()
        + &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/daemon/decoy.rs"))
            .unwrap();
    let mut n = 0;
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for word in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("ravelin_"))
            {
                let family = word.trim_end_matches("_bucket");
                assert!(
                    src.contains(&format!("\"{family}\"")),
                    "panel {:?} queries {word}, which is not exported",
                    p["title"]
                );
                n += 1;
            }
        }
    }
    assert!(n >= 10, "the dashboard queries too little: {n}");
}

/// `ravelin top` under a real terminal (tmux): the screen shows the jail, the attempt that
/// just arrived and the ban it caused.
#[test]
fn top_shows_live_attacks_and_bans_in_a_terminal() {
    if !can_run() {
        return;
    }
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("SKIP: tmux missing (the README's test command installs it)");
        return;
    }
    let ns = Netns::new();
    let s = Setup::new(2, "", "");
    std::fs::write(&s.log, "").unwrap();
    let d = Daemon::start(&ns, &s);
    s.append(&[failed("203.0.113.177", "a"), failed("203.0.113.177", "b")]);
    assert!(
        ns.wait_for(Duration::from_secs(10), |e| e
            .iter()
            .any(|x| x == "203.0.113.177"))
            .is_some()
    );
    let session = format!("rvtop{}", std::process::id());
    let cmd = format!("{BIN} --config {} top --interval 0.3", s.config.display());
    let st = std::process::Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "160",
            "-y",
            "50",
            &cmd,
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let mut screen = String::new();
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(400));
        let out = std::process::Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &session])
            .output()
            .unwrap();
        screen = stdout(&out);
        if screen.contains("RECENT BANS") && screen.contains("203.0.113.177/32") {
            break;
        }
    }
    let _ = std::process::Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    for want in [
        "ravelin top",
        "JAILS",
        "sshd",
        "ATTEMPTS NOW",
        "203.0.113.177",
        "RECENT BANS",
        "203.0.113.177/32",
        "threshold",
    ] {
        assert!(
            screen.contains(want),
            "missing {want:?} on screen:\n{screen}"
        );
    }
    d.stop();
}
