//! One operations channel: alerts that get read.
//!
//! Noisy alerts get ignored, so this module's job is mostly to *not* send: the daemon emits
//! [`AlertEvent`]s freely, and the [`policy`] (pure, clock passed in) turns them into few
//! [`Alert`]s:
//!
//! - events below `min_severity` go into a **digest** (hourly by default), not the channel;
//! - **duplicates** (same key within `dedup_window`) are suppressed and counted;
//! - bans are **grouped** by prefix (/16 for IPv4, /32 for IPv6): the first ban of a prefix goes
//!   out at once, the rest of the `group_window` (10 minutes) become one "campaign" alert with
//!   counts when the window closes, so 300 bans from one /16 are two messages, not 300.
//!
//! The [`dispatch`] side is the only I/O: a bounded input queue (the daemon calls
//! [`AlertHandle::emit`], which never blocks; a full queue drops and counts), then one worker
//! per sink with its own bounded queue, a rate limit, timeouts and retries with exponential
//! backoff. A dead sink therefore never blocks bans and never grows memory.
//!
//! Sinks ([`sink`]): generic JSON webhook, Slack, Discord, ntfy (HTTP via the tiny client in
//! [`http`]) and email over SMTP ([`smtp`]) with STARTTLS or implicit TLS. Secrets (URLs,
//! tokens, passwords) are read from files, systemd credentials or the environment
//! ([`secret`]); they are redacted from `Debug` and never logged.
//!
//! ## What the daemon should emit, and how loud
//!
//! The policy only routes by severity, so the severities below are what makes the defaults
//! of issue 7 ("what is worth an alert") come true with `min_severity = "medium"`:
//!
//! | event | kind | severity |
//! |---|---|---|
//! | a ban (grouped per prefix by the policy) | `ban` | medium |
//! | an unban, an expiry | `unban` | info (digest) |
//! | attempts or bans well above the learned baseline | `spike` | high |
//! | a decoy session reaching persistence or download | `decoy` | high (download: critical) |
//! | a decoy session that only sprayed or probed | `decoy` | low (digest) |
//! | the decoy process crashed | `health` | high |
//! | a critical change found by the audit | `audit` | critical (others: low) |
//! | a source silent while it usually logs | `health` | high |
//! | a jail whose sources log but whose rules matched nothing for a day | `health` | medium |
//! | enforcement errors | `health` | critical |
//!
//! ## Wiring (daemon side)
//!
//! ```ignore
//! // inside the daemon's tokio runtime, after the config is validated:
//! let (alerts, alert_task) = ravelin::alert::spawn(&cfg.alert, Arc::new(SystemClock));
//! // anywhere (any thread, any runtime), never blocks:
//! alerts.emit(AlertEvent::ban(now, target, jail.clone(), detector, &reason));
//! // metrics: alerts.counters().render(&mut exposition);
//! // shutdown: drop every AlertHandle clone, then alert_task.await (flushes, bounded).
//! ```

pub mod config;
pub mod dispatch;
pub mod http;
pub mod payload;
pub mod policy;
pub mod secret;
pub mod sink;
pub mod smtp;
mod tls;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use ipnet::IpNet;
use serde::Serialize;

pub use config::{AlertConfig, SinkConfig, SinkKind, parse_alert_config};
pub use dispatch::{AlertCounters, AlertHandle, CounterSnapshot, spawn};
pub use policy::{Alert, AlertShape};

/// The longest summary kept (characters); longer ones are cut with an ellipsis.
pub const MAX_SUMMARY: usize = 500;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// An address or prefix was banned.
    Ban,
    /// A ban was lifted.
    Unban,
    /// Attempts or bans well above the learned baseline.
    Spike,
    /// ravelin's own health: a silent source, an ineffective jail, enforcement errors.
    Health,
    /// A decoy session reached an interesting stage (persistence, download) or the decoy died.
    Decoy,
    /// The posture audit found a (critical) change.
    Audit,
}

impl AlertKind {
    /// The lowercase name used in payloads and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ban => "ban",
            Self::Unban => "unban",
            Self::Spike => "spike",
            Self::Health => "health",
            Self::Decoy => "decoy",
            Self::Audit => "audit",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much it matters. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Kept for the record (digest only).
    Info,
    /// Worth a line in the digest.
    Low,
    /// Worth a message (the default `min_severity`).
    Medium,
    /// Someone should look today.
    High,
    /// Someone should look now.
    Critical,
}

impl Severity {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// Parse a lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "info" => Self::Info,
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "critical" => Self::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ban details of a [`AlertKind::Ban`] or [`AlertKind::Unban`] event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanInfo {
    /// The banned address or prefix.
    pub target: IpNet,
    /// The jail that banned it.
    pub jail: Arc<str>,
    /// The detector that fired (e.g. `threshold`, `prefix`).
    pub detector: Arc<str>,
}

/// What the daemon emits. Cheap to build; the summary is bounded and cleaned of control
/// characters at construction, because parts of it (user names, paths) come from attackers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEvent {
    /// What happened.
    pub kind: AlertKind,
    /// How much it matters.
    pub severity: Severity,
    /// When it happened (the daemon's clock).
    pub time: SystemTime,
    summary: String,
    /// For bans and unbans: what, by which jail and detector.
    pub ban: Option<BanInfo>,
    /// What makes two events "the same" for duplicate suppression (default: kind and
    /// summary, or kind, target and jail for bans). Set it when the summary carries changing
    /// numbers, e.g. `health:silent:auth` for "source auth silent for 3h".
    pub key: Option<String>,
}

impl AlertEvent {
    /// A general event. `summary` is cut to [`MAX_SUMMARY`] characters and control
    /// characters become spaces.
    pub fn new(kind: AlertKind, severity: Severity, time: SystemTime, summary: &str) -> Self {
        Self {
            kind,
            severity,
            time,
            summary: clean_summary(summary),
            ban: None,
            key: None,
        }
    }

    /// A ban (severity medium; change it with [`AlertEvent::with_severity`]).
    pub fn ban(
        time: SystemTime,
        target: IpNet,
        jail: Arc<str>,
        detector: &str,
        summary: &str,
    ) -> Self {
        let mut e = Self::new(AlertKind::Ban, Severity::Medium, time, summary);
        e.ban = Some(BanInfo {
            target,
            jail,
            detector: detector.into(),
        });
        e
    }

    /// An unban (severity info: it only shows in the digest unless raised).
    pub fn unban(time: SystemTime, target: IpNet, jail: Arc<str>, summary: &str) -> Self {
        let mut e = Self::new(AlertKind::Unban, Severity::Info, time, summary);
        e.ban = Some(BanInfo {
            target,
            jail,
            detector: "".into(),
        });
        e
    }

    /// The same event with another severity.
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// The same event with an explicit duplicate-suppression key (bounded like the summary).
    pub fn with_key(mut self, key: &str) -> Self {
        self.key = Some(clean_summary(key));
        self
    }

    /// The cleaned, bounded summary.
    pub fn summary(&self) -> &str {
        &self.summary
    }
}

/// Bound and clean attacker-influenced text: no control characters (no header or line
/// injection into SMTP, no fake lines in chat), at most [`MAX_SUMMARY`] characters.
pub fn clean_summary(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_SUMMARY + 3));
    for (n, c) in s.chars().enumerate() {
        if n == MAX_SUMMARY {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_bounded_and_have_no_control_characters() {
        let long = "x".repeat(2000);
        let e = AlertEvent::new(AlertKind::Health, Severity::High, SystemTime::now(), &long);
        assert_eq!(e.summary().chars().count(), MAX_SUMMARY + 1);
        let e = AlertEvent::new(
            AlertKind::Decoy,
            Severity::High,
            SystemTime::now(),
            "user root\r\nSubject: pwned",
        );
        assert_eq!(e.summary(), "user root  Subject: pwned");
    }

    #[test]
    fn severities_are_ordered() {
        assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
        assert_eq!(Severity::parse("high"), Some(Severity::High));
        assert_eq!(Severity::parse("HIGH"), None);
    }
}
