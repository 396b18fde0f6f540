//! The SSH decoy: a real SSH-2 server (russh) that records what attackers try and do, and
//! feeds the ban pipeline as a structured source.
//!
//! ```text
//!  TcpListener ─accept─▶ limits (global, per address) ─▶ session task (russh + Handler)
//!                                                            │  auth policy, shell
//!                                                            ▼
//!                                       EventSink ──▶ writer task ──▶ Cowrie JSON lines
//!                                                 └──▶ SourceEvent::Observation ──▶ daemon
//! ```
//!
//! | module | role |
//! |---|---|
//! | [`server`] | accept loop, limits and timeouts, the russh handler |
//! | [`auth`] | which credentials are accepted (deterministic, keyed, plausible only) |
//! | [`shell`] | bounded command-line parser and emulated commands (sans-I/O) |
//! | [`fs`] | the per-session in-memory filesystem the shell reads and writes (bounded) |
//! | [`stage`] | attack-chain stages (probe, fingerprint, persistence, download, ...) of commands |
//! | [`profile`] | the one host the decoy pretends to be, chosen per install |
//! | [`events`] | Cowrie-compatible events, the writer task, observations |
//! | [`keys`] | host keys and the per-install secret in the state directory |
//! | [`sandbox`] | privilege drop, Landlock and seccomp for the decoy process |
//! | [`wire`] | the watched byte stream: client version, HASSH, byte budget, kill switch |
//! | [`record`] | session recordings as asciinema v2 `.cast` files, bounded per file and by quota |
//! | [`sessions`] | per-session summaries read back from the events file (for `ravelin sessions`) |
//!
//! Why shaped so: the decoy is meant to run as its own unprivileged, sandboxed process that
//! receives an already-bound listening socket ([`serve`] takes a `TcpListener`, however it was
//! made) and reaches no network but its accepted connections; nothing in here opens an
//! outbound socket, runs a program or fetches a URL. Every session is its own task with its
//! own deadlines, so one slow or hostile client never holds up another.

pub mod auth;
pub mod events;
pub mod fs;
pub mod keys;
pub mod profile;
pub mod record;
pub mod sandbox;
pub mod server;
pub mod sessions;
pub mod shell;
pub mod stage;
pub mod wire;

use std::path::PathBuf;
use std::time::Duration;

pub use server::serve;

/// The banner a current Debian 12 OpenSSH sends (without the trailing CR LF).
pub const DEFAULT_BANNER: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3";

/// Everything the decoy needs to run.
#[derive(Debug, Clone)]
pub struct DecoyConfig {
    /// Identification string sent to clients (must start with `SSH-2.0-`).
    pub banner: String,
    /// Where host keys and the per-install secret live (created 0700).
    pub state_dir: PathBuf,
    /// Cowrie-compatible JSON lines go here (appended).
    pub events_file: PathBuf,
    /// Write the JSON lines to this inherited descriptor (a pipe to the daemon) instead of
    /// `events_file`; the decoy exits when the reader is gone.
    pub events_fd: Option<std::os::fd::RawFd>,
    /// Emit the decoy's own counters as an event every few seconds (for the daemon).
    pub report_stats: bool,
    /// Session recordings (asciinema v2), if on.
    pub recordings: Option<record::RecordConfig>,
    /// `sensor` field of the events (default: the emulated hostname).
    pub sensor: Option<String>,
    /// Hostname of the emulated machine (default: chosen per install).
    pub hostname: Option<String>,
    /// Limits applied to every session.
    pub limits: Limits,
    /// Fraction of the plausible weak pairs accepted (0: none; default 0.25).
    pub accept_fraction: f64,
    /// `(user, password)` pairs always accepted.
    pub accept_also: Vec<(String, String)>,
}

/// Bounds on what one client (or all of them) can make the decoy hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Sessions open at once; further connections are closed at accept.
    pub max_sessions: usize,
    /// Sessions open at once from one address.
    pub max_per_addr: usize,
    /// Time from accept to a successful login.
    pub auth_timeout: Duration,
    /// Time without traffic before a session is closed.
    pub idle_timeout: Duration,
    /// Total lifetime of a session.
    pub session_timeout: Duration,
    /// Bytes in both directions per session.
    pub max_bytes: u64,
    /// Login attempts per connection (as sshd's `MaxAuthTries`).
    pub max_auth_tries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: 2000,
            max_per_addr: 10,
            auth_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(180),
            session_timeout: Duration::from_secs(900),
            max_bytes: 4 * 1024 * 1024,
            max_auth_tries: 6,
        }
    }
}
