//! The daemon's side of the decoy: bind its ports, start it as a confined child with the
//! sockets passed in, read its events from a pipe, write the Cowrie JSON file, feed the ban
//! pipeline, and restart it when it dies.
//!
//! ```text
//!  daemon (root)                                   decoy child (nobody, Landlock, seccomp)
//!  bind 0.0.0.0:22, [::]:22 ── fd 4, 5 ─────────▶ accept, SSH, shell
//!  supervisor thread ◀──────── pipe, fd 3 ──────── Cowrie JSON lines
//!     ├─▶ events_file (appended, reopened after rotation)
//!     └─▶ SourceEvent::Observation ─▶ pipeline (jails `decoy`, `decoy-intrusion`)
//! ```
//!
//! Why shaped so:
//! - **The daemon keeps the sockets.** It binds once (as root, for port 22) and keeps the
//!   listeners across restarts, so a crashed decoy costs queued connections a second, never
//!   the port, and the child never needs a privilege.
//! - **The child's words are input.** The pipe is read with a line cap, each line is parsed as
//!   untrusted JSON, times in the future are clamped, and stage names are checked against the
//!   known list so metric labels stay bounded. A compromised decoy can claim an attacker did
//!   something; it cannot get an allowlisted address banned (the allowlist is the daemon's) or
//!   grow the daemon's memory.
//! - **Crashes are loud and cheap.** An exit is logged with its status, alerted, counted, and
//!   followed by a restart with backoff (1 s doubling to 1 min, reset after a minute of calm).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::alert::{AlertEvent, AlertHandle, AlertKind, Severity};
use crate::config::HoneypotConfig;
use crate::honeypot::events::observation_from_json;
use crate::source::SourceEvent;

/// Longest event line read from the child; longer lines are skipped (counted).
const MAX_LINE: usize = 256 * 1024;

/// Counters the metrics endpoint reads.
#[derive(Debug, Default)]
pub struct DecoyStats {
    /// 1 while a decoy process is running.
    pub running: AtomicU64,
    /// Times the decoy exited and was restarted.
    pub restarts: AtomicU64,
    /// Lines from the child that were not valid events.
    pub bad_lines: AtomicU64,
    /// Events per Cowrie event id (bounded: ids are checked against the known list).
    pub events: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Sessions that reached each stage.
    pub stages: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// The decoy process's own counters, from its latest stats event (fixed names).
    pub child: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl DecoyStats {
    /// Keep the counters of a `ravelin.decoy.stats` event (known names, numbers only).
    pub fn take_child_counters(&self, v: &Value) {
        if let Ok(mut m) = self.child.lock() {
            for k in crate::honeypot::events::STATS_FIELDS {
                if let Some(n) = v.get(*k).and_then(Value::as_u64) {
                    m.insert(k, n);
                }
            }
        }
    }

    /// The decoy's part of `ravelin status`.
    pub fn status_json(&self) -> Value {
        let events = self.events.lock().map(|m| m.clone()).unwrap_or_default();
        let stages = self.stages.lock().map(|m| m.clone()).unwrap_or_default();
        serde_json::json!({
            "running": self.running.load(Ordering::Relaxed) == 1,
            "restarts": self.restarts.load(Ordering::Relaxed),
            "sessions": events.get("cowrie.session.connect").copied().unwrap_or(0),
            "logins_failed": events.get("cowrie.login.failed").copied().unwrap_or(0),
            "logins_succeeded": events.get("cowrie.login.success").copied().unwrap_or(0),
            "commands": events.get("cowrie.command.input").copied().unwrap_or(0),
            "stages": stages,
        })
    }

    /// Add the decoy's families to a metrics exposition (labels: event ids and stage names,
    /// both from fixed lists).
    pub fn render(&self, e: &mut crate::metrics::Exposition) {
        e.family(
            "ravelin_decoy_running",
            "gauge",
            "1 while the decoy process runs.",
        )
        .sample(
            "ravelin_decoy_running",
            &[],
            self.running.load(Ordering::Relaxed) as f64,
        );
        e.family(
            "ravelin_decoy_restarts_total",
            "counter",
            "Times the decoy process ended and was restarted.",
        )
        .sample(
            "ravelin_decoy_restarts_total",
            &[],
            self.restarts.load(Ordering::Relaxed) as f64,
        );
        e.family(
            "ravelin_decoy_bad_lines_total",
            "counter",
            "Lines from the decoy process that were not valid events.",
        )
        .sample(
            "ravelin_decoy_bad_lines_total",
            &[],
            self.bad_lines.load(Ordering::Relaxed) as f64,
        );
        let events = self.events.lock().map(|m| m.clone()).unwrap_or_default();
        e.family(
            "ravelin_decoy_sessions_total",
            "counter",
            "Connections to the decoy.",
        )
        .sample(
            "ravelin_decoy_sessions_total",
            &[],
            events.get("cowrie.session.connect").copied().unwrap_or(0) as f64,
        );
        e.family(
            "ravelin_decoy_events_total",
            "counter",
            "Decoy events per Cowrie event id.",
        );
        for (id, n) in &events {
            e.sample("ravelin_decoy_events_total", &[("eventid", id)], *n as f64);
        }
        let child = self.child.lock().map(|m| m.clone()).unwrap_or_default();
        e.family(
            "ravelin_decoy_sessions_open",
            "gauge",
            "Sessions the decoy holds open (its latest report).",
        )
        .sample(
            "ravelin_decoy_sessions_open",
            &[],
            child.get("sessions_open").copied().unwrap_or(0) as f64,
        );
        e.family(
            "ravelin_decoy_process_total",
            "counter",
            "The decoy process's own counters: events and recordings dropped, truncated, \
             rotated out, write errors (its latest report).",
        );
        for k in crate::honeypot::events::STATS_FIELDS
            .iter()
            .filter(|k| **k != "sessions_open")
        {
            e.sample(
                "ravelin_decoy_process_total",
                &[("counter", k)],
                child.get(k).copied().unwrap_or(0) as f64,
            );
        }
        let stages = self.stages.lock().map(|m| m.clone()).unwrap_or_default();
        e.family(
            "ravelin_decoy_stages_total",
            "counter",
            "Decoy sessions that reached each kill-chain stage.",
        );
        for st in crate::honeypot::events::STAGES {
            e.sample(
                "ravelin_decoy_stages_total",
                &[("stage", st)],
                stages.get(st).copied().unwrap_or(0) as f64,
            );
        }
    }
}

/// The running supervisor; [`Supervisor::stop`] ends the child and the thread.
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    pid: Arc<AtomicI32>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Shared counters.
    pub stats: Arc<DecoyStats>,
}

/// Bind the decoy's ports (IPv6 sockets are v6-only, so `0.0.0.0:22` and `[::]:22` coexist).
pub fn bind(addrs: &[SocketAddr]) -> anyhow::Result<Vec<OwnedFd>> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, listen, setsockopt,
        socket, sockopt,
    };
    let mut out = Vec::new();
    for a in addrs {
        let fam = if a.is_ipv6() {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let s = socket(fam, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
            .with_context(|| format!("decoy socket for {a}"))?;
        setsockopt(&s, sockopt::ReuseAddr, &true)?;
        if a.is_ipv6() {
            setsockopt(&s, sockopt::Ipv6V6Only, &true)?;
        }
        bind(s.as_raw_fd(), &SockaddrStorage::from(*a)).with_context(|| {
            format!("binding the decoy to {a} (is sshd or another service still on that port?)")
        })?;
        listen(&s, Backlog::new(1024).unwrap_or(Backlog::MAXCONN))
            .with_context(|| format!("listening on {a}"))?;
        out.push(s);
    }
    Ok(out)
}

impl Supervisor {
    /// Start the decoy with `listeners` and supervise it on a thread of its own.
    pub fn start(
        cfg: HoneypotConfig,
        listeners: Vec<OwnedFd>,
        tx: mpsc::Sender<SourceEvent>,
        alerts: Option<AlertHandle>,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding our own executable")?;
        if let Some(dir) = cfg.events_file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let pid = Arc::new(AtomicI32::new(0));
        let stats = Arc::new(DecoyStats::default());
        let (s2, p2, st2) = (stop.clone(), pid.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name("decoy".into())
            .spawn(move || supervise(exe, cfg, listeners, tx, alerts, s2, p2, st2))?;
        Ok(Self {
            stop,
            pid,
            thread: Some(thread),
            stats,
        })
    }

    /// Stop the decoy (SIGTERM) and wait for the supervisor to finish.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let pid = self.pid.load(Ordering::SeqCst);
        if pid > 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The child's command line: `ravelin decoy serve` with the sockets at fds 4.. and the pipe at
/// fd 3.
fn child_args(cfg: &HoneypotConfig, n_listeners: usize) -> Vec<String> {
    let l = &cfg.limits;
    let mut a: Vec<String> = vec!["decoy".into(), "serve".into()];
    for i in 0..n_listeners {
        a.push("--listen-fd".into());
        a.push((4 + i).to_string());
    }
    let secs = |d: Duration| format!("{}s", d.as_secs().max(1));
    a.extend([
        "--events-fd".into(),
        "3".into(),
        "--state-dir".into(),
        cfg.data_dir.display().to_string(),
        "--user".into(),
        cfg.user.clone(),
        "--sandbox".into(),
        match cfg.sandbox {
            crate::honeypot::sandbox::SandboxMode::Required => "required",
            crate::honeypot::sandbox::SandboxMode::BestEffort => "best-effort",
            crate::honeypot::sandbox::SandboxMode::Off => "off",
        }
        .into(),
        "--banner".into(),
        cfg.banner.clone(),
        "--max-sessions".into(),
        l.max_sessions.to_string(),
        "--max-per-addr".into(),
        l.max_per_addr.to_string(),
        "--max-auth-tries".into(),
        l.max_auth_tries.to_string(),
        "--auth-timeout".into(),
        secs(l.auth_timeout),
        "--idle-timeout".into(),
        secs(l.idle_timeout),
        "--session-timeout".into(),
        secs(l.session_timeout),
        "--max-bytes".into(),
        l.max_bytes.to_string(),
        "--accept-fraction".into(),
        cfg.accept_fraction.to_string(),
        "--recordings-quota-mb".into(),
        if cfg.recordings {
            (cfg.recordings_quota >> 20).max(1).to_string()
        } else {
            "0".into()
        },
        "--recording-max-mb".into(),
        (cfg.recording_max >> 20).max(1).to_string(),
    ]);
    for (u, p) in &cfg.accept_also {
        a.push("--accept-also".into());
        a.push(format!("{u}:{p}"));
    }
    if let Some(h) = &cfg.hostname {
        a.push("--hostname".into());
        a.push(h.clone());
    }
    if let Some(s) = &cfg.sensor {
        a.push("--sensor".into());
        a.push(s.clone());
    }
    a
}

/// Duplicate `fd` to a number at or above 100 (close-on-exec), so the child's `dup2` onto
/// 3, 4, ... never overwrites a source descriptor.
fn high_dup(fd: RawFd) -> std::io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

fn spawn_child(
    exe: &PathBuf,
    args: &[String],
    listeners: &[OwnedFd],
) -> anyhow::Result<(std::process::Child, std::fs::File)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating the pipe")?;
    let w = high_dup(w.as_raw_fd())?;
    let highs: Vec<OwnedFd> = listeners
        .iter()
        .map(|l| high_dup(l.as_raw_fd()))
        .collect::<std::io::Result<_>>()?;
    let w_raw = w.as_raw_fd();
    let l_raw: Vec<RawFd> = highs.iter().map(AsRawFd::as_raw_fd).collect();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .env_clear()
        .env(
            "RAVELIN_LOG",
            std::env::var("RAVELIN_LOG").unwrap_or_else(|_| "info".into()),
        );
    // SAFETY: only async-signal-safe calls (prctl, dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::dup2(w_raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for (i, &fd) in l_raw.iter().enumerate() {
                if libc::dup2(fd, 4 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().context("starting the decoy process")?;
    drop(w);
    drop(highs);
    Ok((child, std::fs::File::from(r)))
}

#[allow(clippy::too_many_arguments)]
fn supervise(
    exe: PathBuf,
    cfg: HoneypotConfig,
    listeners: Vec<OwnedFd>,
    tx: mpsc::Sender<SourceEvent>,
    alerts: Option<AlertHandle>,
    stop: Arc<AtomicBool>,
    pid: Arc<AtomicI32>,
    stats: Arc<DecoyStats>,
) {
    let args = child_args(&cfg, listeners.len());
    let mut events = EventsFile::new(cfg.events_file.clone());
    let mut backoff = Duration::from_secs(1);
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let status = match spawn_child(&exe, &args, &listeners) {
            Ok((mut child, pipe)) => {
                pid.store(child.id() as i32, Ordering::SeqCst);
                stats.running.store(1, Ordering::Relaxed);
                tracing::info!(pid = child.id(), "decoy started");
                read_events(pipe, &mut events, &tx, &stats, alerts.as_ref());
                let st = child.wait();
                pid.store(0, Ordering::SeqCst);
                stats.running.store(0, Ordering::Relaxed);
                match st {
                    Ok(s) => format!("{s}"),
                    Err(e) => format!("wait failed: {e}"),
                }
            }
            Err(e) => format!("{e:#}"),
        };
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        stats.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            "decoy stopped ({status}); restarting in {}s",
            backoff.as_secs()
        );
        if let Some(a) = &alerts {
            decoy_alert(
                a,
                "health:decoy-crashed",
                &format!(
                    "The SSH decoy stopped ({status}); the daemon keeps its ports and restarts \
                     it in {}s. Bans keep working. If this repeats, run `ravelin decoy serve` \
                     by hand to see why.",
                    backoff.as_secs()
                ),
            );
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
    events.flush();
}

/// A high-severity decoy alert, deduplicated by `key`.
fn decoy_alert(a: &AlertHandle, key: &str, text: &str) {
    a.emit(
        AlertEvent::new(AlertKind::Decoy, Severity::High, SystemTime::now(), text).with_key(key),
    );
}

/// Read JSON lines until the child closes the pipe.
fn read_events(
    pipe: std::fs::File,
    events: &mut EventsFile,
    tx: &mpsc::Sender<SourceEvent>,
    stats: &DecoyStats,
    alerts: Option<&AlertHandle>,
) {
    let mut r = BufReader::with_capacity(64 * 1024, pipe);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let n = match (&mut r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("reading decoy events: {e}");
                break;
            }
        };
        if line.last() != Some(&b'\n') {
            // Over the cap: skip to the end of this line.
            stats.bad_lines.fetch_add(1, Ordering::Relaxed);
            let mut sink = Vec::new();
            let _ = r.read_until(b'\n', &mut sink);
            continue;
        }
        let _ = n;
        let Ok(v) = serde_json::from_slice::<Value>(&line) else {
            stats.bad_lines.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Some(id) = v
            .get("eventid")
            .and_then(Value::as_str)
            .and_then(crate::honeypot::events::known_eventid)
        else {
            stats.bad_lines.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if id == crate::honeypot::events::STATS_EVENT {
            stats.take_child_counters(&v);
            continue;
        }
        if let Ok(mut m) = stats.events.lock() {
            *m.entry(id).or_default() += 1;
        }
        if id == "ravelin.session.stage"
            && let Some(st) = v
                .get("stage")
                .and_then(Value::as_str)
                .and_then(crate::honeypot::events::known_stage)
        {
            if let Ok(mut m) = stats.stages.lock() {
                *m.entry(st).or_default() += 1;
            }
            // A session that plants persistence or fetches a payload is worth a message.
            if matches!(st, "persistence" | "download")
                && let Some(a) = alerts
            {
                let field = |k: &str| {
                    v.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .chars()
                        .take(64)
                        .collect::<String>()
                };
                let (src, session) = (field("src_ip"), field("session"));
                decoy_alert(
                    a,
                    &format!("decoy:{st}:{session}"),
                    &format!(
                        "decoy session {session} from {src} reached {st}; see `ravelin \
                         sessions --addr {src}` and `ravelin replay {session}`"
                    ),
                );
            }
        }
        events.write(&line);
        if let Some(obs) = observation_from_json(&v, SystemTime::now()) {
            // Backpressure: waiting here fills the pipe, and the child drops (and counts)
            // events rather than waiting; bans are never starved by the decoy.
            if tx.blocking_send(SourceEvent::Observation(obs)).is_err() {
                break;
            }
        }
        // Write the file promptly when the pipe is idle.
        if r.buffer().is_empty() {
            events.flush();
        }
    }
    events.flush();
}

/// The Cowrie JSON file, appended, reopened when logrotate moves it away.
struct EventsFile {
    path: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    checked: Instant,
}

impl EventsFile {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            checked: Instant::now(),
        }
    }

    fn open(&mut self) -> Option<&mut std::io::BufWriter<std::fs::File>> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        if self.file.is_some() && self.checked.elapsed() > Duration::from_secs(5) {
            self.checked = Instant::now();
            let moved = match (
                std::fs::metadata(&self.path),
                self.file.as_ref().map(|f| f.get_ref().metadata()),
            ) {
                (Ok(p), Some(Ok(f))) => p.ino() != f.ino() || p.dev() != f.dev(),
                _ => true,
            };
            if moved {
                self.flush();
                self.file = None;
            }
        }
        if self.file.is_none() {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(&self.path)
            {
                Ok(f) => self.file = Some(std::io::BufWriter::with_capacity(64 * 1024, f)),
                Err(e) => {
                    tracing::warn!("decoy events file {}: {e}", self.path.display());
                    return None;
                }
            }
        }
        self.file.as_mut()
    }

    fn write(&mut self, line: &[u8]) {
        if let Some(f) = self.open()
            && let Err(e) = f.write_all(line)
        {
            tracing::warn!("decoy events file: {e}");
            self.file = None;
        }
    }

    fn flush(&mut self) {
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_counters_take_known_names_and_numbers_only() {
        let st = DecoyStats::default();
        st.take_child_counters(&serde_json::json!({
            "eventid": "ravelin.decoy.stats",
            "sessions_open": 7,
            "recordings_dropped": 2,
            "invented_counter": 99,
            "events_dropped": "lots",
        }));
        let m = st.child.lock().unwrap().clone();
        assert_eq!(m.get("sessions_open"), Some(&7));
        assert_eq!(m.get("recordings_dropped"), Some(&2));
        assert!(!m.contains_key("invented_counter"));
        assert!(!m.contains_key("events_dropped"));
        let mut e = crate::metrics::Exposition::default();
        st.render(&mut e);
        let text = e.finish();
        assert!(text.contains("ravelin_decoy_sessions_open 7"), "{text}");
        assert!(
            text.contains("ravelin_decoy_process_total{counter=\"recordings_dropped\"} 2"),
            "{text}"
        );
        assert!(!text.contains("invented"));
    }
}
