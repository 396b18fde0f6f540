//! Session recordings as asciinema v2 `.cast` files, and a reader for them.
//!
//! A `.cast` file is one JSON header line
//! (`{"version":2,"width":80,"height":24,"timestamp":1763700000,"env":{...},"title":"<id>"}`)
//! followed by one JSON array per event: `[seconds, "o", "data"]` for what the decoy sent,
//! `"i"` for what the client typed, `"r"` for a terminal resize (`"WxH"`). Seconds are relative
//! to the session start.
//!
//! Why shaped so:
//! - **Sessions never wait for the disk**, as with the events file: a [`Recording`] hands its
//!   bytes to one writer task through a bounded channel with `try_send`; when the writer falls
//!   behind the chunk is dropped and counted.
//! - **Bounded on disk.** Each file stops at `max_file_bytes` (the session is then *truncated*:
//!   nothing more is written for it) and the directory as a whole stays under `quota_bytes` by
//!   deleting the oldest *finished* recordings first. Files still being written are never
//!   deleted; if the quota cannot be met without doing so, the session being written is
//!   truncated instead.
//! - **Strings, not bytes.** asciinema expects JSON strings. Data is decoded as UTF-8 with
//!   invalid bytes replaced by U+FFFD, but a multibyte character split across two chunks is
//!   held back and joined, never replaced.
//! - **File names are session ids only** (12 lowercase hex digits), so nothing a client sends
//!   can reach the path.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use tokio::sync::mpsc;

/// How many chunks may wait for the writer before new ones are dropped.
pub const RECORD_QUEUE: usize = 4096;

/// The file name extension of recordings.
pub const CAST_EXT: &str = "cast";

/// The `TERM` recorded when the client did not say.
pub const DEFAULT_TERM: &str = "xterm-256color";

/// How often the writer looks for recordings whose handle was dropped without `close`.
const SWEEP: Duration = Duration::from_secs(1);

/// Where recordings go and how much they may take.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// Directory of the `.cast` files (created 0700 if absent).
    pub dir: PathBuf,
    /// All `.cast` files in `dir` together stay under this many bytes.
    pub quota_bytes: u64,
    /// One recording stops growing at this many bytes.
    pub max_file_bytes: u64,
}

/// Counters for the recording path (for metrics).
#[derive(Debug, Default)]
pub struct RecordStats {
    /// Events (header and data lines) written.
    pub written: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// Chunks (or opens) dropped because the writer queue was full.
    pub dropped: AtomicU64,
    /// Recordings cut short by the per-file cap or the quota.
    pub truncated: AtomicU64,
    /// Finished recordings deleted to stay under the quota.
    pub rotated_out: AtomicU64,
    /// Session ids refused as file names.
    pub rejected: AtomicU64,
    /// Errors creating, writing or deleting files.
    pub write_errors: AtomicU64,
}

/// A session id that cannot name a recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid session id {0:?} (expected 12 lowercase hex digits)")]
pub struct InvalidSessionId(pub String);

/// Is `id` a session id (12 lowercase hex digits), and so safe as a file name?
pub fn valid_session_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The recording file of session `id` in `dir`; an error for anything but a session id.
pub fn cast_path(dir: &Path, id: &str) -> Result<PathBuf, InvalidSessionId> {
    if valid_session_id(id) {
        Ok(dir.join(format!("{id}.{CAST_EXT}")))
    } else {
        Err(InvalidSessionId(id.to_owned()))
    }
}

/// The session id a recording file is named for, if it is one.
pub fn session_of(path: &Path) -> Option<&str> {
    if path.extension()? != CAST_EXT {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    valid_session_id(stem).then_some(stem)
}

enum Msg {
    Open {
        serial: u64,
        id: String,
        header: Vec<u8>,
        alive: Weak<()>,
    },
    Data {
        serial: u64,
        time: f64,
        kind: Kind,
        data: Vec<u8>,
    },
    Resize {
        serial: u64,
        time: f64,
        width: u32,
        height: u32,
    },
    Close {
        serial: u64,
    },
    /// Time to look for recordings whose handles were dropped (sent every [`SWEEP`]).
    Sweep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Output,
    Input,
}

/// The sessions' handle to the recorder: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    serial: Arc<AtomicU64>,
    /// Shared counters.
    pub stats: Arc<RecordStats>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl Recorder {
    /// Create the directory (0700) and start the writer task. The task ends once the recorder
    /// and every [`Recording`] are dropped, after closing the files still open.
    pub async fn start(cfg: RecordConfig) -> io::Result<(Recorder, tokio::task::JoinHandle<()>)> {
        Self::start_gated(cfg, None).await
    }

    /// [`start`](Self::start), with the writer waiting for `gate` before its first message
    /// (tests fill the queue this way).
    async fn start_gated(
        cfg: RecordConfig,
        gate: Option<std::sync::mpsc::Receiver<()>>,
    ) -> io::Result<(Recorder, tokio::task::JoinHandle<()>)> {
        let dir = cfg.dir.clone();
        let finished = tokio::task::spawn_blocking(move || -> io::Result<_> {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
            scan(&dir)
        })
        .await
        .map_err(io::Error::other)??;
        let (tx, rx) = mpsc::channel(RECORD_QUEUE);
        let stats = Arc::new(RecordStats::default());
        let writer = Writer {
            cfg,
            stats: stats.clone(),
            total: finished.iter().map(|f| f.1).sum(),
            names: finished.iter().map(|f| f.0.clone()).collect(),
            finished,
            live: HashMap::new(),
        };
        // Every SWEEP, ask the writer to look for dropped recordings; the ticker holds only a
        // weak sender, so it never keeps the writer alive.
        let weak = tx.downgrade();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(tx) = weak.upgrade() else { break };
                let _ = tx.try_send(Msg::Sweep);
            }
        });
        let task = tokio::task::spawn_blocking(move || {
            if let Some(g) = gate {
                let _ = g.recv();
            }
            writer.run(rx)
        });
        Ok((
            Recorder {
                tx,
                serial: Arc::new(AtomicU64::new(0)),
                stats,
            },
            task,
        ))
    }

    /// Start recording session `session_id` with a terminal of `width` x `height` and the
    /// default `TERM`; times are relative to `start` (when the session began).
    pub fn open(
        &self,
        session_id: &str,
        width: u32,
        height: u32,
        start: SystemTime,
    ) -> Result<Recording, InvalidSessionId> {
        self.open_term(session_id, width, height, DEFAULT_TERM, start)
    }

    /// As [`open`](Self::open), recording the client's `TERM` (cut to 64 characters).
    pub fn open_term(
        &self,
        session_id: &str,
        width: u32,
        height: u32,
        term: &str,
        start: SystemTime,
    ) -> Result<Recording, InvalidSessionId> {
        if !valid_session_id(session_id) {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(InvalidSessionId(session_id.to_owned()));
        }
        let unix = start
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let term: String = term.chars().take(64).collect();
        let mut env = serde_json::Map::new();
        env.insert("TERM".into(), json!(term));
        env.insert("SHELL".into(), json!("/bin/bash"));
        let header = CastHeader {
            version: 2,
            width,
            height,
            timestamp: Some(unix),
            env: Some(env),
            title: Some(session_id.to_owned()),
        };
        let mut line = serde_json::to_vec(&header).unwrap_or_default();
        line.push(b'\n');
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let alive = Arc::new(());
        let sent = self
            .tx
            .try_send(Msg::Open {
                serial,
                id: session_id.to_owned(),
                header: line,
                alive: Arc::downgrade(&alive),
            })
            .is_ok();
        if !sent {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Recording {
            tx: self.tx.clone(),
            stats: self.stats.clone(),
            serial,
            base: SystemTime::now().duration_since(start).unwrap_or_default(),
            opened: Instant::now(),
            live: sent,
            _alive: alive,
        })
    }
}

/// One session's recording. Every method returns at once; dropping it closes it too.
#[derive(Debug)]
pub struct Recording {
    tx: mpsc::Sender<Msg>,
    stats: Arc<RecordStats>,
    serial: u64,
    /// Session start to `opened`.
    base: Duration,
    opened: Instant,
    /// False when the open was dropped: nothing will be recorded.
    live: bool,
    /// Dropped with the recording; the writer sees that through its `Weak`.
    _alive: Arc<()>,
}

impl Recording {
    fn now(&self) -> f64 {
        (self.base + self.opened.elapsed()).as_secs_f64()
    }

    fn send(&self, msg: Msg) {
        if self.live && self.tx.try_send(msg).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn data(&self, kind: Kind, data: &[u8]) {
        if data.is_empty() || !self.live {
            return;
        }
        self.send(Msg::Data {
            serial: self.serial,
            time: self.now(),
            kind,
            data: data.to_vec(),
        });
    }

    /// Bytes the decoy sent to the client's terminal (`"o"`).
    pub fn output(&self, data: &[u8]) {
        self.data(Kind::Output, data);
    }

    /// Bytes the client typed (`"i"`).
    pub fn input(&self, data: &[u8]) {
        self.data(Kind::Input, data);
    }

    /// The client resized its terminal (`"r"`).
    pub fn resize(&self, width: u32, height: u32) {
        self.send(Msg::Resize {
            serial: self.serial,
            time: self.now(),
            width,
            height,
        });
    }

    /// Finish the recording (as dropping it does).
    pub fn close(self) {}
}

impl Drop for Recording {
    fn drop(&mut self) {
        // If the queue is full the writer still notices through the dropped `_alive`.
        if self.live {
            let _ = self.tx.try_send(Msg::Close {
                serial: self.serial,
            });
        }
    }
}

/// Append `data` to `pending` and take out the longest prefix that is whole UTF-8 (invalid
/// bytes become U+FFFD); an incomplete character at the end stays in `pending`.
fn take_utf8(pending: &mut Vec<u8>, data: &[u8]) -> String {
    pending.extend_from_slice(data);
    let mut out = String::with_capacity(pending.len());
    let mut rest: &[u8] = pending;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                rest = &[];
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                match e.error_len() {
                    Some(n) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        rest = &after[n..];
                    }
                    None => {
                        rest = after;
                        break;
                    }
                }
            }
        }
    }
    let keep = rest.to_vec();
    *pending = keep;
    out
}

/// A finished recording on disk: path, size, and when it was last written.
type Finished = (PathBuf, u64, SystemTime);

/// The `.cast` files already in `dir`, oldest first.
fn scan(dir: &Path) -> io::Result<VecDeque<Finished>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if session_of(&path).is_none() {
            continue;
        }
        let meta = entry.metadata()?;
        if meta.is_file() {
            let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            found.push((path, meta.len(), mtime));
        }
    }
    found.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
    Ok(found.into())
}

struct Live {
    path: PathBuf,
    file: Option<std::fs::File>,
    alive: Weak<()>,
    /// Bytes in the file plus `buf`.
    size: u64,
    buf: Vec<u8>,
    /// Lines in `buf`.
    lines: u64,
    out_pending: Vec<u8>,
    in_pending: Vec<u8>,
    truncated: bool,
    /// Time of the latest event: times never go backwards in the file.
    last_time: f64,
}

struct Writer {
    cfg: RecordConfig,
    stats: Arc<RecordStats>,
    /// Bytes of every `.cast` file, live ones included (with what is still buffered).
    total: u64,
    finished: VecDeque<Finished>,
    live: HashMap<u64, Live>,
    /// Paths of every recording on disk, live or finished: a name is checked in constant
    /// time (the lists above are only scanned on the rare reuse of a name).
    names: HashSet<PathBuf>,
}

impl Writer {
    /// The writer's loop, on a thread of its own (plain blocking file I/O: no hand-off to a
    /// blocking pool per write). Ends when every sender is gone.
    fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(msg) = rx.blocking_recv() {
            if let Msg::Sweep = msg {
                // A recording is only swept as gone once the queue is empty, so every chunk
                // it sent before it was dropped has been written.
                if rx.is_empty() {
                    self.sweep();
                }
                continue;
            }
            self.handle(msg);
            // Batch whatever else is already queued before touching the disk.
            for _ in 0..1024 {
                match rx.try_recv() {
                    Ok(Msg::Sweep) => {}
                    Ok(msg) => self.handle(msg),
                    Err(_) => break,
                }
            }
            self.flush_all();
        }
        let all: Vec<u64> = self.live.keys().copied().collect();
        for serial in all {
            self.close(serial);
        }
    }

    fn sweep(&mut self) {
        let gone: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, l)| l.alive.strong_count() == 0)
            .map(|(k, _)| *k)
            .collect();
        for serial in gone {
            self.close(serial);
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Open {
                serial,
                id,
                header,
                alive,
            } => self.open(serial, &id, header, alive),
            Msg::Data {
                serial,
                time,
                kind,
                data,
            } => {
                let Some(l) = self.live.get_mut(&serial) else {
                    return;
                };
                let time = time.max(l.last_time);
                l.last_time = time;
                let pending = match kind {
                    Kind::Output => &mut l.out_pending,
                    Kind::Input => &mut l.in_pending,
                };
                let text = take_utf8(pending, &data);
                if !text.is_empty() {
                    let code = if kind == Kind::Output { "o" } else { "i" };
                    self.append(serial, event_line(time, code, &text));
                }
            }
            Msg::Resize {
                serial,
                time,
                width,
                height,
            } => {
                if let Some(l) = self.live.get_mut(&serial) {
                    let time = time.max(l.last_time);
                    l.last_time = time;
                    let line = event_line(time, "r", &format!("{width}x{height}"));
                    self.append(serial, line);
                }
            }
            Msg::Close { serial } => self.close(serial),
            Msg::Sweep => self.sweep(),
        }
    }

    fn open(&mut self, serial: u64, id: &str, header: Vec<u8>, alive: Weak<()>) {
        let path = self.cfg.dir.join(format!("{id}.{CAST_EXT}"));
        if self.names.contains(&path) {
            if self.live.values().any(|l| l.path == path) {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // A file left with this name (an earlier run) is replaced.
            if let Some(i) = self.finished.iter().position(|f| f.0 == path)
                && let Some((_, size, _)) = self.finished.remove(i)
            {
                self.total = self.total.saturating_sub(size);
            }
        }
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true).mode(0o600);
        let file = match o.open(&path) {
            Ok(f) => f,
            Err(e) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("decoy recording {}: {e}", path.display());
                return;
            }
        };
        self.names.insert(path.clone());
        self.live.insert(
            serial,
            Live {
                path,
                file: Some(file),
                alive,
                size: 0,
                buf: Vec::new(),
                lines: 0,
                out_pending: Vec::new(),
                in_pending: Vec::new(),
                truncated: false,
                last_time: 0.0,
            },
        );
        self.append(serial, header);
    }

    /// Make room for `n` more bytes under the quota by deleting the oldest finished
    /// recordings; false if even deleting all of them is not enough.
    fn make_room(&mut self, n: u64) -> bool {
        while self.total + n > self.cfg.quota_bytes {
            let Some((path, size, _)) = self.finished.pop_front() else {
                return false;
            };
            self.names.remove(&path);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    self.stats.rotated_out.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Could not free it: forget it (it still takes its bytes).
                    self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("decoy recording {}: {e}", path.display());
                    continue;
                }
            }
            self.total = self.total.saturating_sub(size);
        }
        true
    }

    fn append(&mut self, serial: u64, line: Vec<u8>) {
        let n = line.len() as u64;
        let Some(l) = self.live.get(&serial) else {
            return;
        };
        if l.truncated {
            return;
        }
        let fits_file = l.size + n <= self.cfg.max_file_bytes;
        let fits = fits_file && self.make_room(n);
        let Some(l) = self.live.get_mut(&serial) else {
            return;
        };
        if !fits {
            l.truncated = true;
            self.stats.truncated.fetch_add(1, Ordering::Relaxed);
            return;
        }
        l.size += n;
        l.lines += 1;
        l.buf.extend_from_slice(&line);
        self.total += n;
        if l.buf.len() >= 64 * 1024 {
            flush(l, &self.stats);
        }
    }

    fn flush_all(&mut self) {
        for l in self.live.values_mut() {
            flush(l, &self.stats);
        }
    }

    fn close(&mut self, serial: u64) {
        let Some(l) = self.live.get_mut(&serial) else {
            return;
        };
        // Whatever incomplete character is left is written as U+FFFD.
        let mut tail = Vec::new();
        for (code, pending) in [("o", &mut l.out_pending), ("i", &mut l.in_pending)] {
            if !pending.is_empty() {
                let text = String::from_utf8_lossy(pending).into_owned();
                pending.clear();
                tail.push((code, text));
            }
        }
        let time = l.last_time;
        for (code, text) in tail {
            self.append(serial, event_line(time, code, &text));
        }
        let Some(mut l) = self.live.remove(&serial) else {
            return;
        };
        flush(&mut l, &self.stats);
        if let Some(mut f) = l.file.take() {
            let _ = f.flush();
        }
        if l.size == 0 {
            // Not even the header fitted: leave no empty file behind.
            let _ = std::fs::remove_file(&l.path);
            self.names.remove(&l.path);
            return;
        }
        self.finished.push_back((l.path, l.size, SystemTime::now()));
    }
}

fn flush(l: &mut Live, stats: &RecordStats) {
    if l.buf.is_empty() {
        return;
    }
    let Some(f) = l.file.as_mut() else {
        l.buf.clear();
        return;
    };
    match f.write_all(&l.buf) {
        Ok(()) => {
            stats.written.fetch_add(l.lines, Ordering::Relaxed);
            stats.bytes.fetch_add(l.buf.len() as u64, Ordering::Relaxed);
        }
        Err(e) => {
            stats.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("decoy recording {}: {e}", l.path.display());
        }
    }
    l.buf.clear();
    l.lines = 0;
}

fn event_line(time: f64, code: &str, data: &str) -> Vec<u8> {
    // Microsecond precision, as asciinema writes it.
    let t = (time * 1e6).round() / 1e6;
    let mut line = serde_json::to_vec(&json!([t, code, data])).unwrap_or_default();
    line.push(b'\n');
    line
}

/// The header line of a `.cast` file (the fields ravelin writes and reads).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct CastHeader {
    /// Always 2.
    pub version: u32,
    /// Terminal columns.
    pub width: u32,
    /// Terminal rows.
    pub height: u32,
    /// Session start, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// `TERM` and `SHELL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<serde_json::Map<String, Value>>,
    /// The session id, for ravelin's recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// One event line of a `.cast` file.
#[derive(Debug, Clone, PartialEq)]
pub struct CastEvent {
    /// Seconds since the session start.
    pub time: f64,
    /// `"o"` output, `"i"` input, `"r"` resize (others are passed through).
    pub code: String,
    /// The text.
    pub data: String,
}

/// Longest line [`CastReader`] accepts (a recorded chunk is far smaller).
pub const MAX_CAST_LINE: usize = 4 * 1024 * 1024;

/// Reads a `.cast` file: the header first, then the events one by one.
#[derive(Debug)]
pub struct CastReader<R> {
    reader: R,
    line: Vec<u8>,
    lineno: usize,
}

fn bad(lineno: usize, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("line {lineno}: {what}"))
}

impl<R: BufRead> CastReader<R> {
    /// Read and check the header (asciinema v2).
    pub fn new(reader: R) -> io::Result<(CastHeader, CastReader<R>)> {
        let mut r = CastReader {
            reader,
            line: Vec::new(),
            lineno: 0,
        };
        if !r.next_line()? {
            return Err(bad(1, "empty file, no asciinema header"));
        }
        let header: CastHeader =
            serde_json::from_slice(&r.line).map_err(|e| bad(1, format!("header: {e}")))?;
        if header.version != 2 {
            return Err(bad(
                1,
                format!("asciinema version {} (only 2 is known)", header.version),
            ));
        }
        Ok((header, r))
    }

    fn next_line(&mut self) -> io::Result<bool> {
        loop {
            self.line.clear();
            let n = <&mut R as io::Read>::take(&mut self.reader, MAX_CAST_LINE as u64 + 1)
                .read_until(b'\n', &mut self.line)?;
            if n == 0 {
                return Ok(false);
            }
            self.lineno += 1;
            if self.line.len() > MAX_CAST_LINE {
                return Err(bad(self.lineno, "line too long"));
            }
            if !self.line.iter().all(u8::is_ascii_whitespace) {
                return Ok(true);
            }
        }
    }
}

impl<R: BufRead> Iterator for CastReader<R> {
    type Item = io::Result<CastEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_line() {
            Ok(false) => None,
            Err(e) => Some(Err(e)),
            Ok(true) => Some(
                serde_json::from_slice::<(f64, String, String)>(&self.line)
                    .map(|(time, code, data)| CastEvent { time, code, data })
                    .map_err(|e| bad(self.lineno, e)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0a1b2c3d4e5f";

    fn cfg(dir: &Path, quota: u64, max_file: u64) -> RecordConfig {
        RecordConfig {
            dir: dir.to_owned(),
            quota_bytes: quota,
            max_file_bytes: max_file,
        }
    }

    fn read(path: &Path) -> (CastHeader, Vec<CastEvent>) {
        let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let (h, r) = CastReader::new(f).unwrap();
        (h, r.collect::<io::Result<Vec<_>>>().unwrap())
    }

    #[test]
    fn session_ids_only_name_files() {
        assert!(valid_session_id(ID));
        for bad in [
            "",
            "../../etc/pa",
            "0a1b2c3d4e5",
            "0a1b2c3d4e5f0",
            "0A1B2C3D4E5F",
            "0a1b2c3d4e/f",
            "0a1b2c3d4e5g",
            "..",
        ] {
            assert!(!valid_session_id(bad), "{bad:?}");
            assert!(cast_path(Path::new("/r"), bad).is_err());
        }
        assert_eq!(
            cast_path(Path::new("/r"), ID).unwrap(),
            Path::new("/r/0a1b2c3d4e5f.cast")
        );
        assert_eq!(session_of(Path::new("/r/0a1b2c3d4e5f.cast")), Some(ID));
        assert_eq!(session_of(Path::new("/r/x.cast")), None);
        assert_eq!(session_of(Path::new("/r/0a1b2c3d4e5f.json")), None);
    }

    #[test]
    fn utf8_split_across_chunks_is_joined_and_invalid_bytes_replaced() {
        let mut p = Vec::new();
        let e = "é".as_bytes();
        assert_eq!(take_utf8(&mut p, &[b'a', e[0]]), "a");
        assert_eq!(p, [e[0]]);
        assert_eq!(take_utf8(&mut p, &[e[1], b'b']), "éb");
        assert!(p.is_empty());
        assert_eq!(take_utf8(&mut p, b"x\xffy\xe2\x82"), "x\u{FFFD}y");
        assert_eq!(p, b"\xe2\x82");
        assert_eq!(take_utf8(&mut p, b"\xac"), "€");
        // A broken sequence followed by more data is replaced, not held forever.
        assert_eq!(take_utf8(&mut p, b"\xe2z"), "\u{FFFD}z");
        assert!(p.is_empty());
    }

    #[tokio::test]
    async fn recording_is_a_valid_replayable_cast() {
        let dir = tempfile::tempdir().unwrap();
        let rdir = dir.path().join("rec");
        let (rec, task) = Recorder::start(cfg(&rdir, 1 << 20, 1 << 20)).await.unwrap();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_700_000);
        let r = rec.open_term(ID, 120, 40, "xterm", start).unwrap();
        r.output(b"root@web-01:~# ");
        r.input(b"uname -a\r");
        // "é" split over two chunks, then an invalid byte.
        r.output(b"caf\xc3");
        r.output(b"\xa9 \xff\r\n");
        r.resize(100, 30);
        r.close();
        let stats = rec.stats.clone();
        drop(rec);
        task.await.unwrap();

        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&rdir), 0o700);
        let path = cast_path(&rdir, ID).unwrap();
        assert_eq!(mode(&path), 0o600);

        let text = std::fs::read_to_string(&path).unwrap();
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["version"], 2);
        assert_eq!(first["width"], 120);
        assert_eq!(first["height"], 40);
        assert_eq!(first["timestamp"], 1_763_700_000u64);
        assert_eq!(first["env"]["TERM"], "xterm");
        assert_eq!(first["env"]["SHELL"], "/bin/bash");
        assert_eq!(first["title"], ID);
        assert!(text.starts_with("{\"version\":2,"), "{text}");

        let (h, events) = read(&path);
        assert_eq!(h.title.as_deref(), Some(ID));
        let got: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.code.as_str(), e.data.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("o", "root@web-01:~# "),
                ("i", "uname -a\r"),
                ("o", "caf"),
                ("o", "é \u{FFFD}\r\n"),
                ("r", "100x30"),
            ]
        );
        // Relative to a start long ago, and never going backwards.
        assert!(events[0].time > 1000.0);
        assert!(events.windows(2).all(|w| w[0].time <= w[1].time));
        assert_eq!(stats.written.load(Ordering::Relaxed), 6);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(
            stats.bytes.load(Ordering::Relaxed),
            std::fs::metadata(&path).unwrap().len()
        );
    }

    #[tokio::test]
    async fn path_traversal_ids_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let rdir = dir.path().join("rec");
        let (rec, task) = Recorder::start(cfg(&rdir, 1 << 20, 1 << 20)).await.unwrap();
        for bad in ["../0a1b2c3d4e", "/etc/passwd", "0a1b2c3d4e5f/..", ""] {
            assert!(rec.open(bad, 80, 24, SystemTime::now()).is_err());
        }
        assert_eq!(rec.stats.rejected.load(Ordering::Relaxed), 4);
        drop(rec);
        task.await.unwrap();
        assert_eq!(std::fs::read_dir(&rdir).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn a_file_stops_at_its_cap_and_counts_the_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, task) = Recorder::start(cfg(dir.path(), 1 << 20, 400))
            .await
            .unwrap();
        let r = rec.open(ID, 80, 24, SystemTime::now()).unwrap();
        for _ in 0..20 {
            r.output(&[b'x'; 40]);
        }
        r.close();
        let stats = rec.stats.clone();
        drop(rec);
        task.await.unwrap();
        let path = cast_path(dir.path(), ID).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 400, "{size}");
        assert!(size > 200, "{size}");
        let (_, events) = read(&path);
        assert!(!events.is_empty() && events.len() < 20);
        assert_eq!(stats.truncated.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn quota_rotates_out_the_oldest_finished_never_a_live_one() {
        let dir = tempfile::tempdir().unwrap();
        // Leftovers of an earlier run count, and go first.
        let old = dir.path().join("aaaaaaaaaaaa.cast");
        std::fs::write(&old, vec![b'#'; 300]).unwrap();
        std::fs::write(dir.path().join("notes.txt"), vec![b'#'; 5000]).unwrap();
        let (rec, task) = Recorder::start(cfg(dir.path(), 1000, 10_000))
            .await
            .unwrap();
        let ids = ["000000000001", "000000000002", "000000000003"];
        // A live session that outlasts all the others.
        let live = rec.open("00000000000f", 80, 24, SystemTime::now()).unwrap();
        live.output(&[b'L'; 100]);
        for id in ids {
            let r = rec.open(id, 80, 24, SystemTime::now()).unwrap();
            r.output(&[b'x'; 200]);
            r.close();
            // Let the writer finish each in turn (finish order is rotation order).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The live one grows past what the quota can hold even after every finished
        // recording is gone: it is truncated, and kept.
        for _ in 0..10 {
            live.output(&[b'L'; 100]);
        }
        let stats = rec.stats.clone();
        for _ in 0..500 {
            if stats.truncated.load(Ordering::Relaxed) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(cast_path(dir.path(), "00000000000f").unwrap().exists());
        assert!(!old.exists());
        assert!(!cast_path(dir.path(), ids[0]).unwrap().exists());
        assert!(stats.rotated_out.load(Ordering::Relaxed) >= 2);
        assert_eq!(stats.truncated.load(Ordering::Relaxed), 1);
        let total: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| session_of(p).is_some())
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(total <= 1000, "{total}");
        // Unrelated files are never touched.
        assert!(dir.path().join("notes.txt").exists());
        drop(live);
        drop(rec);
        task.await.unwrap();
        let (_, events) = read(&cast_path(dir.path(), "00000000000f").unwrap());
        assert!(events.iter().all(|e| e.data.chars().all(|c| c == 'L')));
    }

    #[tokio::test]
    async fn quota_keeps_the_newest_finished_recordings() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, task) = Recorder::start(cfg(dir.path(), 1000, 10_000))
            .await
            .unwrap();
        let ids: Vec<String> = (1..=8).map(|i| format!("{i:012x}")).collect();
        for id in &ids {
            let r = rec.open(id, 80, 24, SystemTime::now()).unwrap();
            r.output(&[b'x'; 150]);
            drop(r);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stats = rec.stats.clone();
        drop(rec);
        task.await.unwrap();
        let exists: Vec<bool> = ids
            .iter()
            .map(|id| cast_path(dir.path(), id).unwrap().exists())
            .collect();
        // Some at the start are gone, the rest (newest) kept, no gaps.
        let kept = exists.iter().filter(|&&e| e).count();
        assert!((2..8).contains(&kept), "{exists:?}");
        assert!(exists[8 - kept..].iter().all(|&e| e), "{exists:?}");
        assert_eq!(stats.rotated_out.load(Ordering::Relaxed), (8 - kept) as u64);
        assert_eq!(stats.truncated.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_recording_dropped_while_the_queue_is_full_is_still_finished() {
        let dir = tempfile::tempdir().unwrap();
        let (open_gate, gate) = std::sync::mpsc::channel();
        let (rec, task) = Recorder::start_gated(cfg(dir.path(), 2000, 1 << 20), Some(gate))
            .await
            .unwrap();
        // The writer waits for the gate: the queue fills, then the close is dropped too.
        let r = rec.open("000000000001", 80, 24, SystemTime::now()).unwrap();
        for _ in 0..RECORD_QUEUE + 10 {
            r.output(b"x");
        }
        drop(r);
        let stats = rec.stats.clone();
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 11);
        open_gate.send(()).unwrap();
        // The writer notices the recording is gone (it is then finished, so rotatable) at a
        // sweep; three sweeps' time leaves room for a slow machine to drain the queue first.
        tokio::time::sleep(SWEEP * 3 + Duration::from_millis(500)).await;
        let r = rec.open("000000000002", 80, 24, SystemTime::now()).unwrap();
        r.output(&[b'y'; 1500]);
        r.close();
        drop(rec);
        task.await.unwrap();
        assert_eq!(stats.rotated_out.load(Ordering::Relaxed), 1);
        assert!(!cast_path(dir.path(), "000000000001").unwrap().exists());
        assert!(cast_path(dir.path(), "000000000002").unwrap().exists());
    }

    #[test]
    fn cast_reader_rejects_what_is_not_a_v2_cast() {
        assert!(CastReader::new(&b""[..]).is_err());
        assert!(CastReader::new(&b"{\"version\":1,\"width\":1,\"height\":1}\n"[..]).is_err());
        assert!(CastReader::new(&b"not json\n"[..]).is_err());
        let (_, r) = CastReader::new(
            &b"{\"version\":2,\"width\":80,\"height\":24}\n[0.5,\"o\",\"a\"]\nbad\n"[..],
        )
        .unwrap();
        let v: Vec<_> = r.collect();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].as_ref().unwrap().data, "a");
        assert!(v[1].is_err());
    }
}
