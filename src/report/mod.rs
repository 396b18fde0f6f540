//! The weekly review: what happened, who did it, what almost got through, and which
//! thresholds would have done better, computed from the store (bans and observations) with
//! no daemon needed. [`html`] renders it as one self-contained file with SVG charts.
//!
//! Threshold suggestions are honest replays, not guesses: for a candidate "N counted failures
//! within 24 h" the near-miss sources (never banned) are replayed per address, and a candidate
//! is only suggested if no address that ever logged in successfully would have been caught.

pub mod html;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::clock::{rfc3339, unix_secs};
use crate::event::Observation;
use crate::store::BanRow;

/// One day (or hour) bucket of the timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    /// Bucket start, RFC 3339.
    pub start: String,
    /// Counted failure observations.
    pub attempts: u64,
    /// Bans started.
    pub bans: u64,
}

/// A ranked entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ranked {
    /// What (address, prefix, user name).
    pub key: String,
    /// How many.
    pub count: u64,
}

/// A source that stayed under every threshold.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NearMiss {
    /// The address.
    pub addr: String,
    /// Its counted failures in the period.
    pub failures: u64,
    /// The most it had in any 24 h.
    pub max_24h: u64,
}

/// A threshold that would have done better on this data.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Suggestion {
    /// In words.
    pub text: String,
    /// Failures within 24 h that would ban.
    pub threshold_24h: u64,
    /// More sources it would have stopped.
    pub more_sources: u64,
    /// Addresses with a successful login it would have banned (always 0 for a suggestion).
    pub legit_banned: u64,
}

/// The whole review.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Period start and end.
    pub since: String,
    /// End of the period.
    pub until: String,
    /// Counted failures.
    pub attempts: u64,
    /// Distinct attacking addresses.
    pub sources: u64,
    /// Bans started.
    pub bans: u64,
    /// Bans per detector.
    pub bans_by_detector: Vec<Ranked>,
    /// Successful logins seen.
    pub logins: u64,
    /// Timeline (days, or hours for periods up to two days).
    pub timeline: Vec<Bucket>,
    /// Top attacking addresses.
    pub top_sources: Vec<Ranked>,
    /// Top /24 and /64 prefixes.
    pub top_prefixes: Vec<Ranked>,
    /// Top user names tried.
    pub top_users: Vec<Ranked>,
    /// Decoy funnel (spray, probe, fingerprint, persistence, download): zero until a decoy runs.
    pub funnel: Vec<Ranked>,
    /// Credentials tried on the decoy (`user / password`), most frequent first.
    pub decoy_credentials: Vec<Ranked>,
    /// Command lines typed in the decoy, most frequent first.
    pub decoy_commands: Vec<Ranked>,
    /// URLs the decoy's visitors tried to download (never fetched).
    pub decoy_downloads: Vec<Ranked>,
    /// Sources that failed but were never banned.
    pub near_misses: Vec<NearMiss>,
    /// Threshold suggestions computed from the data.
    pub suggestions: Vec<Suggestion>,
}

fn counted(o: &Observation) -> bool {
    // Stage observations describe decoy sessions already counted by their logins: they feed
    // the funnel, not the attempt counts.
    if o.rule.starts_with("decoy.stage.") {
        return false;
    }
    if o.rule.starts_with("decoy.") || o.rule.starts_with("scan") {
        return true;
    }
    crate::matcher::default_weight(&o.rule, o.user.as_deref()) > 0.0
}

fn prefix_of(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => ipnet::Ipv4Net::new(v4, 24)
            .map(|n| n.trunc().to_string())
            .unwrap_or_default(),
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, 64)
            .map(|n| n.trunc().to_string())
            .unwrap_or_default(),
    }
}

fn top(map: HashMap<String, u64>, n: usize) -> Vec<Ranked> {
    let mut v: Vec<Ranked> = map
        .into_iter()
        .map(|(key, count)| Ranked { key, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    v.truncate(n);
    v
}

/// The most failures of one address within any 24 h (times sorted).
fn max_in_day(times: &[u64]) -> u64 {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= 86_400 {
            lo += 1;
        }
        best = best.max((hi - lo + 1) as u64);
    }
    best
}

/// Build the review from what the store holds for the period.
pub fn build(bans: &[BanRow], obs: &[Observation], since: SystemTime, until: SystemTime) -> Report {
    let span = until.duration_since(since).unwrap_or_default();
    let bucket = if span <= Duration::from_secs(2 * 86_400) {
        3600
    } else {
        86_400
    };
    let start = unix_secs(since) / bucket * bucket;
    let n = ((unix_secs(until).saturating_sub(start)) / bucket + 1).min(400) as usize;
    let mut timeline: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            start: rfc3339(crate::clock::from_unix_secs(start + i as u64 * bucket)),
            attempts: 0,
            bans: 0,
        })
        .collect();
    let idx = |t: SystemTime| ((unix_secs(t).saturating_sub(start)) / bucket) as usize;

    let mut per_addr: HashMap<IpAddr, Vec<u64>> = HashMap::new();
    let (mut by_prefix, mut by_user, mut funnel): (
        HashMap<String, u64>,
        HashMap<String, u64>,
        HashMap<String, u64>,
    ) = Default::default();
    let mut logged_in: HashSet<IpAddr> = HashSet::new();
    let mut attempts = 0;
    for o in obs {
        if o.rule.starts_with("sshd.accepted") {
            logged_in.insert(o.addr);
            continue;
        }
        if let Some(stage) = o.rule.strip_prefix("decoy.stage.") {
            *funnel.entry(stage.to_string()).or_default() += 1;
        }
        if !counted(o) {
            continue;
        }
        attempts += 1;
        if let Some(b) = timeline.get_mut(idx(o.time)) {
            b.attempts += 1;
        }
        per_addr.entry(o.addr).or_default().push(unix_secs(o.time));
        *by_prefix.entry(prefix_of(o.addr)).or_default() += 1;
        if let Some(u) = &o.user {
            *by_user.entry(u.chars().take(64).collect()).or_default() += 1;
        }
    }
    let mut by_detector: HashMap<String, u64> = HashMap::new();
    let mut banned: Vec<ipnet::IpNet> = Vec::new();
    for b in bans {
        if let Some(x) = timeline.get_mut(idx(b.start)) {
            x.bans += 1;
        }
        *by_detector.entry(b.detector.clone()).or_default() += 1;
        banned.push(b.target);
    }
    for times in per_addr.values_mut() {
        times.sort_unstable();
    }
    let was_banned = |a: &IpAddr| banned.iter().any(|n| n.contains(a));
    let mut near: Vec<NearMiss> = per_addr
        .iter()
        .filter(|(a, _)| !was_banned(a))
        .map(|(a, t)| NearMiss {
            addr: a.to_string(),
            failures: t.len() as u64,
            max_24h: max_in_day(t),
        })
        .collect();
    near.sort_by(|a, b| {
        b.failures
            .cmp(&a.failures)
            .then_with(|| a.addr.cmp(&b.addr))
    });
    // Suggestions: the smallest 24 h threshold that stops more near-misses and bans no address
    // that ever logged in successfully.
    let mut suggestions = Vec::new();
    for threshold in [3u64, 5, 8, 12] {
        let more = near.iter().filter(|m| m.max_24h >= threshold).count() as u64;
        let legit = per_addr
            .iter()
            .filter(|(a, t)| logged_in.contains(a) && max_in_day(t) >= threshold)
            .count() as u64;
        if more > 0 && legit == 0 {
            suggestions.push(Suggestion {
                text: format!("a 24 h window of {threshold} would have stopped {more} more source(s) and no address that logged in successfully"),
                threshold_24h: threshold,
                more_sources: more,
                legit_banned: 0,
            });
            break;
        }
    }
    let sources = per_addr.len() as u64;
    near.truncate(20);
    Report {
        since: rfc3339(since),
        until: rfc3339(until),
        attempts,
        sources,
        bans: bans.len() as u64,
        bans_by_detector: top(by_detector, 10),
        logins: obs
            .iter()
            .filter(|o| o.rule.starts_with("sshd.accepted"))
            .count() as u64,
        timeline,
        top_sources: top(
            per_addr
                .iter()
                .map(|(a, t)| (a.to_string(), t.len() as u64))
                .collect(),
            15,
        ),
        top_prefixes: top(by_prefix, 10),
        top_users: top(by_user, 15),
        funnel: ["spray", "probe", "fingerprint", "persistence", "download"]
            .iter()
            .map(|s| Ranked {
                key: s.to_string(),
                count: funnel.get(*s).copied().unwrap_or(0),
            })
            .collect(),
        decoy_credentials: Vec::new(),
        decoy_commands: Vec::new(),
        decoy_downloads: Vec::new(),
        near_misses: near,
        suggestions,
    }
}

/// Add what the decoy's sessions show (read from its events file): credentials, commands
/// and download URLs, each cut to a display length and ranked.
pub fn add_decoy(r: &mut Report, sessions: &[crate::honeypot::sessions::SessionSummary]) {
    let cut = |s: &str| -> String {
        let mut t: String = s.chars().take(120).collect();
        if t.len() < s.len() {
            t.push('…');
        }
        t
    };
    let (mut creds, mut cmds, mut urls): (
        HashMap<String, u64>,
        HashMap<String, u64>,
        HashMap<String, u64>,
    ) = Default::default();
    for s in sessions {
        for c in &s.credentials {
            if let Some(p) = &c.password {
                *creds
                    .entry(cut(&format!("{} / {}", c.username, p)))
                    .or_default() += 1;
            }
        }
        for c in &s.commands {
            *cmds.entry(cut(c)).or_default() += 1;
        }
        for u in &s.downloads {
            *urls.entry(cut(u)).or_default() += 1;
        }
    }
    r.decoy_credentials = top(creds, 15);
    r.decoy_commands = top(cmds, 15);
    r.decoy_downloads = top(urls, 15);
}

/// The text form (stdout).
pub fn text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "ravelin report {} .. {}", r.since, r.until);
    let _ = writeln!(
        s,
        "{} counted attempts from {} sources, {} bans, {} successful logins",
        r.attempts, r.sources, r.bans, r.logins
    );
    let sections: [(&str, &Vec<Ranked>); 8] = [
        ("bans by detector", &r.bans_by_detector),
        ("top sources", &r.top_sources),
        ("top prefixes", &r.top_prefixes),
        ("top user names", &r.top_users),
        ("decoy kill chain (sessions per stage)", &r.funnel),
        ("decoy credentials", &r.decoy_credentials),
        ("decoy commands", &r.decoy_commands),
        ("decoy downloads (not fetched)", &r.decoy_downloads),
    ];
    for (title, list) in sections {
        let _ = writeln!(s, "\n{title}:");
        for x in list.iter().take(10) {
            let _ = writeln!(s, "  {:<42} {:>8}", x.key, x.count);
        }
    }
    let _ = writeln!(s, "\nnear misses (failed, never banned):");
    for m in r.near_misses.iter().take(10) {
        let _ = writeln!(
            s,
            "  {:<42} {:>6} failures, at most {} in 24 h",
            m.addr, m.failures, m.max_24h
        );
    }
    let _ = writeln!(s, "\nsuggestions:");
    if r.suggestions.is_empty() {
        let _ = writeln!(
            s,
            "  none: the current thresholds stopped what a safe tighter one would have"
        );
    }
    for x in &r.suggestions {
        let _ = writeln!(s, "  {}", x.text);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_unix_secs;
    use std::sync::Arc;

    fn obs(t: u64, addr: &str, rule: &str, user: &str) -> Observation {
        Observation {
            time: from_unix_secs(t),
            addr: addr.parse().unwrap(),
            user: Some(user.into()),
            rule: Arc::from(rule),
            source: Arc::from("auth"),
        }
    }

    #[test]
    fn review_counts_ranks_and_suggests_only_safe_thresholds() {
        let day = 86_400;
        let mut o = Vec::new();
        // A slow source: 4 failures a day for 3 days, never banned.
        for d in 0..3 {
            for h in 0..4 {
                o.push(obs(
                    d * day + h * 3600,
                    "203.0.113.5",
                    "sshd.failed-password",
                    "root",
                ));
            }
        }
        // A legitimate user: 2 typos then a login, every day.
        for d in 0..3 {
            o.push(obs(
                d * day + 100,
                "198.51.100.7",
                "sshd.failed-password",
                "alice",
            ));
            o.push(obs(
                d * day + 160,
                "198.51.100.7",
                "sshd.failed-password",
                "alice",
            ));
            o.push(obs(
                d * day + 200,
                "198.51.100.7",
                "sshd.accepted-publickey",
                "alice",
            ));
        }
        // A banned brute forcer.
        for i in 0..10 {
            o.push(obs(
                day + i,
                "192.0.2.99",
                "sshd.invalid-user",
                &format!("u{i}"),
            ));
        }
        let bans = vec![BanRow {
            id: 1,
            target: "192.0.2.99/32".parse().unwrap(),
            jail: "sshd".into(),
            reason: "x".into(),
            level: 0,
            detector: "threshold".into(),
            start: from_unix_secs(day + 10),
            expires: None,
            ended: None,
        }];
        let r = build(&bans, &o, from_unix_secs(0), from_unix_secs(3 * day));
        assert_eq!(r.attempts, 12 + 6 + 10);
        assert_eq!((r.sources, r.bans, r.logins), (3, 1, 3));
        assert_eq!(r.timeline.len(), 4);
        assert_eq!(r.timeline[1].bans, 1);
        assert_eq!(
            r.top_sources[0],
            Ranked {
                key: "203.0.113.5".into(),
                count: 12
            }
        );
        assert_eq!(r.bans_by_detector[0].key, "threshold");
        // Near misses: the slow source and alice (never banned).
        assert_eq!(r.near_misses[0].addr, "203.0.113.5");
        assert_eq!(r.near_misses[0].max_24h, 4);
        // 3 in 24 h would catch alice (2 typos a day? no: 2 < 3) -> safe; it stops the slow one.
        assert_eq!(r.suggestions.len(), 1, "{:?}", r.suggestions);
        assert_eq!(
            (
                r.suggestions[0].threshold_24h,
                r.suggestions[0].more_sources
            ),
            (3, 1)
        );
        assert!(text(&r).contains("a 24 h window of 3 would have stopped 1 more source"));
    }
}
