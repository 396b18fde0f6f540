//! The vocabulary that flows between the pipeline stages, and nothing else.
//!
//! ```text
//! source --Record--> matcher --Observation--> detect --Finding--> decide --Decision--> enforce
//! ```
//!
//! Stages import these types, never each other. Keeping them plain data (no I/O handles, no
//! clocks) is what lets the middle stages stay pure and testable with a fake clock.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

pub use crate::decide::allowlist::Permit;

/// One unit of input read by a source, before any matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The configured name of the source that produced it (`[[source]] name`).
    pub source: Arc<str>,
    /// What was read.
    pub body: RecordBody,
}

/// The two shapes of textual input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordBody {
    /// A line from a text log (syslog RFC 3164 / RFC 5424 / ISO 8601 prefixed), newline
    /// stripped, invalid UTF-8 replaced, cut at the line cap.
    Line(String),
    /// A journal entry: the fields the matcher needs, already split out by journald.
    Journal {
        /// `MESSAGE`.
        message: String,
        /// `SYSLOG_IDENTIFIER` (e.g. `sshd`, `sshd-session`), if present.
        identifier: Option<String>,
        /// `_SYSTEMD_UNIT`, if present.
        unit: Option<String>,
        /// `__REALTIME_TIMESTAMP`, microseconds since the Unix epoch.
        realtime_us: Option<u64>,
    },
}

/// What a matcher (or a structured source) saw: one event about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// When it happened (event time from the log line; receive time if the line had none).
    pub time: SystemTime,
    /// The source address, normalised (v4-mapped IPv6 becomes IPv4).
    pub addr: IpAddr,
    /// The user name the client tried, if the line carries one (client-controlled text).
    pub user: Option<String>,
    /// The rule (or structured kind) that produced it, e.g. `sshd.failed-password`.
    pub rule: Arc<str>,
    /// The source it came from.
    pub source: Arc<str>,
}

/// A detector's conclusion that a target deserves a ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The address or prefix to act on.
    pub target: IpNet,
    /// The jail whose detector fired.
    pub jail: Arc<str>,
    /// Which detector fired (e.g. `threshold`).
    pub detector: &'static str,
    /// Observations counted in the window when it fired.
    pub count: u32,
    /// Event time of the observation that made it fire.
    pub time: SystemTime,
}

/// How long a ban lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BanLength {
    /// Expires after this long (the kernel element carries the same timeout).
    For(Duration),
    /// Never expires on its own.
    Permanent,
}

/// What the policy stage decided. Enforcement consumes these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Put `target` in the ban set. Carries the allowlist's proof that `target` may be banned.
    Ban(BanOrder),
    /// Take `target` out of the ban set.
    Unban {
        /// The address or prefix.
        target: IpNet,
        /// Why (`manual`, `expired`, ...).
        reason: String,
    },
}

/// A ban that passed the allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanOrder {
    /// Proof from the allowlist; it names the target.
    pub permit: Permit,
    /// How long.
    pub length: BanLength,
    /// When the ban starts (decision time).
    pub start: SystemTime,
    /// The jail (or `manual`).
    pub jail: Arc<str>,
    /// Human-readable reason, stored with the ban.
    pub reason: String,
    /// Escalation level: 0 for a first offence, n for the n-th repeat.
    pub level: u32,
    /// The detector that asked for it (`threshold`, `window`, `prefix`, ..., or `manual`).
    pub detector: &'static str,
}

impl BanOrder {
    /// The address or prefix this order bans (taken from the permit, so it cannot differ).
    pub fn target(&self) -> IpNet {
        self.permit.target()
    }

    /// When it ends, or `None` for a permanent ban.
    pub fn expires(&self) -> Option<SystemTime> {
        match self.length {
            // A length past what the clock can hold is, in effect, permanent.
            BanLength::For(d) => self.start.checked_add(d),
            BanLength::Permanent => None,
        }
    }
}

/// Turn an address into the canonical form used everywhere: v4-mapped IPv6 (`::ffff:a.b.c.d`)
/// becomes plain IPv4, so one attacker never counts as two.
pub fn normalize_addr(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// A host address as a full-length prefix (`/32` or `/128`).
pub fn host_net(addr: IpAddr) -> IpNet {
    IpNet::from(normalize_addr(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_mapped_is_normalised_to_ipv4() {
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(
            normalize_addr(mapped),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(normalize_addr(v6), v6);
        assert_eq!(host_net(mapped).to_string(), "203.0.113.7/32");
    }
}
