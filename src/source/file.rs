//! Tailing one text log file: inotify-driven, rotation-proof, resumable.
//!
//! One task per file. It keeps the file it is reading **open** and reads it with positional
//! reads (`pread`), so a rename or delete of the path never loses the lines still being
//! written to the old file. The path is only looked at to notice that a *different* file now
//! lives there; at that point the old one is read to its end and the new one from offset 0.
//!
//! Why shaped so:
//! - **Latency without polling.** The ban-latency budget is a few milliseconds from a line
//!   being appended to its ban, so the hot path is event-driven: an inotify watch on the open
//!   file (through `/proc/self/fd/N`, so it follows the inode across renames) for `IN_MODIFY`,
//!   and one on the parent directory for creates, moves, deletes and attribute changes. A slow
//!   timer (1 s) re-runs the same idempotent `sync` step to self-heal missed
//!   events, a vanished directory watch, or a file that was unreadable.
//! - **One idempotent step.** Every wake-up (any inotify event, the timer) runs the same
//!   "read what is new, then check what the path points at" step, so there is no event
//!   interpretation to get wrong; events only decide *when* it runs.
//! - **Checkpoints name the file, not the path**: device, inode, offset, and a hash of the
//!   first (up to) 1 KiB, so a recycled inode number is not mistaken for the old file. On
//!   start, a checkpointed inode found under a sibling name (`auth.log.1`) is finished first.
//! - **Truncation is noticed two ways**: the size dropped below our position, or the first
//!   bytes (kept as read, at most 1 KiB) changed. The second catches a copytruncate that the
//!   writer refilled past our position while we were blocked on a full channel.
//! - **Only whole lines are emitted.** A partial trailing line is held (at most [`MAX_LINE`]
//!   bytes) until its newline arrives; a partial line left behind by a rotation or truncation
//!   is dropped rather than emitted, because a cut line can look like a different address.
//! - Reads are plain blocking `pread`s on regular files inside the task: page-cache reads of at
//!   most 64 KiB at a time, cheaper than a thread hop on the latency-critical path.
//!
//! Known limit: a writer that keeps appending to the old file *after* the new file has
//! appeared and been switched to loses those lines (fail2ban has the same limit).

use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use inotify::{Inotify, WatchDescriptor, WatchMask, Watches};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use super::{MAX_LINE, SourceEvent, SourceStats, decode_bounded};
use crate::event::{Record, RecordBody};

/// One file to tail.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// The configured source name; becomes [`Record::source`].
    pub name: Arc<str>,
    /// The log file's path (it need not exist yet).
    pub path: PathBuf,
}

/// The key under which this source's checkpoints are persisted.
pub fn checkpoint_key(spec: &FileSpec) -> String {
    format!("file:{}:{}", spec.name, spec.path.display())
}

/// Start tailing `spec.path` in a new task.
///
/// `checkpoint` is the last value this source emitted (from a previous run), if any. Without
/// one, an existing file is read from its **end** (history is not replayed) and a file that
/// appears later from its start. That end is the file's size when `spawn` is called, not when
/// the task first runs: a line appended in between (e.g. right after the daemon reports ready)
/// is read, not skipped. The task ends when `shutdown` becomes `true` (after a final
/// [`SourceEvent::Checkpoint`]), when the shutdown sender is dropped, or when `tx` is closed.
pub fn spawn(
    spec: FileSpec,
    checkpoint: Option<String>,
    tx: mpsc::Sender<SourceEvent>,
    shutdown: watch::Receiver<bool>,
    stats: Arc<SourceStats>,
) -> JoinHandle<()> {
    let end_at = match checkpoint {
        None => std::fs::metadata(&spec.path)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.len())),
        Some(_) => None,
    };
    tokio::spawn(async move {
        let mut t = Tailer::new(spec, tx, shutdown, stats);
        t.end_at = end_at;
        t.run(checkpoint).await;
    })
}

/// Bytes read per `pread`.
const READ_CHUNK: usize = 64 * 1024;
/// The self-healing timer when inotify works.
const POLL: Duration = Duration::from_secs(1);
/// The timer when inotify could not be set up (the only wake-up left).
const POLL_WITHOUT_INOTIFY: Duration = Duration::from_millis(250);
/// How much of the file's start the checkpoint fingerprints.
const HEAD_LEN: u64 = 1024;
/// Directory entries examined when looking for a rotated-away file on start.
const MAX_SIBLINGS: usize = 4096;
/// How long the final checkpoint may wait for room in the channel.
const FINAL_SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// Path switches handled in one sync step (a path flapping faster than this waits a tick).
const MAX_SWITCHES: usize = 4;

/// Whether to keep going after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    /// Shutdown was requested or the receiver is gone.
    Stop,
}

/// The decoded form of the opaque checkpoint string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checkpoint {
    dev: u64,
    ino: u64,
    /// Start of the first byte not yet emitted (a held partial line is not included).
    offset: u64,
    /// The bytes right at `offset` are the rest of a cut line: skip to the next newline.
    discarding: bool,
    head_len: u64,
    head_hash: u64,
}

impl Checkpoint {
    fn encode(&self) -> String {
        format!(
            "1:{}:{}:{}:{}:{}:{:016x}",
            self.dev,
            self.ino,
            self.offset,
            u8::from(self.discarding),
            self.head_len,
            self.head_hash
        )
    }

    fn parse(s: &str) -> Option<Self> {
        let mut it = s.split(':');
        if it.next()? != "1" {
            return None;
        }
        let cp = Checkpoint {
            dev: it.next()?.parse().ok()?,
            ino: it.next()?.parse().ok()?,
            offset: it.next()?.parse().ok()?,
            discarding: match it.next()? {
                "0" => false,
                "1" => true,
                _ => return None,
            },
            head_len: it.next()?.parse().ok()?,
            head_hash: u64::from_str_radix(it.next()?, 16).ok()?,
        };
        (it.next().is_none() && cp.head_len <= HEAD_LEN && cp.head_len <= cp.offset).then_some(cp)
    }
}

/// 64-bit FNV-1a: tiny, stable across versions, good enough to tell two file heads apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Hash of the first `len` bytes of `file`, or `None` if they cannot be read.
fn head_hash(file: &File, len: u64) -> Option<u64> {
    let mut buf = vec![0; usize::try_from(len.min(HEAD_LEN)).ok()?];
    file.read_exact_at(&mut buf, 0).ok()?;
    Some(fnv1a(&buf))
}

/// Open `path` for reading without blocking (a FIFO must not hang the task) and make sure it
/// is a regular file.
fn open_regular(path: &Path) -> io::Result<(File, Metadata)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok((file, meta))
}

/// The file currently being read.
#[derive(Debug)]
struct Tail {
    file: File,
    dev: u64,
    ino: u64,
    /// The name it was opened under (for logs).
    path: PathBuf,
    /// Next byte to read. Bytes before it were emitted, discarded, or are held in `carry`.
    pos: u64,
    /// A partial line waiting for its newline; never longer than [`MAX_LINE`].
    carry: Vec<u8>,
    /// Skipping the rest of a line that was already emitted cut.
    discarding: bool,
    /// The file's first bytes (at most [`HEAD_LEN`]) as we read them. They never change in a
    /// log file, so different bytes there mean it was truncated and rewritten past our
    /// position before we noticed the truncation (and they fingerprint the checkpoint).
    head: Vec<u8>,
}

impl Tail {
    fn new(file: File, meta: &Metadata, path: &Path, pos: u64) -> Self {
        Tail {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            path: path.to_owned(),
            pos,
            carry: Vec::new(),
            discarding: false,
            head: Vec::new(),
        }
    }

    /// Resume at a checkpoint if this really is the checkpointed file, unshrunk.
    fn resume(file: File, meta: &Metadata, path: &Path, cp: &Checkpoint) -> Option<Self> {
        if (meta.dev(), meta.ino()) != (cp.dev, cp.ino) || meta.len() < cp.offset {
            return None;
        }
        if head_hash(&file, cp.head_len) != Some(cp.head_hash) {
            return None;
        }
        let mut tail = Tail::new(file, meta, path, cp.offset);
        tail.discarding = cp.discarding;
        tail.load_head();
        Some(tail)
    }

    /// Forget the position (the file was truncated under us).
    fn restart(&mut self) {
        self.pos = 0;
        self.carry.clear();
        self.discarding = false;
        self.head.clear();
    }

    /// Read the head from the file, for a tail that starts past it (at the end, or resumed).
    fn load_head(&mut self) {
        let len = self.pos.min(HEAD_LEN) as usize;
        let mut head = vec![0; len];
        if self.file.read_exact_at(&mut head, 0).is_ok() {
            self.head = head;
        }
    }

    /// Remember the part of freshly read bytes (read at `at`) that extends the head.
    fn note_head(&mut self, at: u64, data: &[u8]) {
        let have = self.head.len();
        if at == have as u64 && have < HEAD_LEN as usize {
            let take = (HEAD_LEN as usize - have).min(data.len());
            self.head.extend_from_slice(&data[..take]);
        }
    }

    /// Whether the start of the file differs from what we read there (a missed truncation).
    fn rewritten(&self) -> bool {
        if self.head.is_empty() {
            return false;
        }
        let mut now = [0; HEAD_LEN as usize];
        let now = &mut now[..self.head.len()];
        // A short read means the file shrank: the size check handles that.
        self.file.read_exact_at(now, 0).is_ok() && *now != *self.head
    }

    fn checkpoint(&mut self) -> Checkpoint {
        // `carry` only ever holds bytes counted in `pos`, so this cannot underflow.
        let offset = self.pos.saturating_sub(self.carry.len() as u64);
        // The head holds every byte read from the start, so it covers `offset` up to HEAD_LEN
        // (if a read of it failed, fingerprint less rather than something wrong).
        let head_len = (offset.min(HEAD_LEN) as usize).min(self.head.len());
        let head_hash = fnv1a(&self.head[..head_len]);
        let head_len = head_len as u64;
        Checkpoint {
            dev: self.dev,
            ino: self.ino,
            offset,
            discarding: self.discarding,
            head_len,
            head_hash,
        }
    }
}

/// The task's outbound side: everything a send needs, apart from the file state.
struct Out {
    name: Arc<str>,
    key: String,
    tx: mpsc::Sender<SourceEvent>,
    shutdown: watch::Receiver<bool>,
    stats: Arc<SourceStats>,
    last_checkpoint: Option<String>,
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

impl Out {
    /// Send, giving up if shutdown is requested meanwhile (nothing is sent then).
    async fn send(&mut self, event: SourceEvent) -> Flow {
        tokio::select! {
            biased;
            r = self.tx.send(event) => if r.is_ok() { Flow::Go } else { Flow::Stop },
            () = shutdown_requested(&mut self.shutdown) => Flow::Stop,
        }
    }

    async fn line(&mut self, bytes: &[u8]) -> Flow {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let text = decode_bounded(bytes, &self.stats);
        SourceStats::bump(&self.stats.lines);
        let record = Record {
            source: self.name.clone(),
            body: RecordBody::Line(text),
        };
        self.send(SourceEvent::Record(record)).await
    }

    /// Emit a checkpoint for `tail` unless it equals the last one.
    async fn checkpoint(&mut self, tail: &mut Tail) -> Flow {
        let value = tail.checkpoint().encode();
        if self.last_checkpoint.as_deref() == Some(value.as_str()) {
            return Flow::Go;
        }
        let event = SourceEvent::Checkpoint {
            key: self.key.clone(),
            value: value.clone(),
        };
        let flow = self.send(event).await;
        if flow == Flow::Go {
            self.last_checkpoint = Some(value);
        }
        flow
    }
}

/// A problem that is logged once until it goes away (or changes).
#[derive(Default)]
struct Problem(Option<String>);

impl Problem {
    fn report(&mut self, msg: String, stats: &SourceStats) {
        if self.0.as_deref() != Some(msg.as_str()) {
            warn!("{msg}");
            SourceStats::bump(&stats.errors);
            self.0 = Some(msg);
        }
    }

    fn clear(&mut self) {
        if let Some(msg) = self.0.take() {
            info!("recovered from: {msg}");
        }
    }
}

/// How to position the next file opened at the configured path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// At its end: a file readable at start, when there is no checkpoint.
    End,
    /// At 0: every file that appears (or is found rotated) later.
    Beginning,
}

struct Tailer {
    path: PathBuf,
    dir: PathBuf,
    file_name: Option<OsString>,
    out: Out,
    cur: Option<Tail>,
    start: Start,
    /// Where "the end" was when the source was started: (dev, inode, size).
    end_at: Option<(u64, u64, u64)>,
    buf: Vec<u8>,
    watches: Option<Watches>,
    file_wd: Option<WatchDescriptor>,
    file_problem: Problem,
    dir_problem: Problem,
}

impl Tailer {
    fn new(
        spec: FileSpec,
        tx: mpsc::Sender<SourceEvent>,
        shutdown: watch::Receiver<bool>,
        stats: Arc<SourceStats>,
    ) -> Self {
        let key = checkpoint_key(&spec);
        let dir = match spec.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        Tailer {
            file_name: spec.path.file_name().map(|n| n.to_owned()),
            path: spec.path,
            dir,
            out: Out {
                name: spec.name,
                key,
                tx,
                shutdown,
                stats,
                last_checkpoint: None,
            },
            cur: None,
            start: Start::End,
            end_at: None,
            buf: vec![0; READ_CHUNK],
            watches: None,
            file_wd: None,
            file_problem: Problem::default(),
            dir_problem: Problem::default(),
        }
    }

    async fn run(mut self, checkpoint: Option<String>) {
        let mut inotify = self.init_inotify();
        self.watch_dir();
        self.resume(checkpoint);
        let period = if inotify.is_some() {
            POLL
        } else {
            POLL_WITHOUT_INOTIFY
        };
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut events = vec![0u8; 8192];

        let mut flow = self.sync().await;
        // Only a file readable right at start is read from its end; one that appears (or
        // becomes readable) later is new, so it is read from its start.
        self.start = Start::Beginning;
        while flow == Flow::Go {
            enum Wake {
                Shutdown,
                Inotify(io::Result<()>),
                Tick,
            }
            let wake = tokio::select! {
                biased;
                () = shutdown_requested(&mut self.out.shutdown) => Wake::Shutdown,
                r = next_events(&mut inotify, &mut events) => Wake::Inotify(r),
                _ = tick.tick() => Wake::Tick,
            };
            match wake {
                Wake::Shutdown => break,
                Wake::Inotify(Ok(())) => {}
                Wake::Inotify(Err(e)) => {
                    warn!(path = %self.path.display(), "inotify read failed, falling back to polling: {e}");
                    SourceStats::bump(&self.out.stats.errors);
                    inotify = None;
                    self.watches = None;
                    tick = tokio::time::interval(POLL_WITHOUT_INOTIFY);
                    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                }
                Wake::Tick => self.watch_dir(),
            }
            flow = self.sync().await;
        }
        self.finish().await;
    }

    fn init_inotify(&mut self) -> Option<AsyncFd<Inotify>> {
        let made = Inotify::init().and_then(|i| {
            let watches = i.watches();
            // SAFETY: `Inotify` owns its descriptor (shared only with `watches`, which keeps it
            // open too) for as long as it lives, and `as_raw_fd` always returns that same one.
            let fd = unsafe { AsyncFd::register_with_interest(i, Interest::READABLE) }?;
            Ok((fd, watches))
        });
        match made {
            Ok((fd, watches)) => {
                self.watches = Some(watches);
                Some(fd)
            }
            Err(e) => {
                warn!(path = %self.path.display(), "cannot use inotify, polling every {POLL_WITHOUT_INOTIFY:?}: {e}");
                SourceStats::bump(&self.out.stats.errors);
                None
            }
        }
    }

    /// (Re-)add the directory watch; idempotent, so the timer calls it to heal a lost watch.
    fn watch_dir(&mut self) {
        let Some(watches) = self.watches.as_mut() else {
            return;
        };
        let mask = WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::DELETE
            | WatchMask::ATTRIB;
        match watches.add(&self.dir, mask) {
            Ok(_) => self.dir_problem.clear(),
            Err(e) => self.dir_problem.report(
                format!(
                    "cannot watch directory {}: {e}; checking every {POLL:?}",
                    self.dir.display()
                ),
                &self.out.stats,
            ),
        }
    }

    /// Watch the inode of the open file (not the path, which may soon name another file).
    fn watch_file(&mut self) {
        let (Some(watches), Some(tail)) = (self.watches.as_mut(), self.cur.as_ref()) else {
            return;
        };
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", tail.file.as_raw_fd()));
        let added = watches
            .add(&by_fd, WatchMask::MODIFY)
            .or_else(|_| watches.add(&tail.path, WatchMask::MODIFY));
        match added {
            Ok(wd) => {
                if let Some(old) = self.file_wd.replace(wd.clone())
                    && old != wd
                {
                    // Fails harmlessly if the old inode is gone (its watch went with it).
                    let _ = watches.remove(old);
                }
            }
            Err(e) => {
                debug!(path = %tail.path.display(), "cannot watch file, relying on the timer: {e}")
            }
        }
    }

    /// Decide where to start from the checkpoint, before the first sync.
    fn resume(&mut self, checkpoint: Option<String>) {
        let Some(raw) = checkpoint else {
            self.start = Start::End;
            return;
        };
        let Some(cp) = Checkpoint::parse(&raw) else {
            warn!(path = %self.path.display(), checkpoint = %raw, "unreadable checkpoint, starting at the end of the file");
            SourceStats::bump(&self.out.stats.errors);
            self.start = Start::End;
            return;
        };
        // Whatever we find that is not the checkpointed file arrived while we were stopped.
        self.start = Start::Beginning;
        if let Ok((file, meta)) = open_regular(&self.path)
            && (meta.dev(), meta.ino()) == (cp.dev, cp.ino)
        {
            match Tail::resume(file, &meta, &self.path, &cp) {
                Some(tail) => {
                    self.cur = Some(tail);
                    self.watch_file();
                }
                None => {
                    info!(path = %self.path.display(), "file shrank or changed while stopped, reading it from the start")
                }
            }
            return;
        }
        if let Some(tail) = self.find_rotated(&cp) {
            info!(path = %self.path.display(), rotated = %tail.path.display(), "file was rotated while stopped, finishing the old one first");
            self.cur = Some(tail);
            self.watch_file();
        }
    }

    /// Look for the checkpointed file under a sibling name (`auth.log.1`, `auth.log-20261120`).
    fn find_rotated(&self, cp: &Checkpoint) -> Option<Tail> {
        let prefix = self.file_name.as_ref()?.as_bytes();
        let entries = std::fs::read_dir(&self.dir).ok()?;
        for entry in entries.take(MAX_SIBLINGS).flatten() {
            let name = entry.file_name();
            let name = name.as_bytes();
            if name.len() <= prefix.len() || !name.starts_with(prefix) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            if (meta.dev(), meta.ino()) != (cp.dev, cp.ino) {
                continue;
            }
            let (file, meta) = open_regular(&entry.path()).ok()?;
            return Tail::resume(file, &meta, &entry.path(), cp);
        }
        None
    }

    /// The one step every wake-up runs: read what is new, then follow the path to a new file
    /// if it names one.
    async fn sync(&mut self) -> Flow {
        for _ in 0..MAX_SWITCHES {
            if let Some(tail) = self.cur.as_mut()
                && drain(tail, &mut self.out, &mut self.buf).await == Flow::Stop
            {
                return Flow::Stop;
            }
            let meta = match std::fs::metadata(&self.path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if self.cur.is_none() {
                        self.start = Start::Beginning;
                        self.file_problem.report(
                            format!(
                                "{} does not exist yet; waiting for it to appear",
                                self.path.display()
                            ),
                            &self.out.stats,
                        );
                    }
                    // Otherwise it was renamed or deleted: keep reading the open file until a
                    // new one appears.
                    return Flow::Go;
                }
                Err(e) => {
                    self.file_problem.report(
                        format!(
                            "cannot stat {}: {e}; retrying every {POLL:?}",
                            self.path.display()
                        ),
                        &self.out.stats,
                    );
                    return Flow::Go;
                }
            };
            if let Some(tail) = &self.cur
                && (meta.dev(), meta.ino()) == (tail.dev, tail.ino)
            {
                self.file_problem.clear();
                return Flow::Go;
            }
            let (file, meta) = match open_regular(&self.path) {
                Ok(opened) => opened,
                Err(e) => {
                    self.file_problem.report(
                        format!(
                            "cannot read {}: {e}; retrying every {POLL:?}",
                            self.path.display()
                        ),
                        &self.out.stats,
                    );
                    return Flow::Go;
                }
            };
            self.file_problem.clear();
            if let Some(old) = self.cur.as_mut() {
                if (meta.dev(), meta.ino()) == (old.dev, old.ino) {
                    return Flow::Go; // it was swapped back in between
                }
                // Finish the old file: anything written before the new one appeared.
                if drain(old, &mut self.out, &mut self.buf).await == Flow::Stop {
                    return Flow::Stop;
                }
                if !old.carry.is_empty() || old.discarding {
                    debug!(path = %old.path.display(), "dropping an unterminated last line of the rotated file");
                }
                SourceStats::bump(&self.out.stats.rotations);
                info!(old = %old.path.display(), path = %self.path.display(), "file rotated, reading the new one from the start");
            }
            let pos = match (self.start, self.end_at.take()) {
                // The same file as when the source started, not shrunk since: from there.
                (Start::End, Some((dev, ino, len)))
                    if (meta.dev(), meta.ino()) == (dev, ino) && len <= meta.len() =>
                {
                    len
                }
                (Start::End, _) => meta.len(),
                (Start::Beginning, _) => 0,
            };
            self.start = Start::Beginning;
            let mut tail = Tail::new(file, &meta, &self.path, pos);
            if pos > 0 {
                // Starting at the end in the middle of a line: skip its rest.
                let mut last = [0u8];
                tail.discarding =
                    tail.file.read_exact_at(&mut last, pos - 1).is_ok() && last[0] != b'\n';
                tail.load_head();
            }
            self.cur = Some(tail);
            self.watch_file();
            if let Some(tail) = self.cur.as_mut()
                && self.out.checkpoint(tail).await == Flow::Stop
            {
                return Flow::Stop;
            }
        }
        Flow::Go
    }

    /// Emit the final checkpoint (bounded wait) and end.
    async fn finish(mut self) {
        let Some(tail) = self.cur.as_mut() else {
            return;
        };
        let value = tail.checkpoint().encode();
        let event = SourceEvent::Checkpoint {
            key: self.out.key.clone(),
            value,
        };
        if !matches!(
            tokio::time::timeout(FINAL_SEND_TIMEOUT, self.out.tx.send(event)).await,
            Ok(Ok(()))
        ) {
            debug!(path = %self.path.display(), "final checkpoint not delivered");
        }
    }
}

/// Wait for inotify events and consume them; their content does not matter (every wake-up
/// runs the same sync step). Never resolves when inotify is unavailable.
async fn next_events(inotify: &mut Option<AsyncFd<Inotify>>, buf: &mut [u8]) -> io::Result<()> {
    let Some(fd) = inotify.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        let mut guard = fd.readable_mut().await?;
        match guard.try_io(|fd| fd.get_mut().read_events(buf).map(|events| events.count())) {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

/// Read `tail` to its current end, emitting whole lines and a checkpoint per chunk.
async fn drain(tail: &mut Tail, out: &mut Out, buf: &mut [u8]) -> Flow {
    loop {
        let size = match tail.file.metadata() {
            Ok(meta) => meta.len(),
            Err(e) => {
                warn!(path = %tail.path.display(), "cannot stat open file: {e}");
                SourceStats::bump(&out.stats.errors);
                return Flow::Go;
            }
        };
        if size < tail.pos {
            info!(path = %tail.path.display(), "file was truncated (copytruncate?), reading it from the start");
            SourceStats::bump(&out.stats.rotations);
            tail.restart();
        } else if size > tail.pos && tail.rewritten() {
            // One ~1 KiB pread per read buys detection of a copytruncate that the writer
            // refilled past our position while we were blocked on a full channel.
            info!(path = %tail.path.display(), "file was truncated and rewritten, reading it from the start");
            SourceStats::bump(&out.stats.rotations);
            tail.restart();
        }
        if size == tail.pos {
            return Flow::Go;
        }
        let n = match tail.file.read_at(buf, tail.pos) {
            Ok(0) => return Flow::Go,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!(path = %tail.path.display(), "read failed: {e}");
                SourceStats::bump(&out.stats.errors);
                return Flow::Go;
            }
        };
        tail.note_head(tail.pos, &buf[..n]);
        if split_lines(tail, out, &buf[..n]).await == Flow::Stop {
            return Flow::Stop;
        }
        if out.checkpoint(tail).await == Flow::Stop {
            return Flow::Stop;
        }
        if n == buf.len() {
            // More is probably waiting: let other tasks run between big chunks.
            tokio::task::yield_now().await;
        }
    }
}

/// `carry` followed by `seg`, at most `MAX_LINE + 1` bytes (enough for the cut to show).
fn joined(carry: &[u8], seg: &[u8]) -> Vec<u8> {
    let take = (MAX_LINE + 1).saturating_sub(carry.len()).min(seg.len());
    let mut v = Vec::with_capacity(carry.len() + take);
    v.extend_from_slice(carry);
    v.extend_from_slice(&seg[..take]);
    v
}

/// Split freshly read bytes into lines. State (`pos`, `carry`, `discarding`) is updated only
/// after each line is handed over, so stopping mid-chunk leaves a correct checkpoint.
async fn split_lines(tail: &mut Tail, out: &mut Out, data: &[u8]) -> Flow {
    let mut rest = data;
    while !rest.is_empty() {
        match memchr::memchr(b'\n', rest) {
            Some(j) => {
                let seg = &rest[..j];
                if tail.discarding {
                    tail.discarding = false;
                } else if tail.carry.is_empty() {
                    if out.line(seg).await == Flow::Stop {
                        return Flow::Stop;
                    }
                } else {
                    let line = joined(&tail.carry, seg);
                    if out.line(&line).await == Flow::Stop {
                        return Flow::Stop;
                    }
                    tail.carry.clear();
                }
                tail.pos += j as u64 + 1;
                rest = &rest[j + 1..];
            }
            None => {
                if tail.discarding {
                    // Still inside a line that was emitted cut.
                } else if tail.carry.len() + rest.len() > MAX_LINE {
                    // Too long to hold: emit it cut now, skip the rest up to its newline.
                    let line = joined(&tail.carry, rest);
                    if out.line(&line).await == Flow::Stop {
                        return Flow::Stop;
                    }
                    tail.carry.clear();
                    tail.discarding = true;
                } else {
                    tail.carry.extend_from_slice(rest);
                }
                tail.pos += rest.len() as u64;
                rest = &[];
            }
        }
    }
    Flow::Go
}

#[cfg(test)]
mod tests;
