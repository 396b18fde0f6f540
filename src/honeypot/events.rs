//! What the decoy tells the world: Cowrie-compatible JSON lines and pipeline [`Observation`]s.
//!
//! Why shaped so:
//! - **Cowrie's field names, unchanged.** Existing Cowrie consumers (ELK dashboards, DShield
//!   submitters, threat-feed scripts) read `eventid`, `src_ip`, `session`, `timestamp`, ...;
//!   the JSON lines use exactly those names and formats (timestamp ISO 8601, microseconds, `Z`).
//! - **Sessions never wait for the disk.** Sessions hand events to one writer through a
//!   bounded channel with `try_send`; when the writer falls behind an event is dropped and
//!   counted, never buffered without bound and never allowed to stall a session.
//! - **One write per burst.** The writer is a thread of its own doing plain blocking writes
//!   (not `tokio::fs`, which sends every write through the blocking pool and back). Woken by
//!   an event, it waits [`BATCH_WINDOW`] for the rest of the burst and writes it at once:
//!   under load that is one wakeup and one `write` per few milliseconds instead of two
//!   cross-thread handoffs per event, and nobody reading the file notices 5 ms.
//! - **The ban pipeline gets the same events as typed observations** (`decoy.login.failed`,
//!   `decoy.login.success`, `decoy.command`, ...) through the daemon's ordinary
//!   [`SourceEvent`] channel, so jails select them by rule id like any other source.
//!
//! [`Observation`]: crate::event::Observation

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::event::{Observation, normalize_addr};
use crate::source::SourceEvent;

/// How many events may wait for the writer before new ones are dropped.
pub const EVENT_QUEUE: usize = 4096;

/// How long the writer lets a burst of events gather before writing it.
pub const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

/// Largest single write.
const WRITE_CHUNK: usize = 60 * 1024;

/// The source name observations carry.
pub const SOURCE_NAME: &str = "decoy";

/// One decoy event: a Cowrie `eventid`, the session it belongs to, and its own fields.
#[derive(Debug, Clone)]
pub struct DecoyEvent {
    /// Cowrie's event id, e.g. `cowrie.login.failed`.
    pub eventid: &'static str,
    /// When it happened.
    pub time: SystemTime,
    /// The client's address and port.
    pub src: SocketAddr,
    /// The decoy's address and port.
    pub dst: SocketAddr,
    /// Cowrie-style 12 hex digit session id.
    pub session: Arc<str>,
    /// Event-specific fields (`username`, `password`, `input`, `message`, ...).
    pub fields: Map<String, Value>,
}

impl DecoyEvent {
    /// The event as one Cowrie JSON object.
    pub fn to_json(&self, sensor: &str) -> Value {
        let mut m = Map::new();
        m.insert("eventid".into(), json!(self.eventid));
        m.insert(
            "src_ip".into(),
            json!(normalize_addr(self.src.ip()).to_string()),
        );
        m.insert("src_port".into(), json!(self.src.port()));
        m.insert(
            "dst_ip".into(),
            json!(normalize_addr(self.dst.ip()).to_string()),
        );
        m.insert("dst_port".into(), json!(self.dst.port()));
        m.insert("session".into(), json!(&*self.session));
        m.insert("protocol".into(), json!("ssh"));
        m.insert("sensor".into(), json!(sensor));
        m.insert("timestamp".into(), json!(timestamp(self.time)));
        // Event fields last: a `cowrie.direct-tcpip.request` names the requested target in
        // `dst_ip`/`dst_port`, as Cowrie does.
        for (k, v) in &self.fields {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }

    /// The pipeline rule id for this event, if the ban pipeline cares about it.
    pub fn rule(&self) -> Option<&'static str> {
        rule_of(
            self.eventid,
            self.fields.get("stage").and_then(Value::as_str),
        )
    }

    /// The event as an [`Observation`] for the ban pipeline.
    pub fn observation(&self) -> Option<Observation> {
        let rule = self.rule()?;
        Some(Observation {
            time: self.time,
            addr: normalize_addr(self.src.ip()),
            user: self
                .fields
                .get("username")
                .and_then(Value::as_str)
                .map(str::to_owned),
            rule: Arc::from(rule),
            source: Arc::from(SOURCE_NAME),
        })
    }
}

/// Every event id the decoy writes (Cowrie's, plus ravelin's stage event).
pub const EVENT_IDS: &[&str] = &[
    "cowrie.session.connect",
    "cowrie.client.version",
    "cowrie.client.kex",
    "cowrie.client.fingerprint",
    "cowrie.client.size",
    "cowrie.login.failed",
    "cowrie.login.success",
    "cowrie.command.input",
    "cowrie.command.failed",
    "cowrie.session.file_download",
    "cowrie.session.params",
    "cowrie.direct-tcpip.request",
    "cowrie.log.closed",
    "cowrie.session.closed",
    STAGE_EVENT,
    STATS_EVENT,
];

/// ravelin's own event: the decoy process's counters (read by the daemon, never written to
/// the Cowrie file).
pub const STATS_EVENT: &str = "ravelin.decoy.stats";

/// The counters a [`STATS_EVENT`] carries (fixed, so metric names stay bounded).
pub const STATS_FIELDS: &[&str] = &[
    "sessions_open",
    "events_dropped",
    "observations_dropped",
    "event_write_errors",
    "recordings_lines",
    "recordings_dropped",
    "recordings_truncated",
    "recordings_rotated_out",
    "recordings_write_errors",
];

/// ravelin's own event: a session reached a stage of the kill chain (field `stage`).
pub const STAGE_EVENT: &str = "ravelin.session.stage";

/// The stages, in kill-chain order.
pub const STAGES: &[&str] = &[
    "spray",
    "probe",
    "fingerprint",
    "persistence",
    "download",
    "tunnel",
];

/// `id` as one of [`EVENT_IDS`] (a bounded label), or `None`.
pub fn known_eventid(id: &str) -> Option<&'static str> {
    EVENT_IDS.iter().copied().find(|k| *k == id)
}

/// `s` as one of [`STAGES`], or `None`.
pub fn known_stage(s: &str) -> Option<&'static str> {
    STAGES.iter().copied().find(|k| *k == s)
}

/// The pipeline rule id for an event id (and, for stage events, its stage).
pub fn rule_of(eventid: &str, stage: Option<&str>) -> Option<&'static str> {
    Some(match eventid {
        "cowrie.session.connect" => "decoy.connect",
        "cowrie.login.failed" => "decoy.login.failed",
        "cowrie.login.success" => "decoy.login.success",
        "cowrie.command.input" => "decoy.command",
        "cowrie.session.file_download" => "decoy.download",
        "cowrie.direct-tcpip.request" => "decoy.tunnel",
        STAGE_EVENT => match known_stage(stage?)? {
            "spray" => "decoy.stage.spray",
            "probe" => "decoy.stage.probe",
            "fingerprint" => "decoy.stage.fingerprint",
            "persistence" => "decoy.stage.persistence",
            "download" => "decoy.stage.download",
            _ => "decoy.stage.tunnel",
        },
        _ => return None,
    })
}

/// An observation from one JSON line the decoy process wrote (untrusted: the address must
/// parse, user names are cut, and a time in the future becomes `now`).
pub fn observation_from_json(v: &Value, now: SystemTime) -> Option<Observation> {
    let eventid = v.get("eventid")?.as_str()?;
    // In Cowrie's format this event's `src_ip` is the tunnel's claimed originator, chosen by
    // the client: never a ban target. The session's `tunnel` stage event carries the peer.
    if eventid == "cowrie.direct-tcpip.request" {
        return None;
    }
    let rule = rule_of(eventid, v.get("stage").and_then(Value::as_str))?;
    let addr: std::net::IpAddr = v.get("src_ip")?.as_str()?.parse().ok()?;
    let time = v
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(SystemTime::from)
        .map_or(now, |t| t.min(now));
    let user = v
        .get("username")
        .and_then(Value::as_str)
        .map(|u| u.chars().take(256).collect());
    Some(Observation {
        time,
        addr: normalize_addr(addr),
        user,
        rule: Arc::from(rule),
        source: Arc::from(SOURCE_NAME),
    })
}

/// ISO 8601 UTC with microseconds and `Z`, as Cowrie writes it.
pub fn timestamp(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Counters for the event path.
#[derive(Debug, Default)]
pub struct EventStats {
    /// Events written to the JSON file.
    pub written: AtomicU64,
    /// Events dropped because the writer queue was full.
    pub dropped: AtomicU64,
    /// Observations dropped because the pipeline channel was full or closed.
    pub observations_dropped: AtomicU64,
    /// Write errors on the events file.
    pub write_errors: AtomicU64,
}

/// The sessions' handle to the event path: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<DecoyEvent>,
    observations: Option<mpsc::Sender<SourceEvent>>,
    /// Shared counters.
    pub stats: Arc<EventStats>,
}

impl EventSink {
    /// Hand an event to the writer and, if it matters to the bans, to the pipeline.
    pub fn emit(&self, ev: DecoyEvent) {
        if let Some(tx) = &self.observations
            && let Some(obs) = ev.observation()
            && tx.try_send(SourceEvent::Observation(obs)).is_err()
        {
            self.stats
                .observations_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
        if self.tx.try_send(ev).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Start the writer appending JSON lines to `path` (created 0640 if absent). Returns the sink
/// the sessions use. `observations` receives the pipeline events, if given.
pub fn start_writer(
    path: &Path,
    sensor: String,
    observations: Option<mpsc::Sender<SourceEvent>>,
) -> std::io::Result<(EventSink, tokio::task::JoinHandle<()>)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    let label = path.display().to_string();
    Ok(spawn_writer(file, label, sensor, observations, false))
}

fn spawn_writer(
    file: std::fs::File,
    label: String,
    sensor: String,
    observations: Option<mpsc::Sender<SourceEvent>>,
    exit_when_unread: bool,
) -> (EventSink, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let stats = Arc::new(EventStats::default());
    let out = Output {
        file,
        label,
        stats: stats.clone(),
        exit_when_unread,
    };
    // A thread for the process's lifetime (the blocking pool gives it one of its own).
    let task = tokio::task::spawn_blocking(move || writer(out, sensor, rx));
    let sink = EventSink {
        tx,
        observations,
        stats,
    };
    (sink, task)
}

/// Start the writer on an inherited descriptor (the pipe to the daemon, which writes the
/// events file and feeds the ban pipeline). The process exits when the pipe's reader is gone:
/// a decoy nobody listens to must not keep running.
pub fn start_fd_writer(
    fd: std::os::fd::RawFd,
    sensor: String,
    observations: Option<mpsc::Sender<SourceEvent>>,
) -> std::io::Result<(EventSink, tokio::task::JoinHandle<()>)> {
    use std::os::fd::FromRawFd;
    // Refuse descriptors that are not open rather than take ownership of a random number.
    nix::fcntl::fcntl(
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .map_err(std::io::Error::from)?;
    // SAFETY: the descriptor was handed to this process for this purpose (checked open above)
    // and nothing else in the process uses it.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    Ok(spawn_writer(
        file,
        format!("fd {fd}"),
        sensor,
        observations,
        true,
    ))
}

/// Where the writer puts its lines, and what it counts.
struct Output {
    file: std::fs::File,
    label: String,
    stats: Arc<EventStats>,
    exit_when_unread: bool,
}

impl Output {
    fn write(&mut self, buf: &[u8]) {
        use std::io::Write;
        if buf.is_empty() {
            return;
        }
        let n = buf.iter().filter(|&&b| b == b'\n').count() as u64;
        match self.file.write_all(buf) {
            Ok(()) => {
                self.stats.written.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) if self.exit_when_unread && e.kind() == std::io::ErrorKind::BrokenPipe => {
                tracing::warn!(
                    "decoy: the daemon stopped reading events ({}); exiting",
                    self.label
                );
                std::process::exit(0);
            }
            Err(e) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("decoy events {}: {e}", self.label);
            }
        }
    }
}

/// The writer thread: until every sink is gone, wait for an event, let the burst gather, and
/// write it in chunks of at most [`WRITE_CHUNK`].
fn writer(mut out: Output, sensor: String, mut rx: mpsc::Receiver<DecoyEvent>) {
    let mut buf = Vec::with_capacity(WRITE_CHUNK + 4096);
    while let Some(ev) = rx.blocking_recv() {
        std::thread::sleep(BATCH_WINDOW);
        push_line(&mut buf, &ev, &sensor);
        while let Ok(ev) = rx.try_recv() {
            push_line(&mut buf, &ev, &sensor);
            if buf.len() >= WRITE_CHUNK {
                out.write(&buf);
                buf.clear();
            }
        }
        out.write(&buf);
        buf.clear();
    }
    let _ = out.file.sync_data();
}

fn push_line(buf: &mut Vec<u8>, ev: &DecoyEvent, sensor: &str) {
    if serde_json::to_writer(&mut *buf, &ev.to_json(sensor)).is_ok() {
        buf.push(b'\n');
    }
}

/// A random Cowrie-style session id (12 lowercase hex digits).
pub fn new_session_id() -> Arc<str> {
    let v: u64 = rand::random();
    Arc::from(format!("{:012x}", v & 0xFFFF_FFFF_FFFF).as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(eventid: &'static str, fields: Value) -> DecoyEvent {
        DecoyEvent {
            eventid,
            time: SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_763_700_000_123_456),
            src: "[::ffff:203.0.113.7]:40022".parse().unwrap(),
            dst: "10.0.0.5:22".parse().unwrap(),
            session: Arc::from("0a1b2c3d4e5f"),
            fields: fields.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn json_has_cowrie_fields_and_format() {
        let e = ev(
            "cowrie.login.failed",
            json!({"username": "root", "password": "x", "message": "login attempt [root/x] failed"}),
        );
        let j = e.to_json("web-01");
        assert_eq!(j["eventid"], "cowrie.login.failed");
        assert_eq!(j["src_ip"], "203.0.113.7");
        assert_eq!(j["src_port"], 40022);
        assert_eq!(j["dst_ip"], "10.0.0.5");
        assert_eq!(j["dst_port"], 22);
        assert_eq!(j["session"], "0a1b2c3d4e5f");
        assert_eq!(j["protocol"], "ssh");
        assert_eq!(j["sensor"], "web-01");
        assert_eq!(j["username"], "root");
        assert_eq!(j["timestamp"], "2025-11-21T04:40:00.123456Z");
    }

    #[test]
    fn observations_carry_rule_and_normalised_address() {
        let o = ev("cowrie.login.failed", json!({"username": "admin"}))
            .observation()
            .unwrap();
        assert_eq!(&*o.rule, "decoy.login.failed");
        assert_eq!(o.addr.to_string(), "203.0.113.7");
        assert_eq!(o.user.as_deref(), Some("admin"));
        assert_eq!(&*o.source, "decoy");
        assert!(
            ev("cowrie.client.version", json!({}))
                .observation()
                .is_none()
        );
        let c = ev("cowrie.command.input", json!({"input": "uname -a"}));
        assert_eq!(c.rule(), Some("decoy.command"));
    }

    #[tokio::test]
    async fn writer_appends_json_lines_and_forwards_observations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.json");
        let (obs_tx, mut obs_rx) = mpsc::channel(16);
        let (sink, task) = start_writer(&path, "web-01".into(), Some(obs_tx)).unwrap();
        sink.emit(ev(
            "cowrie.session.connect",
            json!({"message": "New connection"}),
        ));
        sink.emit(ev("cowrie.client.version", json!({"version": "SSH-2.0-x"})));
        sink.emit(ev(
            "cowrie.login.failed",
            json!({"username": "root", "password": "123456"}),
        ));
        let stats = sink.stats.clone();
        drop(sink);
        task.await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["eventid"].to_string())
            .collect();
        assert_eq!(
            ids,
            [
                "\"cowrie.session.connect\"",
                "\"cowrie.client.version\"",
                "\"cowrie.login.failed\""
            ]
        );
        assert_eq!(stats.written.load(Ordering::Relaxed), 3);
        let mut rules = Vec::new();
        while let Ok(SourceEvent::Observation(o)) = obs_rx.try_recv() {
            rules.push(o.rule.to_string());
        }
        assert_eq!(rules, ["decoy.connect", "decoy.login.failed"]);
    }

    #[test]
    fn session_ids_look_like_cowrie() {
        let id = new_session_id();
        assert_eq!(id.len(), 12);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
