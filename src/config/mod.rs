//! Configuration: TOML text -> validated [`Config`].
//!
//! Shaped as raw -> validated -> built (ripgrep's LowArgs -> HiArgs): `raw` walks the parsed
//! TOML table by hand instead of deriving `Deserialize`, because serde stops at the first
//! error and an operator fixing a config wants *every* problem, each with its key path
//! (`jail[0].find_time: ...`), in one run. Nothing starts until the list is empty.
//!
//! With no file at the default path a built-in default applies ([`Config::builtin_default`]):
//! SQLite under `/var/lib/ravelin`, nftables enforcement, and an sshd jail reading
//! `/var/log/auth.log` when it exists, else the journal (Debian 12 logs sshd only there).

mod duration;
mod raw;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub use duration::{format_duration, parse_duration};

use crate::event::BanLength;

/// Where the config is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/ravelin/ravelin.toml";

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from (`None`: built-in default).
    pub origin: Option<PathBuf>,
    /// Where the store and host keys live.
    pub state_dir: PathBuf,
    /// The control socket used by the CLI.
    pub control_socket: PathBuf,
    /// Networks that are never banned (loopback and host addresses are added at run time).
    pub allow: Vec<IpNet>,
    /// How bans are enforced.
    pub enforce: EnforceConfig,
    /// Store settings.
    pub store: StoreConfig,
    /// Log sources.
    pub sources: Vec<SourceConfig>,
    /// Jails: which sources, which rules, which thresholds.
    pub jails: Vec<JailConfig>,
    /// Repeat offenders.
    pub recidive: RecidiveConfig,
    /// Trusted addresses.
    pub trust: TrustConfig,
    /// Where Prometheus metrics are served (`None`: off). Loopback by default.
    pub metrics: Option<std::net::SocketAddr>,
    /// The default-deny firewall policy (`[firewall]`), if any; applied only by
    /// `ravelin firewall apply`, never by the daemon on its own.
    pub firewall: Option<crate::firewall::Policy>,
    /// The operations channel (`[alert]`): sinks, grouping, digest. No sinks: counts only.
    pub alert: crate::alert::AlertConfig,
    /// How often the daemon re-runs the posture audit to alert on new failures
    /// (`[audit] every`, default 6h).
    pub audit_every: Duration,
    /// The SSH decoy (`[honeypot]`), if configured; the daemon runs it as a confined child.
    pub honeypot: Option<HoneypotConfig>,
}

/// `[honeypot]`: the SSH decoy the daemon runs.
#[derive(Debug, Clone, PartialEq)]
pub struct HoneypotConfig {
    /// Addresses the daemon binds and hands to the decoy.
    pub listen: Vec<std::net::SocketAddr>,
    /// Cowrie-compatible JSON lines (written by the daemon, from the decoy's pipe).
    pub events_file: PathBuf,
    /// The decoy's own directory: host keys, secret, recordings (the only place it may write).
    pub data_dir: PathBuf,
    /// The unprivileged user the decoy runs as.
    pub user: String,
    /// How strict confinement must be.
    pub sandbox: crate::honeypot::sandbox::SandboxMode,
    /// SSH identification string.
    pub banner: String,
    /// Emulated hostname (default: chosen per install).
    pub hostname: Option<String>,
    /// `sensor` field of the events.
    pub sensor: Option<String>,
    /// Per-session and global limits.
    pub limits: crate::honeypot::Limits,
    /// Fraction of the plausible weak credentials accepted (`accept_fraction`, 0 to 1).
    pub accept_fraction: f64,
    /// `user:password` pairs always accepted (`accept_also`).
    pub accept_also: Vec<(String, String)>,
    /// Keep asciinema recordings of sessions in `data_dir/recordings`.
    pub recordings: bool,
    /// Disk quota for all recordings (oldest removed first).
    pub recordings_quota: u64,
    /// Largest single recording.
    pub recording_max: u64,
    /// Login attempts within `within` that ban the address (`[honeypot.ban] logins`).
    pub ban_logins: NonZeroU32,
    /// Window for `ban_logins`.
    pub ban_within: Duration,
    /// Ban length for login attempts.
    pub ban_time: BanLength,
    /// Stages that ban at once (`persistence`, `download`, ... ).
    pub ban_stages: Vec<String>,
    /// Ban length for those stages.
    pub stage_ban_time: BanLength,
}

impl Config {
    /// The longest window any detector looks back over (observations are kept this long).
    pub fn longest_window(&self) -> Duration {
        self.jails
            .iter()
            .flat_map(|j| {
                j.windows
                    .iter()
                    .map(|w| w.window)
                    .chain(std::iter::once(j.find_time))
                    .chain(j.prefix.iter().map(|p| p.window))
                    .chain(j.enumeration.iter().map(|e| e.window))
            })
            .max()
            .unwrap_or_default()
    }
}

/// `[enforce]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnforceConfig {
    /// `nftables` or `log` (dry run).
    pub backend: Backend,
    /// nftables table name (family `inet`).
    pub table: String,
    /// Path of the `nft` program.
    pub nft: PathBuf,
}

/// The enforcement backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Kernel sets via nftables.
    Nftables,
    /// Decide and record, touch no firewall.
    Log,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// How long ended bans and offence history are kept (escalation looks back this far).
    pub retention: Duration,
}

/// One `[[source]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// Unique name, referenced by jails.
    pub name: String,
    /// What it reads.
    pub kind: SourceKind,
}

/// What a source reads.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// A text log file, tailed.
    File {
        /// Its path.
        path: PathBuf,
    },
    /// The systemd journal through `journalctl -o json -f`.
    Journal {
        /// Units to follow (`--unit`); empty means all.
        units: Vec<String>,
        /// Path of `journalctl` (tests use a stand-in).
        journalctl: PathBuf,
    },
}

/// One `[[jail]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct JailConfig {
    /// Unique name.
    pub name: String,
    /// Off switch without deleting the section.
    pub enabled: bool,
    /// Source names it reads.
    pub sources: Vec<String>,
    /// Rule sets (`sshd`).
    pub rules: Vec<String>,
    /// Failures that trigger a ban...
    pub max_retry: NonZeroU32,
    /// ...within this window.
    pub find_time: Duration,
    /// First ban length.
    pub ban_time: BanLength,
    /// Each repeat multiplies the ban by this (>= 1).
    pub ban_time_factor: f64,
    /// Escalation cap.
    pub ban_time_max: Duration,
    /// Cap on addresses tracked by each detector (memory bound).
    pub max_tracked: usize,
    /// Structured observation kinds this jail takes (`scan`, `decoy.login`, ...): a kind
    /// matches an observation's rule id exactly or as its prefix before a `.`.
    pub kinds: Vec<String>,
    /// Per-rule weight overrides for score-based detectors.
    pub weights: Vec<(String, f32)>,
    /// Long windows on score (low-and-slow): each fires at `threshold` within `window`.
    pub windows: Vec<WindowConfig>,
    /// Distinct failing addresses per prefix (rotating botnets); `None` = off.
    pub prefix: Option<PrefixConfig>,
    /// Distinct user names per address (enumeration); `None` = off.
    pub enumeration: Option<EnumerationConfig>,
}

/// One `[[jail.window]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowConfig {
    /// Score that fires.
    pub threshold: f32,
    /// Over how long.
    pub window: Duration,
}

/// `[jail.prefix]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixConfig {
    /// Distinct failing addresses in one prefix that ban the prefix.
    pub min_addresses: u32,
    /// Within this window.
    pub window: Duration,
    /// IPv4 prefix length (default 24).
    pub v4_len: u8,
    /// IPv6 prefix length (default 64).
    pub v6_len: u8,
}

/// `[jail.enumeration]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumerationConfig {
    /// Distinct user names from one address that ban it.
    pub min_users: u32,
    /// Within this window.
    pub window: Duration,
    /// Count names per prefix (the `[jail.prefix]` lengths, else /24 and /64) and ban the
    /// prefix, instead of per address.
    pub per_prefix: bool,
}

/// `[recidive]`: repeat offenders across all jails.
#[derive(Debug, Clone, PartialEq)]
pub struct RecidiveConfig {
    /// After this many bans within the store's retention, the next ban is permanent
    /// (`None`: never).
    pub permanent_after: Option<u32>,
}

/// `[trust]`: addresses with recent key logins.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustConfig {
    /// An address that logged in with a key is not banned by detectors for this long
    /// (`None`: off). A successful login always clears an address's failures regardless.
    pub key_login_ttl: Option<Duration>,
}

/// Every problem found in a config, each with its key path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_errors(.origin, .errors))]
pub struct ConfigErrors {
    /// The file, if any.
    pub origin: Option<PathBuf>,
    /// `(key path, message)` pairs.
    pub errors: Vec<(String, String)>,
}

fn render_errors(origin: &Option<PathBuf>, errors: &[(String, String)]) -> String {
    let mut s = match origin {
        Some(p) => format!(
            "invalid config {} ({} error{}):",
            p.display(),
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        ),
        None => format!("invalid config ({} errors):", errors.len()),
    };
    for (path, msg) in errors {
        s.push_str("\n  ");
        if !path.is_empty() {
            s.push_str(path);
            s.push_str(": ");
        }
        s.push_str(msg);
    }
    s
}

impl Config {
    /// Load from `path`, or when `path` is `None`, from [`DEFAULT_PATH`] if it exists, else the
    /// built-in default. An explicitly named file that is missing is an error.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, Some(&path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok(Self::builtin_default())
            }
            Err(e) => Err(ConfigErrors {
                origin: Some(path.clone()),
                errors: vec![(
                    String::new(),
                    format!("cannot read {}: {e}", path.display()),
                )],
            }),
        }
    }

    /// Parse and validate TOML text.
    pub fn parse(text: &str, origin: Option<&Path>) -> Result<Config, ConfigErrors> {
        raw::parse(text)
            .map(|mut c| {
                c.origin = origin.map(Path::to_path_buf);
                c
            })
            .map_err(|errors| ConfigErrors {
                origin: origin.map(Path::to_path_buf),
                errors,
            })
    }

    /// The configuration used when there is no file.
    pub fn builtin_default() -> Config {
        let auth_log = Path::new("/var/log/auth.log");
        let source = if auth_log.exists() {
            SourceConfig {
                name: "auth".into(),
                kind: SourceKind::File {
                    path: auth_log.into(),
                },
            }
        } else {
            SourceConfig {
                name: "journal".into(),
                kind: SourceKind::Journal {
                    units: vec!["ssh.service".into(), "sshd.service".into()],
                    journalctl: PathBuf::from("journalctl"),
                },
            }
        };
        let mut c = raw::parse("").expect("the empty config is valid");
        c.jails = vec![raw::default_jail("sshd", vec![source.name.clone()])];
        c.sources = vec![source];
        c
    }

    /// The source called `name`.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// Path of the SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.state_dir.join("ravelin.db")
    }
}

/// Is `a` inside any of `nets`?
pub fn nets_contain(nets: &[IpNet], a: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&a))
}

#[cfg(test)]
mod tests;
