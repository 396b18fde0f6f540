//! The journal follower against a stand-in `journalctl` (tests/fixtures/journal/journalctl)
//! that prints real-shaped `-o json` records from a file the test appends to.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

use tempfile::TempDir;

use super::*;

const ARRIVES: Duration = Duration::from_secs(5);

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal")
}

/// The fixture's records, one JSON line each.
fn fixture_records() -> Vec<String> {
    std::fs::read_to_string(fixture_dir().join("sshd.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn cursor_of(record: &str) -> String {
    let v: Value = serde_json::from_str(record).unwrap();
    v["__CURSOR"].as_str().unwrap().to_owned()
}

struct Fake {
    dir: TempDir,
    journal: PathBuf,
    argv: PathBuf,
    ready: PathBuf,
    journalctl: PathBuf,
}

/// A temp "journal" holding the fixture records, and a wrapper that points the stand-in at it.
fn fake() -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let argv = dir.path().join("argv.jsonl");
    let ready = dir.path().join("ready.jsonl");
    std::fs::copy(fixture_dir().join("sshd.jsonl"), &journal).unwrap();
    let journalctl = dir.path().join("journalctl");
    let script = format!(
        "#!/bin/sh\nFAKE_JOURNAL='{}' FAKE_JOURNALCTL_ARGV='{}' FAKE_JOURNALCTL_READY='{}' FAKE_JOURNALCTL_STDERR='fake journalctl started' exec '{}' \"$@\"\n",
        journal.display(),
        argv.display(),
        ready.display(),
        fixture_dir().join("journalctl").display()
    );
    std::fs::write(&journalctl, script).unwrap();
    std::fs::set_permissions(
        &journalctl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    Fake {
        dir,
        journal,
        argv,
        ready,
        journalctl,
    }
}

impl Fake {
    fn append(&self, line: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.journal)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }

    /// One entry per journalctl started: (pid, argv).
    fn invocations(&self) -> Vec<(u32, Vec<String>)> {
        let Ok(text) = std::fs::read_to_string(&self.argv) else {
            return Vec::new();
        };
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let argv = v["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect();
                (v["pid"].as_u64().unwrap() as u32, argv)
            })
            .collect()
    }

    /// Wait until the stand-in has read the journal to its end `n` times in all, so records
    /// appended now are new to it (rather than sleeping and hoping).
    async fn wait_ready(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + ARRIVES;
        loop {
            let got = std::fs::read_to_string(&self.ready)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            if got >= n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "journalctl reached the end {got} times, wanted {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_invocations(&self, n: usize) -> Vec<(u32, Vec<String>)> {
        let deadline = tokio::time::Instant::now() + ARRIVES;
        loop {
            let got = self.invocations();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "journalctl started {} times, wanted {n}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Harness {
    rx: mpsc::Receiver<SourceEvent>,
    shutdown: watch::Sender<bool>,
    stats: Arc<SourceStats>,
    task: JoinHandle<()>,
    checkpoints: Vec<String>,
}

fn start(journalctl: &Path, cursor: Option<String>) -> Harness {
    let (tx, rx) = mpsc::channel(64);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let stats = Arc::new(SourceStats::default());
    let spec = JournalSpec {
        name: Arc::from("journal"),
        journalctl: journalctl.to_owned(),
        units: vec!["ssh.service".into()],
    };
    let task = spawn_with(
        spec,
        cursor,
        tx,
        shutdown_rx,
        stats.clone(),
        Duration::from_millis(100),
    );
    Harness {
        rx,
        shutdown,
        stats,
        task,
        checkpoints: Vec::new(),
    }
}

/// The body fields of a journal record, for compact assertions.
type Fields = (String, Option<String>, Option<String>, Option<u64>);

impl Harness {
    async fn record_within(&mut self, wait: Duration) -> Option<Fields> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.rx.recv())
                .await
                .ok()
                .flatten()?
            {
                SourceEvent::Record(Record { source, body }) => {
                    assert_eq!(&*source, "journal");
                    match body {
                        RecordBody::Journal {
                            message,
                            identifier,
                            unit,
                            realtime_us,
                        } => {
                            return Some((message, identifier, unit, realtime_us));
                        }
                        other => panic!("unexpected body {other:?}"),
                    }
                }
                SourceEvent::Checkpoint { key, value } => {
                    assert_eq!(key, "journal:journal");
                    self.checkpoints.push(value);
                }
                SourceEvent::Observation(o) => panic!("a journal source made an observation {o:?}"),
            }
        }
    }

    async fn messages(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            match self.record_within(ARRIVES).await {
                Some(r) => out.push(r.0),
                None => panic!("only got {out:?}, wanted {n}"),
            }
        }
        out
    }

    async fn quiet(&mut self) {
        if let Some(r) = self.record_within(Duration::from_millis(300)).await {
            panic!("unexpected record {r:?}");
        }
    }

    /// Shut down; returns the last checkpoint.
    async fn stop(mut self) -> Option<String> {
        self.shutdown.send_replace(true);
        while let Ok(Some(ev)) = tokio::time::timeout(ARRIVES, self.rx.recv()).await {
            match ev {
                SourceEvent::Checkpoint { value, .. } => self.checkpoints.push(value),
                SourceEvent::Record(r) => panic!("record after shutdown {r:?}"),
                SourceEvent::Observation(o) => panic!("unexpected observation {o:?}"),
            }
        }
        tokio::time::timeout(ARRIVES, self.task)
            .await
            .expect("ends promptly")
            .expect("no panic");
        self.checkpoints.pop()
    }

    fn stat(&self, f: impl Fn(&SourceStats) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.stats).load(Ordering::Relaxed)
    }
}

/// Gone or a zombie awaiting its reaper.
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn arguments_are_a_vector_without_a_shell() {
    let spec = JournalSpec {
        name: Arc::from("j"),
        journalctl: "/usr/bin/journalctl".into(),
        units: vec!["ssh.service".into(), "nginx.service".into()],
    };
    let fresh: Vec<OsString> = args(&spec, None);
    assert_eq!(
        fresh,
        [
            "-o",
            "json",
            "--follow",
            "--no-pager",
            "--output-fields=MESSAGE,SYSLOG_IDENTIFIER,_SYSTEMD_UNIT",
            "--lines=0",
            "--unit=ssh.service",
            "--unit=nginx.service"
        ]
    );
    let resumed = args(&spec, Some("s=1;i=2"));
    assert!(resumed.contains(&OsString::from("--after-cursor=s=1;i=2")));
    assert!(!resumed.contains(&OsString::from("--lines=0")));
}

#[test]
fn parses_string_bytes_repeated_and_null_messages() {
    let stats = SourceStats::default();
    let e = parse_entry(
        br#"{"__CURSOR":"s=a;i=1","__REALTIME_TIMESTAMP":"1795240933250117","SYSLOG_IDENTIFIER":"sshd","_SYSTEMD_UNIT":"ssh.service","MESSAGE":"Failed password for root from 203.0.113.5 port 52113 ssh2"}"#,
        &stats,
    )
    .unwrap();
    assert_eq!(e.cursor.as_deref(), Some("s=a;i=1"));
    assert_eq!(
        e.body,
        Some(RecordBody::Journal {
            message: "Failed password for root from 203.0.113.5 port 52113 ssh2".into(),
            identifier: Some("sshd".into()),
            unit: Some("ssh.service".into()),
            realtime_us: Some(1_795_240_933_250_117),
        })
    );
    let bytes = parse_entry(br#"{"MESSAGE":[104,105,255]}"#, &stats).unwrap();
    assert!(
        matches!(bytes.body, Some(RecordBody::Journal { ref message, .. }) if message == "hi\u{fffd}")
    );
    assert_eq!(stats.invalid_utf8.load(Ordering::Relaxed), 1);
    let repeated = parse_entry(
        br#"{"MESSAGE":["first","second"],"SYSLOG_IDENTIFIER":[[115,115,104,100]]}"#,
        &stats,
    )
    .unwrap();
    assert!(
        matches!(repeated.body, Some(RecordBody::Journal { ref message, ref identifier, .. }) if message == "first" && identifier.as_deref() == Some("sshd"))
    );
    let null = parse_entry(br#"{"__CURSOR":"s=a;i=2","MESSAGE":null}"#, &stats).unwrap();
    assert_eq!(
        null,
        Entry {
            body: None,
            cursor: Some("s=a;i=2".into())
        }
    );
    assert_eq!(stats.cut_lines.load(Ordering::Relaxed), 1);
    // Out-of-range "bytes" and odd shapes yield no message rather than a panic.
    for odd in [
        &br#"{"MESSAGE":[256]}"#[..],
        br#"{"MESSAGE":[-1]}"#,
        br#"{"MESSAGE":{"a":1}}"#,
        br#"{"MESSAGE":7}"#,
    ] {
        assert_eq!(parse_entry(odd, &stats).unwrap().body, None);
    }
    // A cursor that could not be passed back as an argument is ignored.
    let bad_cursor = parse_entry(
        b"{\"__CURSOR\":\"s=a\\u0000;i=3\",\"MESSAGE\":\"m\"}",
        &stats,
    )
    .unwrap();
    assert_eq!(bad_cursor.cursor, None);
    for garbage in [
        &b"not json"[..],
        b"",
        b"[null,null,null,null,null]",
        b"{\"MESSAGE\":",
        b"42",
    ] {
        assert!(parse_entry(garbage, &stats).is_err(), "{garbage:?}");
    }
}

#[tokio::test]
async fn bounded_line_reader_skips_overlong_lines() {
    let input: &[u8] = b"short\nthis one is far too long\nok\nunterminated";
    let mut r = BufReader::with_capacity(4, input);
    let mut buf = Vec::new();
    let mut got = Vec::new();
    loop {
        let read = read_bounded_line(&mut r, &mut buf, 10).await.unwrap();
        if read == LineRead::Eof {
            break;
        }
        got.push((read, String::from_utf8(buf.clone()).unwrap()));
    }
    assert_eq!(
        got,
        [
            (LineRead::Line, "short".into()),
            (LineRead::TooLong, String::new()),
            (LineRead::Line, "ok".into())
        ]
    );
}

#[tokio::test]
async fn records_arrive_with_their_fields_and_a_checkpoint() {
    let f = fake();
    let records = fixture_records();
    let mut h = start(&f.journalctl, None);
    let inv = f.wait_invocations(1).await;
    assert!(inv[0].1.contains(&"--lines=0".to_owned()), "{:?}", inv[0].1);
    assert!(inv[0].1.contains(&"--unit=ssh.service".to_owned()));
    assert!(inv[0].1.contains(&"--follow".to_owned()));
    // Once the child has reached the end of the journal, "log" new entries.
    f.wait_ready(1).await;
    h.quiet().await;
    for r in &records {
        f.append(r);
    }
    let first = h.record_within(ARRIVES).await.unwrap();
    assert_eq!(
        first,
        (
            "Failed password for root from 203.0.113.5 port 52113 ssh2".to_owned(),
            Some("sshd".to_owned()),
            Some("ssh.service".to_owned()),
            Some(1_795_240_933_250_117)
        )
    );
    let second = h.record_within(ARRIVES).await.unwrap();
    assert_eq!(second.0, "Invalid user admin from 198.51.100.23 port 40112");
    assert_eq!(second.1.as_deref(), Some("sshd-session"));
    // The cron.service entry is not asked for (--unit), so it never shows up.
    let rest = h.messages(3).await;
    assert_eq!(
        rest,
        [
            "Connection closed by authenticating user root 203.0.113.5 port 52113 [preauth]",
            "Invalid user \u{fffd}\u{fffd}adm from 192.0.2.77 port 2222",
            "Failed password for invalid user oracle from 203.0.113.9 port 33008 ssh2",
        ]
    );
    h.quiet().await;
    assert_eq!(h.stat(|s| &s.invalid_utf8), 1, "the byte-array MESSAGE");
    let last = h.stop().await;
    assert_eq!(last, Some(cursor_of(records.last().unwrap())));
}

#[tokio::test]
async fn restart_with_cursor_resumes_after_it() {
    let f = fake();
    let records = fixture_records();
    // Stopped after the first entry: resume must start with the second.
    let mut h = start(&f.journalctl, Some(cursor_of(&records[0])));
    let got = h.messages(4).await;
    assert_eq!(got[0], "Invalid user admin from 198.51.100.23 port 40112");
    assert_eq!(
        got[3],
        "Failed password for invalid user oracle from 203.0.113.9 port 33008 ssh2"
    );
    h.quiet().await;
    let inv = f.invocations();
    assert!(
        inv[0]
            .1
            .contains(&format!("--after-cursor={}", cursor_of(&records[0]))),
        "{:?}",
        inv[0].1
    );
    assert!(!inv[0].1.contains(&"--lines=0".to_owned()));
    assert_eq!(
        h.checkpoints.last(),
        Some(&cursor_of(&records[5])),
        "checkpoint after the batch"
    );
    // New entries after a restart from the last checkpoint, and nothing twice.
    let cursor = h.stop().await;
    f.append(
        &records[0]
            .replace("i=3a41c7", "i=3a41f0")
            .replace("52113 ssh2", "52999 ssh2"),
    );
    let mut h = start(&f.journalctl, cursor);
    assert_eq!(
        h.messages(1).await,
        ["Failed password for root from 203.0.113.5 port 52999 ssh2"]
    );
    h.quiet().await;
}

#[tokio::test]
async fn garbage_and_overlong_lines_are_skipped_and_counted() {
    let f = fake();
    let records = fixture_records();
    let mut h = start(&f.journalctl, Some(cursor_of(&records[5])));
    f.wait_invocations(1).await;
    f.wait_ready(1).await;
    f.append("this is not json {");
    f.append(&format!(
        "{{\"_SYSTEMD_UNIT\":\"ssh.service\",\"MESSAGE\":\"{}\"}}",
        "x".repeat(MAX_JSON_LINE)
    ));
    f.append(&records[0].replace("i=3a41c7", "i=3a41f1"));
    assert_eq!(
        h.messages(1).await,
        ["Failed password for root from 203.0.113.5 port 52113 ssh2"]
    );
    assert_eq!(h.stat(|s| &s.cut_lines), 1, "overlong line");
    // One for the garbage line, one for the stand-in's stderr greeting.
    assert_eq!(h.stat(|s| &s.errors), 2);
    assert_eq!(h.stat(|s| &s.lines), 1);
}

#[tokio::test]
async fn a_dying_child_is_restarted_from_the_last_cursor() {
    let f = fake();
    let records = fixture_records();
    let mut h = start(&f.journalctl, Some(cursor_of(&records[4])));
    assert_eq!(
        h.messages(1).await,
        ["Failed password for invalid user oracle from 203.0.113.9 port 33008 ssh2"]
    );
    let first = f.wait_invocations(1).await[0].0;
    f.append("#exit 3");
    // Logged while no child runs: must not be lost.
    f.append(&records[1].replace("i=3a41ca", "i=3a41f2"));
    assert_eq!(
        h.messages(1).await,
        ["Invalid user admin from 198.51.100.23 port 40112"]
    );
    let inv = f.wait_invocations(2).await;
    assert!(
        inv[1]
            .1
            .contains(&format!("--after-cursor={}", cursor_of(&records[5]))),
        "{:?}",
        inv[1].1
    );
    assert!(process_gone(first));
    assert_eq!(h.stat(|s| &s.rotations), 1);
    // Shutdown kills the running child.
    let second = inv[1].0;
    h.stop().await;
    let deadline = tokio::time::Instant::now() + ARRIVES;
    while !process_gone(second) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "child {second} still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn missing_journalctl_is_retried_and_shutdown_stays_prompt() {
    let f = fake();
    let missing = f.dir.path().join("no-such-journalctl");
    let h = start(&missing, Some("s=abc;i=1".into()));
    // 100 ms, 200 ms, ... : a few attempts, each a warning; none drops the cursor.
    let deadline = tokio::time::Instant::now() + ARRIVES;
    while h.stat(|s| &s.errors) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no retries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = std::time::Instant::now();
    assert_eq!(h.stop().await.as_deref(), Some("s=abc;i=1"));
    assert!(t0.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_rejected_cursor_is_eventually_dropped() {
    let f = fake();
    let mut h = start(&f.journalctl, Some("s=unknown;i=1".into()));
    // 100 + 200 ms of backoff after two failures, then the third failure drops the cursor.
    let inv = f.wait_invocations(4).await;
    assert!(inv[2].1.iter().any(|a| a.starts_with("--after-cursor=")));
    assert!(inv[3].1.contains(&"--lines=0".to_owned()), "{:?}", inv[3].1);
    f.wait_ready(1).await;
    f.append(&fixture_records()[0].replace("i=3a41c7", "i=3a41f3"));
    assert_eq!(
        h.messages(1).await,
        ["Failed password for root from 203.0.113.5 port 52113 ssh2"]
    );
}
