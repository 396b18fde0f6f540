//! The systemd journal, read through a long-lived `journalctl -o json --follow` child.
//!
//! Why a child process and not `libsystemd`/`sd-journal`: no C dependency and no unsafe code,
//! journald's on-disk format stays journalctl's problem, and the path is configurable, which
//! is also how the tests substitute a stand-in script (journald does not run on the build
//! machines).
//!
//! Shape:
//! - The child is started with an **argument vector** (never a shell): `-o json --follow`,
//!   `--after-cursor=C` when a cursor is known, else `--lines=0` (start at now, never replay
//!   history), and one `--unit=U` per configured unit (journalctl ORs them).
//! - Each stdout line is one JSON object. `MESSAGE` may be a string, an array of bytes (journald
//!   does that for non-UTF-8 data), or an array of values (a field that occurs more than once;
//!   the first is used); all are decoded lossily and cut at [`MAX_LINE`]. Lines longer than
//!   [`MAX_JSON_LINE`] and lines that are not JSON objects are skipped and counted.
//! - The cursor of the last entry read is emitted as a [`SourceEvent::Checkpoint`] whenever the
//!   child's output has been drained (one per batch, not per entry).
//! - If the child cannot start or exits, it is restarted from the last cursor after a backoff
//!   of 1 s doubling to 30 s (reset once a child delivered entries). A saved cursor that makes
//!   three children in a row exit without output is dropped (start at the end) rather than
//!   retried forever. The child is killed when the task ends (`kill_on_drop`). Its stderr is
//!   logged at `warn`, a bounded number of lines per run.

use std::borrow::Cow;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::{MAX_LINE, SourceEvent, SourceStats, decode_bounded};
use crate::event::{Record, RecordBody};

/// One journal source.
#[derive(Debug, Clone)]
pub struct JournalSpec {
    /// The configured source name; becomes [`Record::source`].
    pub name: Arc<str>,
    /// The `journalctl` binary to run (normally `/usr/bin/journalctl`).
    pub journalctl: PathBuf,
    /// Units to follow (`--unit=`); empty means the whole journal.
    pub units: Vec<String>,
}

/// The key under which this source's cursor is persisted.
pub fn checkpoint_key(spec: &JournalSpec) -> String {
    format!("journal:{}", spec.name)
}

/// Start following the journal in a new task.
///
/// `cursor` is the last checkpoint value this source emitted, if any; without one, reading
/// starts at the current end of the journal. The task ends when `shutdown` becomes `true`
/// (after a final [`SourceEvent::Checkpoint`] if a cursor is known), when the shutdown sender
/// is dropped, or when `tx` is closed.
pub fn spawn(
    spec: JournalSpec,
    cursor: Option<String>,
    tx: mpsc::Sender<SourceEvent>,
    shutdown: watch::Receiver<bool>,
    stats: Arc<SourceStats>,
) -> JoinHandle<()> {
    spawn_with(spec, cursor, tx, shutdown, stats, BACKOFF_START)
}

/// [`spawn`] with a chosen first restart delay (tests use a short one).
fn spawn_with(
    spec: JournalSpec,
    cursor: Option<String>,
    tx: mpsc::Sender<SourceEvent>,
    shutdown: watch::Receiver<bool>,
    stats: Arc<SourceStats>,
    backoff_start: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let cursor = cursor.filter(|c| {
            let ok = valid_cursor(c);
            if !ok {
                warn!(source = %spec.name, "ignoring an unusable journal cursor, starting at the end");
                SourceStats::bump(&stats.errors);
            }
            ok
        });
        let key = checkpoint_key(&spec);
        Follower {
            spec,
            key,
            cursor,
            emitted: None,
            tx,
            shutdown,
            stats,
            backoff_start,
        }
        .run()
        .await;
    })
}

/// The longest stdout line accepted from journalctl; longer ones are skipped and counted.
pub const MAX_JSON_LINE: usize = MAX_LINE * 4;
/// First restart delay.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest restart delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Child stderr lines logged per run; the rest are only counted.
const STDERR_LINES: usize = 20;
/// Longest child stderr line logged.
const STDERR_LINE_MAX: usize = 1024;
/// Bad stdout lines logged per run; the rest are only counted.
const BAD_LINES_LOGGED: usize = 10;
/// Longest cursor accepted (real ones are about 150 bytes).
const MAX_CURSOR: usize = 1024;
/// Children in a row that exit without delivering anything before a saved cursor is dropped.
const FRUITLESS_RUNS_WITH_CURSOR: u32 = 3;
/// How long the final checkpoint may wait for room in the channel.
const FINAL_SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// How long to wait for a child whose stdout closed to exit before killing it.
const REAP_TIMEOUT: Duration = Duration::from_secs(2);

/// A cursor safe to pass back as an argument: printable ASCII, bounded.
fn valid_cursor(c: &str) -> bool {
    !c.is_empty() && c.len() <= MAX_CURSOR && c.bytes().all(|b| b.is_ascii_graphic())
}

/// The child's argument vector.
fn args(spec: &JournalSpec, cursor: Option<&str>) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-o", "json", "--follow", "--no-pager"]
        .map(OsString::from)
        .into();
    // Only what we use (journalctl always adds the `__` fields): less to print and parse.
    args.push("--output-fields=MESSAGE,SYSLOG_IDENTIFIER,_SYSTEMD_UNIT".into());
    match cursor {
        Some(c) => args.push(format!("--after-cursor={c}").into()),
        None => args.push("--lines=0".into()),
    }
    for unit in &spec.units {
        args.push(format!("--unit={unit}").into());
    }
    args
}

/// The fields we read from one `journalctl -o json` object; the rest are skipped unparsed.
#[derive(Debug, Deserialize)]
struct RawEntry {
    /// `Some(Null)` (too long for journalctl to print) differs from absent.
    #[serde(rename = "MESSAGE", default, deserialize_with = "present")]
    message: Option<Value>,
    #[serde(rename = "SYSLOG_IDENTIFIER")]
    identifier: Option<Value>,
    #[serde(rename = "_SYSTEMD_UNIT")]
    unit: Option<Value>,
    #[serde(rename = "__REALTIME_TIMESTAMP")]
    realtime: Option<Value>,
    #[serde(rename = "__CURSOR")]
    cursor: Option<Value>,
}

/// Deserialize a field that is present (even as `null`) to `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// One parsed entry: the record body (if it had a usable message) and its cursor.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    body: Option<RecordBody>,
    cursor: Option<String>,
}

/// A field's raw bytes: a string, an array of bytes, or (a repeated field) the first value.
fn field_bytes(v: &Value) -> Option<Cow<'_, [u8]>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s.as_bytes())),
        Value::Array(items) if items.iter().all(Value::is_number) => items
            .iter()
            .map(|n| n.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect::<Option<Vec<u8>>>()
            .map(Cow::Owned),
        Value::Array(items) => match items.first()? {
            Value::Array(_) | Value::String(_) => field_bytes(items.first()?),
            _ => None,
        },
        _ => None,
    }
}

fn field_text(v: Option<&Value>, stats: &SourceStats) -> Option<String> {
    field_bytes(v?).map(|b| decode_bounded(&b, stats))
}

/// Parse one stdout line. `Err` means it was not a journal JSON object.
fn parse_entry(line: &[u8], stats: &SourceStats) -> Result<Entry, serde_json::Error> {
    // serde would also accept a JSON array for a struct; journal entries are objects.
    if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(serde::de::Error::custom("not a JSON object"));
    }
    let raw: RawEntry = serde_json::from_slice(line)?;
    let cursor = match &raw.cursor {
        Some(Value::String(c)) if valid_cursor(c) => Some(c.clone()),
        _ => None,
    };
    let body = match &raw.message {
        Some(Value::Null) => {
            // journalctl prints fields over 4 KiB as null (without `--all`).
            SourceStats::bump(&stats.cut_lines);
            None
        }
        Some(m) => field_text(Some(m), stats).map(|message| RecordBody::Journal {
            message,
            identifier: field_text(raw.identifier.as_ref(), stats),
            unit: field_text(raw.unit.as_ref(), stats),
            realtime_us: match &raw.realtime {
                Some(Value::String(s)) => s.parse().ok(),
                Some(Value::Number(n)) => n.as_u64(),
                _ => None,
            },
        }),
        None => None,
    };
    Ok(Entry { body, cursor })
}

/// Fuzzing entry point (not API): [`parse_entry`] on one stdout line of `journalctl -o json`.
/// `None` if the line is not a journal JSON object; else the record body (if the entry had a
/// usable message) and the entry's cursor (if valid).
#[doc(hidden)]
pub fn fuzz_parse_line(bytes: &[u8]) -> Option<(Option<RecordBody>, Option<String>)> {
    let entry = parse_entry(bytes, &SourceStats::default()).ok()?;
    Some((entry.body, entry.cursor))
}

/// How reading one line ended.
#[derive(Debug, PartialEq, Eq)]
enum LineRead {
    /// `buf` holds a line (newline stripped).
    Line,
    /// The line was longer than the limit; it was consumed and dropped.
    TooLong,
    /// End of stream (an unterminated last fragment is dropped).
    Eof,
}

/// Read one `\n`-terminated line into `buf`, holding at most `max` bytes of it.
async fn read_bounded_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<LineRead> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok(LineRead::Eof);
        }
        let (chunk, used, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        r.consume(used);
        if done {
            return Ok(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}

/// Log a child's stderr at warn, bounded in line length and count.
async fn log_stderr(stderr: ChildStderr, source: Arc<str>, stats: Arc<SourceStats>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut logged = 0usize;
    let mut suppressed = 0u64;
    loop {
        match read_bounded_line(&mut reader, &mut line, STDERR_LINE_MAX).await {
            Ok(LineRead::Eof) | Err(_) => break,
            Ok(read) => {
                if logged < STDERR_LINES {
                    logged += 1;
                    let text = if read == LineRead::TooLong {
                        "(overlong line)".to_owned()
                    } else {
                        String::from_utf8_lossy(&line).into_owned()
                    };
                    warn!(%source, "journalctl: {text}");
                    SourceStats::bump(&stats.errors);
                } else {
                    suppressed += 1;
                }
            }
        }
    }
    if suppressed > 0 {
        warn!(%source, "journalctl: {suppressed} more stderr lines not shown");
    }
}

/// Resolves when shutdown is requested (or its sender is gone).
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Why a child run ended.
#[derive(Debug, PartialEq, Eq)]
enum RunEnd {
    /// Shutdown requested or receiver gone: end the task.
    Stop,
    /// The child could not be started.
    SpawnFailed,
    /// The child exited; `delivered` says whether it produced any journal entry.
    Exited { delivered: bool },
}

struct Follower {
    spec: JournalSpec,
    key: String,
    /// Cursor of the last entry handed over.
    cursor: Option<String>,
    /// Cursor last emitted as a checkpoint.
    emitted: Option<String>,
    tx: mpsc::Sender<SourceEvent>,
    shutdown: watch::Receiver<bool>,
    stats: Arc<SourceStats>,
    /// First restart delay ([`BACKOFF_START`]; shorter in tests).
    backoff_start: Duration,
}

impl Follower {
    async fn run(mut self) {
        let mut backoff = self.backoff_start;
        let mut fruitless = 0u32;
        loop {
            match self.run_child().await {
                RunEnd::Stop => break,
                RunEnd::Exited { delivered: true } => {
                    backoff = self.backoff_start;
                    fruitless = 0;
                }
                RunEnd::Exited { delivered: false } => fruitless += 1,
                RunEnd::SpawnFailed => {}
            }
            if fruitless >= FRUITLESS_RUNS_WITH_CURSOR && self.cursor.is_some() {
                // A cursor journalctl rejects would otherwise blind us for good.
                warn!(
                    source = %self.spec.name,
                    "journalctl keeps exiting when resumed from the saved cursor; starting at the end of the journal instead"
                );
                SourceStats::bump(&self.stats.errors);
                self.cursor = None;
                fruitless = 0;
            }
            SourceStats::bump(&self.stats.rotations);
            info!(source = %self.spec.name, "restarting journalctl in {backoff:?}");
            tokio::select! {
                biased;
                () = shutdown_requested(&mut self.shutdown) => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        self.finish().await;
    }

    /// Send, giving up if shutdown is requested meanwhile.
    async fn send(&mut self, event: SourceEvent) -> bool {
        tokio::select! {
            biased;
            r = self.tx.send(event) => r.is_ok(),
            () = shutdown_requested(&mut self.shutdown) => false,
        }
    }

    /// Emit the current cursor if it moved since the last checkpoint.
    async fn checkpoint(&mut self) -> bool {
        let Some(cursor) = self.cursor.clone() else {
            return true;
        };
        if self.emitted.as_ref() == Some(&cursor) {
            return true;
        }
        let ok = self
            .send(SourceEvent::Checkpoint {
                key: self.key.clone(),
                value: cursor.clone(),
            })
            .await;
        if ok {
            self.emitted = Some(cursor);
        }
        ok
    }

    fn start_child(&self) -> io::Result<Child> {
        let mut cmd = Command::new(&self.spec.journalctl);
        cmd.args(args(&self.spec, self.cursor.as_deref()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // `kill_on_drop` needs us to unwind; if the daemon is killed outright (SIGKILL, OOM),
        // the kernel must end the child too, or a `journalctl -f` lingers forever. The signal
        // fires when the spawning thread exits: a runtime worker, which lives as long as the
        // daemon.
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGTERM as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn()
    }

    /// Run one child until it exits or we stop.
    async fn run_child(&mut self) -> RunEnd {
        let name = self.spec.name.clone();
        let path = self.spec.journalctl.display().to_string();
        let mut child = match self.start_child() {
            Ok(child) => child,
            Err(e) => {
                let hint = if e.kind() == io::ErrorKind::NotFound {
                    " (is systemd's journalctl installed? set the source's journalctl path)"
                } else {
                    ""
                };
                warn!(source = %name, "cannot start journalctl at {path}: {e}{hint}");
                SourceStats::bump(&self.stats.errors);
                // Not the cursor's fault: not counted as a fruitless run.
                return RunEnd::SpawnFailed;
            }
        };
        debug!(source = %name, cursor = ?self.cursor, "journalctl started");
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(stderr, name.clone(), self.stats.clone()));
        }
        let Some(stdout) = child.stdout.take() else {
            return RunEnd::Exited { delivered: false };
        };
        let mut reader = BufReader::with_capacity(64 * 1024, stdout);
        let mut line = Vec::new();
        let mut delivered = false;
        let mut bad = 0usize;
        loop {
            let read = tokio::select! {
                biased;
                () = shutdown_requested(&mut self.shutdown) => return RunEnd::Stop,
                r = read_bounded_line(&mut reader, &mut line, MAX_JSON_LINE) => r,
            };
            match read {
                Ok(LineRead::Line) => match parse_entry(&line, &self.stats) {
                    Ok(entry) => {
                        delivered = true;
                        if let Some(body) = entry.body {
                            SourceStats::bump(&self.stats.lines);
                            let record = Record {
                                source: name.clone(),
                                body,
                            };
                            if !self.send(SourceEvent::Record(record)).await {
                                return RunEnd::Stop;
                            }
                        }
                        if entry.cursor.is_some() {
                            self.cursor = entry.cursor;
                        }
                    }
                    Err(e) => {
                        SourceStats::bump(&self.stats.errors);
                        bad += 1;
                        if bad <= BAD_LINES_LOGGED {
                            warn!(source = %name, "skipping a journalctl line that is not a journal entry: {e}");
                        }
                    }
                },
                Ok(LineRead::TooLong) => {
                    SourceStats::bump(&self.stats.cut_lines);
                    warn!(source = %name, "skipping a journal entry longer than {MAX_JSON_LINE} bytes");
                }
                Ok(LineRead::Eof) => break,
                Err(e) => {
                    warn!(source = %name, "reading journalctl output failed: {e}");
                    SourceStats::bump(&self.stats.errors);
                    break;
                }
            }
            // A batch ends when nothing more is buffered.
            if reader.buffer().is_empty() && !self.checkpoint().await {
                return RunEnd::Stop;
            }
        }
        if !self.checkpoint().await {
            return RunEnd::Stop;
        }
        let reaped = tokio::select! {
            biased;
            () = shutdown_requested(&mut self.shutdown) => return RunEnd::Stop,
            r = tokio::time::timeout(REAP_TIMEOUT, child.wait()) => r,
        };
        match reaped {
            Ok(Ok(status)) => warn!(source = %name, "journalctl ({path}) exited: {status}"),
            Ok(Err(e)) => warn!(source = %name, "journalctl ({path}) closed its output: {e}"),
            Err(_) => {
                warn!(source = %name, "journalctl ({path}) closed its output but kept running; killing it");
                let _ = child.kill().await;
            }
        }
        SourceStats::bump(&self.stats.errors);
        RunEnd::Exited { delivered }
    }

    /// Emit the final checkpoint (bounded wait).
    async fn finish(self) {
        let Some(value) = self.cursor else { return };
        let event = SourceEvent::Checkpoint {
            key: self.key,
            value,
        };
        if !matches!(
            tokio::time::timeout(FINAL_SEND_TIMEOUT, self.tx.send(event)).await,
            Ok(Ok(()))
        ) {
            debug!(source = %self.spec.name, "final checkpoint not delivered");
        }
    }
}

#[cfg(test)]
mod tests;
