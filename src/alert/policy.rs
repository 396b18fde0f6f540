//! What is worth a message: severity routing, grouping, duplicate suppression, the digest.
//!
//! Pure (GUIDE habit 2): no I/O, no clock; `now` is an argument, so the tests below run
//! hours of simulated time in microseconds. The dispatcher calls [`Policy::push`] for every
//! event and [`Policy::tick`] about once a second, and sends whatever [`Alert`]s come back.
//!
//! Grouping is designed so the first alert is prompt and the rest are summarised: the first
//! ban from a prefix (/16 for IPv4, /32 for IPv6) goes out at once and opens a group for
//! `group_window`; later bans from that prefix only count. When the window closes, a
//! non-empty group becomes one "campaign" alert (counts per jail and detector, a few sample
//! targets) and, because the campaign may still be running, the group stays open for another
//! window without a new immediate alert. A sustained campaign therefore costs one message per
//! window, a lone ban one message, and 300 bans from one /16 in ten minutes two.
//!
//! Every map here is bounded: beyond [`MAX_GROUPS`] prefixes bans go out ungrouped (the
//! per-sink rate limit still caps them), beyond [`MAX_DEDUP`] keys duplicates are not
//! suppressed, and the digest keeps [`DIGEST_LINES`] lines plus counts.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use super::config::AlertConfig;
use super::{AlertEvent, AlertKind, BanInfo, Severity};

/// Prefixes tracked for grouping at once.
pub const MAX_GROUPS: usize = 10_000;
/// Duplicate keys remembered at once.
pub const MAX_DEDUP: usize = 10_000;
/// Lines kept in one digest (the rest are counted).
pub const DIGEST_LINES: usize = 100;
/// Sample targets listed in a campaign alert.
const SAMPLES: usize = 10;
/// A campaign with at least this many grouped bans is raised to high severity.
const CAMPAIGN_HIGH: u64 = 100;

/// The shape of an outgoing alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertShape {
    /// One event.
    Single,
    /// Bans from one prefix, summarised.
    Campaign,
    /// The periodic digest of low-severity events.
    Digest,
    /// `ravelin alert test`.
    Test,
}

impl AlertShape {
    /// The lowercase name used in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Campaign => "campaign",
            Self::Digest => "digest",
            Self::Test => "test",
        }
    }
}

/// One message, ready to be rendered for a sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Single, campaign, digest or test.
    pub shape: AlertShape,
    /// The event kind (`None` for digests and tests).
    pub kind: Option<AlertKind>,
    /// Severity.
    pub severity: Severity,
    /// When (the event's time; the window's end for campaigns and digests).
    pub time: SystemTime,
    /// One line.
    pub title: String,
    /// The body (plain text, may be several lines).
    pub text: String,
    /// How many events this alert stands for.
    pub count: u64,
    /// For a single ban: the details.
    pub ban: Option<BanInfo>,
    /// For a campaign: the prefix.
    pub prefix: Option<IpNet>,
}

impl Alert {
    /// The alert `ravelin alert test` sends.
    pub fn test(now: SystemTime) -> Self {
        Self {
            shape: AlertShape::Test,
            kind: None,
            severity: Severity::Info,
            time: now,
            title: "test alert".into(),
            text: "ravelin can reach this channel. No action needed.".into(),
            count: 0,
            ban: None,
            prefix: None,
        }
    }

    /// The key duplicates are recognised by (also used by the sinks' rate-limit notes).
    fn dedup_key(ev: &AlertEvent) -> String {
        if let Some(k) = &ev.key {
            return format!("{}|key|{k}", ev.kind);
        }
        match &ev.ban {
            Some(b) => format!("{}|{}|{}", ev.kind, b.target, b.jail),
            None => format!("{}|{}", ev.kind, ev.summary()),
        }
    }

    fn single(ev: &AlertEvent) -> Self {
        let title = match &ev.ban {
            Some(b) if ev.kind == AlertKind::Ban => {
                format!("banned {} (jail {}, {})", b.target, b.jail, b.detector)
            }
            Some(b) => format!("{} {} (jail {})", ev.kind, b.target, b.jail),
            None => format!("{}: {}", ev.kind, first_words(ev.summary(), 80)),
        };
        Self {
            shape: AlertShape::Single,
            kind: Some(ev.kind),
            severity: ev.severity,
            time: ev.time,
            title,
            text: ev.summary().to_string(),
            count: 1,
            ban: ev.ban.clone(),
            prefix: None,
        }
    }
}

fn first_words(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// UTC time as `2026-11-21 08:01:02 UTC`.
pub fn fmt_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// The grouping prefix of a ban target: /16 for IPv4, /32 for IPv6 (wider targets keep
/// their own prefix).
pub fn group_prefix(target: IpNet) -> IpNet {
    let len = match target.addr() {
        IpAddr::V4(_) => 16,
        IpAddr::V6(_) => 32,
    };
    let len = len.min(target.prefix_len());
    IpNet::new(target.addr(), len)
        .map(|n| n.trunc())
        .unwrap_or(target)
}

#[derive(Debug)]
struct Group {
    opened: SystemTime,
    severity: Severity,
    count: u64,
    jails: BTreeMap<Arc<str>, u64>,
    detectors: BTreeMap<Arc<str>, u64>,
    samples: Vec<IpNet>,
    first_alert: Option<String>,
}

impl Group {
    fn new(now: SystemTime, first_alert: Option<String>) -> Self {
        Self {
            opened: now,
            severity: Severity::Info,
            count: 0,
            jails: BTreeMap::new(),
            detectors: BTreeMap::new(),
            samples: Vec::new(),
            first_alert,
        }
    }

    fn add(&mut self, ev: &AlertEvent, b: &BanInfo) {
        self.count += 1;
        self.severity = self.severity.max(ev.severity);
        *self.jails.entry(b.jail.clone()).or_default() += 1;
        if !b.detector.is_empty() {
            *self.detectors.entry(b.detector.clone()).or_default() += 1;
        }
        if self.samples.len() < SAMPLES && !self.samples.contains(&b.target) {
            self.samples.push(b.target);
        }
    }

    fn campaign(&self, prefix: IpNet, now: SystemTime) -> Alert {
        let mins = now
            .duration_since(self.opened)
            .unwrap_or_default()
            .as_secs()
            .div_ceil(60);
        let mut text = String::new();
        match &self.first_alert {
            Some(t) => {
                let _ = writeln!(
                    text,
                    "{} more bans from {prefix} in the last {mins} min, after: {t}.",
                    self.count
                );
            }
            None => {
                let _ = writeln!(
                    text,
                    "{} more bans from {prefix} in the last {mins} min; the campaign goes on.",
                    self.count
                );
            }
        }
        let list = |m: &BTreeMap<Arc<str>, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(text, "jails: {}", list(&self.jails));
        if !self.detectors.is_empty() {
            let _ = writeln!(text, "detectors: {}", list(&self.detectors));
        }
        let samples: Vec<String> = self.samples.iter().map(|s| s.to_string()).collect();
        let _ = write!(text, "targets: {}", samples.join(", "));
        if self.count > self.samples.len() as u64 {
            let _ = write!(
                text,
                " (and {} more)",
                self.count - self.samples.len() as u64
            );
        }
        let severity = if self.count >= CAMPAIGN_HIGH {
            self.severity.max(Severity::High)
        } else {
            self.severity
        };
        Alert {
            shape: AlertShape::Campaign,
            kind: Some(AlertKind::Ban),
            severity,
            time: now,
            title: format!("campaign from {prefix}: {} more bans", self.count),
            text,
            count: self.count,
            ban: None,
            prefix: Some(prefix),
        }
    }
}

#[derive(Debug, Default)]
struct Digest {
    since: Option<SystemTime>,
    lines: Vec<String>,
    counts: BTreeMap<(AlertKind, Severity), u64>,
    total: u64,
}

/// What one call did, besides the alerts it returns (the dispatcher counts these).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Duplicates dropped.
    pub suppressed: u64,
    /// Events folded into a campaign.
    pub grouped: u64,
    /// Events put into the digest (or only counted, with the digest off).
    pub digested: u64,
}

/// The alert policy state.
#[derive(Debug)]
pub struct Policy {
    min_severity: Severity,
    digest_every: Option<Duration>,
    group_window: Duration,
    dedup_window: Duration,
    groups: HashMap<IpNet, Group>,
    seen: HashMap<String, SystemTime>,
    digest: Digest,
    next_digest: Option<SystemTime>,
    /// Running totals.
    pub tally: Tally,
}

impl Policy {
    /// A policy from the config; `now` starts the digest clock.
    pub fn new(cfg: &AlertConfig, now: SystemTime) -> Self {
        Self {
            min_severity: cfg.min_severity,
            digest_every: cfg.digest,
            group_window: cfg.group_window,
            dedup_window: cfg.dedup_window,
            groups: HashMap::new(),
            seen: HashMap::new(),
            digest: Digest::default(),
            next_digest: cfg.digest.map(|d| now + d),
            tally: Tally::default(),
        }
    }

    /// Take one event; returns what should go out now.
    pub fn push(&mut self, ev: &AlertEvent, now: SystemTime) -> Vec<Alert> {
        if ev.severity < self.min_severity {
            self.add_to_digest(ev);
            return Vec::new();
        }
        if self.is_duplicate(ev, now) {
            self.tally.suppressed += 1;
            return Vec::new();
        }
        if ev.kind == AlertKind::Ban
            && let Some(b) = &ev.ban
        {
            let prefix = group_prefix(b.target);
            if let Some(g) = self.groups.get_mut(&prefix) {
                g.add(ev, b);
                self.tally.grouped += 1;
                return Vec::new();
            }
            let alert = Alert::single(ev);
            if self.groups.len() < MAX_GROUPS {
                let first = format!("{} at {}", alert.title, fmt_time(ev.time));
                self.groups.insert(prefix, Group::new(now, Some(first)));
            }
            return vec![alert];
        }
        vec![Alert::single(ev)]
    }

    fn is_duplicate(&mut self, ev: &AlertEvent, now: SystemTime) -> bool {
        let key = Alert::dedup_key(ev);
        if let Some(t) = self.seen.get(&key)
            && now.duration_since(*t).unwrap_or_default() < self.dedup_window
        {
            return true;
        }
        if self.seen.len() >= MAX_DEDUP {
            self.prune_seen(now);
        }
        if self.seen.len() < MAX_DEDUP {
            self.seen.insert(key, now);
        }
        false
    }

    fn prune_seen(&mut self, now: SystemTime) {
        let w = self.dedup_window;
        self.seen
            .retain(|_, t| now.duration_since(*t).unwrap_or_default() < w);
    }

    fn add_to_digest(&mut self, ev: &AlertEvent) {
        self.tally.digested += 1;
        if self.digest_every.is_none() {
            return;
        }
        let d = &mut self.digest;
        d.since.get_or_insert(ev.time);
        d.total += 1;
        *d.counts.entry((ev.kind, ev.severity)).or_default() += 1;
        if d.lines.len() < DIGEST_LINES {
            let what = match &ev.ban {
                Some(b) => format!("{} (jail {})", b.target, b.jail),
                None => String::new(),
            };
            let sep = if what.is_empty() || ev.summary().is_empty() {
                ""
            } else {
                ": "
            };
            d.lines.push(format!(
                "{} [{}] {} {what}{sep}{}",
                fmt_time(ev.time),
                ev.severity,
                ev.kind,
                ev.summary()
            ));
        }
    }

    /// Close due groups and the digest; call about once a second.
    pub fn tick(&mut self, now: SystemTime) -> Vec<Alert> {
        let mut out = Vec::new();
        let window = self.group_window;
        let due: Vec<IpNet> = self
            .groups
            .iter()
            .filter(|(_, g)| now.duration_since(g.opened).unwrap_or_default() >= window)
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            let Some(g) = self.groups.remove(&p) else {
                continue;
            };
            if g.count > 0 {
                out.push(g.campaign(p, now));
                // The campaign may still be running: keep gathering without a new first alert.
                self.groups.insert(p, Group::new(now, None));
            }
        }
        if let (Some(at), Some(every)) = (self.next_digest, self.digest_every)
            && now >= at
        {
            out.extend(self.take_digest(now));
            self.next_digest = Some(now + every);
        }
        if self.seen.len() > MAX_DEDUP / 2 {
            self.prune_seen(now);
        }
        out
    }

    /// Everything pending (open campaigns, the digest): for shutdown.
    pub fn flush(&mut self, now: SystemTime) -> Vec<Alert> {
        let mut out: Vec<Alert> = self
            .groups
            .drain()
            .filter(|(_, g)| g.count > 0)
            .map(|(p, g)| g.campaign(p, now))
            .collect();
        out.extend(self.take_digest(now));
        out
    }

    fn take_digest(&mut self, now: SystemTime) -> Option<Alert> {
        let d = std::mem::take(&mut self.digest);
        if d.total == 0 {
            return None;
        }
        let since = d.since.unwrap_or(now);
        let mut text = String::new();
        let counts: Vec<String> = d
            .counts
            .iter()
            .map(|((k, s), n)| format!("{k}/{s} {n}"))
            .collect();
        let _ = writeln!(text, "counts: {}", counts.join(", "));
        for l in &d.lines {
            let _ = writeln!(text, "{l}");
        }
        if d.total > d.lines.len() as u64 {
            let _ = writeln!(text, "... and {} more", d.total - d.lines.len() as u64);
        }
        Some(Alert {
            shape: AlertShape::Digest,
            kind: None,
            severity: Severity::Info,
            time: now,
            title: format!("digest: {} events since {}", d.total, fmt_time(since)),
            text: text.trim_end().to_string(),
            count: d.total,
            ban: None,
            prefix: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    fn ban(now: SystemTime, target: &str) -> AlertEvent {
        AlertEvent::ban(now, target.parse().unwrap(), "sshd".into(), "threshold", "")
    }

    fn policy() -> Policy {
        Policy::new(&AlertConfig::default(), t0())
    }

    #[test]
    fn three_hundred_bans_from_one_slash16_are_one_prompt_alert_and_one_campaign() {
        let mut p = policy();
        let mut sent = Vec::new();
        for i in 0..300u32 {
            let now = t0() + Duration::from_secs(u64::from(i));
            let target = format!("198.51.{}.{}/32", i / 200, i % 200 + 1);
            sent.extend(p.push(&ban(now, &target), now));
            sent.extend(p.tick(now));
        }
        assert_eq!(sent.len(), 1, "only the first goes out at once");
        assert_eq!(sent[0].shape, AlertShape::Single);
        assert!(sent[0].title.contains("198.51.0.1/32"), "{}", sent[0].title);
        sent.extend(p.tick(t0() + Duration::from_secs(600)));
        assert_eq!(sent.len(), 2);
        let c = &sent[1];
        assert_eq!(c.shape, AlertShape::Campaign);
        assert_eq!(c.count, 299);
        assert_eq!(c.prefix, Some("198.51.0.0/16".parse().unwrap()));
        assert_eq!(c.severity, Severity::High, "299 bans raise the campaign");
        assert!(c.text.contains("jails: sshd 299"), "{}", c.text);
        assert!(c.text.contains("(and 289 more)"), "{}", c.text);
        // A quiet next window closes the group silently.
        assert!(p.tick(t0() + Duration::from_secs(1300)).is_empty());
        // and the next ban is prompt again.
        let later = t0() + Duration::from_secs(1400);
        assert_eq!(p.push(&ban(later, "198.51.9.9/32"), later).len(), 1);
    }

    #[test]
    fn a_sustained_campaign_costs_one_message_per_window() {
        let mut p = policy();
        let mut sent = 0;
        for i in 0..3600u64 {
            let now = t0() + Duration::from_secs(i);
            let target = format!("2001:db8:{:x}::{:x}/128", i % 7, i + 1);
            sent += p.push(&ban(now, &target), now).len();
            sent += p.tick(now).len();
        }
        // One prompt alert, then one campaign per 10-minute window (the digest is empty).
        assert_eq!(sent, 1 + 5);
    }

    #[test]
    fn other_prefixes_are_separate_groups() {
        let mut p = policy();
        let a = p.push(&ban(t0(), "203.0.113.1/32"), t0());
        let b = p.push(&ban(t0(), "198.51.100.1/32"), t0());
        let c = p.push(&ban(t0(), "2001:db8::1/128"), t0());
        let d = p.push(&ban(t0(), "2001:db9::1/128"), t0());
        assert_eq!(a.len() + b.len() + c.len() + d.len(), 4);
    }

    #[test]
    fn duplicates_within_the_window_are_suppressed() {
        let mut p = policy();
        let ev =
            |now| AlertEvent::new(AlertKind::Health, Severity::High, now, "source auth silent");
        assert_eq!(p.push(&ev(t0()), t0()).len(), 1);
        let t1 = t0() + Duration::from_secs(1800);
        assert!(p.push(&ev(t1), t1).is_empty());
        assert_eq!(p.tally.suppressed, 1);
        let t2 = t0() + Duration::from_secs(3601);
        assert_eq!(p.push(&ev(t2), t2).len(), 1);
        // An explicit key makes changing summaries the same event.
        let keyed = |now, s: &str| {
            AlertEvent::new(AlertKind::Health, Severity::High, now, s).with_key("silent:auth")
        };
        assert_eq!(p.push(&keyed(t2, "auth silent for 2h"), t2).len(), 1);
        assert!(p.push(&keyed(t2, "auth silent for 3h"), t2).is_empty());
    }

    #[test]
    fn low_severity_goes_to_the_hourly_digest() {
        let mut p = policy();
        for i in 0..150u64 {
            let now = t0() + Duration::from_secs(i);
            let ev = AlertEvent::unban(
                now,
                "203.0.113.9/32".parse().unwrap(),
                "sshd".into(),
                "expired",
            );
            assert!(p.push(&ev, now).is_empty());
        }
        assert!(p.tick(t0() + Duration::from_secs(3599)).is_empty());
        let out = p.tick(t0() + Duration::from_secs(3600));
        assert_eq!(out.len(), 1);
        let d = &out[0];
        assert_eq!((d.shape, d.count), (AlertShape::Digest, 150));
        assert!(d.text.contains("unban/info 150"), "{}", d.text);
        assert!(d.text.contains("... and 50 more"), "{}", d.text);
        // Empty digests are not sent.
        assert!(p.tick(t0() + Duration::from_secs(7200)).is_empty());
    }

    #[test]
    fn flush_sends_open_campaigns_and_the_digest() {
        let mut p = policy();
        p.push(&ban(t0(), "203.0.113.1/32"), t0());
        p.push(&ban(t0(), "203.0.113.2/32"), t0());
        p.push(
            &AlertEvent::new(AlertKind::Audit, Severity::Low, t0(), "sshd_config changed"),
            t0(),
        );
        let out = p.flush(t0() + Duration::from_secs(5));
        let shapes: Vec<AlertShape> = out.iter().map(|a| a.shape).collect();
        assert_eq!(shapes, [AlertShape::Campaign, AlertShape::Digest]);
    }

    #[test]
    fn group_prefixes() {
        let g = |s: &str| group_prefix(s.parse().unwrap()).to_string();
        assert_eq!(g("203.0.113.7/32"), "203.0.0.0/16");
        assert_eq!(g("10.0.0.0/8"), "10.0.0.0/8");
        assert_eq!(g("2001:db8:1:2::1/128"), "2001:db8::/32");
    }
}
