//! Record -> match: the built-in rules that turn a log line into (rule, address, user, time).
//!
//! Pure: no I/O and no clock reads (`now` is an argument, used only to give RFC 3164 stamps a
//! year), so the daemon, `ravelin test-rules` and the tests all drive the same code.
//!
//! Shaped for speed and for injection safety, in three passes over a line:
//!
//! 1. `header` parses the syslog header by hand. The header is written by the syslog daemon,
//!    so it fixes where the message starts and which program wrote it; lines from programs the
//!    rule set does not cover (cron, sudo, systemd-logind: ~40% of a busy auth.log) are
//!    rejected after reading the tag.
//! 2. One anchored Aho-Corasick automaton over every rule's leading literal picks, in one pass,
//!    the few rules that can apply (a literal prefilter instead of a loop of regexes).
//! 3. Each candidate rule is a typed `template` anchored at both ends, whose address field
//!    must be pinned by server-written text (see `template` for the argument) and must parse
//!    as an IP with std's parser.
//!
//! Journal records skip pass 1: journald already split out the program (`SYSLOG_IDENTIFIER`)
//! and the time (`__REALTIME_TIMESTAMP`), and a `MESSAGE` that looks like a syslog line is
//! *not* re-parsed as one (that would let message text pose as a header).

mod header;
mod sshd;
mod template;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, MatchKind, StartKind};
use memchr::memmem::Finder;

use crate::event::RecordBody;
use template::Rule;

/// Names of the built-in rule sets.
const KNOWN: &[&str] = &["sshd"];

/// Programs whose lines the `sshd` rule set covers: `sshd`, and the per-session
/// (`sshd-session`, OpenSSH 9.8+) and pre-auth (`sshd-auth`, OpenSSH 10) binaries.
const SSHD_PROGRAMS: &[&str] = &["sshd", "sshd-session", "sshd-auth"];

/// Does a match of `rule` count as one failure toward a jail's threshold? Successful logins,
/// and lines that only repeat an attempt already counted, do not (the list is `NOT_COUNTED` in the sshd rule table).
pub fn counts_as_failure(rule: &str) -> bool {
    !sshd::NOT_COUNTED.contains(&rule)
}

/// The default weight of one match of `rule` for score-based detectors (0 for lines that do
/// not count; see the `WEIGHTS` table beside the sshd rules). A failure on `root` weighs
/// double. Jails may override per rule.
pub fn default_weight(rule: &str, user: Option<&str>) -> f32 {
    if !counts_as_failure(rule) {
        return 0.0;
    }
    let base = sshd::WEIGHTS
        .iter()
        .find(|(r, _)| *r == rule)
        .map_or(1.0, |(_, w)| *w);
    if user == Some("root") && rule != "sshd.root-login-refused" {
        base * 2.0
    } else {
        base
    }
}

/// The names of all built-in rule sets, for error messages and `--help`.
pub fn known_rule_sets() -> &'static [&'static str] {
    KNOWN
}

/// A rule set name that is not built in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule set {0:?}; known rule sets: {known}", known = known_rule_sets().join(", "))]
pub struct UnknownRuleSet(pub String);

/// The result of matching one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// A rule matched.
    Matched(Match<'a>),
    /// No rule matched.
    Unmatched {
        /// The line comes from a program a selected rule set covers (`sshd`, `sshd-session`,
        /// `sshd-auth`), so an unmatched line may be a shape we miss and is worth showing.
        relevant: bool,
    },
}

impl<'a> Outcome<'a> {
    /// The match, if any.
    pub fn matched(self) -> Option<Match<'a>> {
        match self {
            Outcome::Matched(m) => Some(m),
            Outcome::Unmatched { .. } => None,
        }
    }
}

/// What a rule extracted from a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match<'a> {
    /// Stable rule id, e.g. `sshd.failed-password`; ids starting `sshd.accepted` are
    /// successful logins.
    pub rule: &'static str,
    /// The source address, normalised with [`crate::event::normalize_addr`].
    pub addr: IpAddr,
    /// The user name, if the line carries one (client-controlled text: display only).
    pub user: Option<&'a str>,
    /// Event time from the record, if it had a valid one.
    pub time: Option<SystemTime>,
}

/// A compiled set of rules. Built once per jail; `Send + Sync`, so one can serve many threads.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// One automaton over the distinct leads, anchored at the message start, longest lead
    /// wins.
    leads: AhoCorasick,
    /// For each lead (by automaton pattern id), the rules to try in order, each with the
    /// searcher for its address separator (built once here, not per line).
    groups: Vec<Vec<(&'static Rule, Option<Finder<'static>>)>>,
    /// Distinct rule ids in table order.
    ids: Vec<&'static str>,
    /// Programs covered by the selected rule sets.
    programs: Vec<&'static str>,
}

impl Matcher {
    /// Build a matcher from rule set names (built-in: `sshd`, covering fail2ban's normal and
    /// aggressive sshd modes). An unknown name is an error that lists the known ones.
    pub fn new(rule_sets: &[String]) -> Result<Matcher, UnknownRuleSet> {
        let mut rules: Vec<&'static Rule> = Vec::new();
        let mut programs = Vec::new();
        for name in rule_sets {
            match name.as_str() {
                "sshd" => {
                    if !programs.contains(&"sshd") {
                        rules.extend(sshd::RULES.iter());
                        programs.extend_from_slice(SSHD_PROGRAMS);
                    }
                }
                other => return Err(UnknownRuleSet(other.to_string())),
            }
        }
        let mut leads: Vec<&'static str> = Vec::new();
        let mut groups: Vec<Vec<(&'static Rule, Option<Finder<'static>>)>> = Vec::new();
        let mut ids: Vec<&'static str> = Vec::new();
        for r in rules {
            let finder = match r.slot {
                template::Slot::Greedy { sep, .. } => Some(Finder::new(sep.as_bytes())),
                template::Slot::Addr => None,
            };
            match leads.iter().position(|l| *l == r.lead) {
                Some(i) => groups[i].push((r, finder)),
                None => {
                    leads.push(r.lead);
                    groups.push(vec![(r, finder)]);
                }
            }
            if !ids.contains(&r.id) {
                ids.push(r.id);
            }
        }
        let leads = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(StartKind::Anchored)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&leads)
            .expect("built-in leads are short literals; the automaton always builds");
        Ok(Matcher {
            leads,
            groups,
            ids,
            programs,
        })
    }

    /// Match a record body: a syslog line, or a journal entry's fields. `now` is used only to
    /// infer the year of RFC 3164 stamps.
    pub fn match_body<'a>(&self, body: &'a RecordBody, now: SystemTime) -> Outcome<'a> {
        match body {
            RecordBody::Line(line) => self.match_line(line, now),
            RecordBody::Journal {
                message,
                identifier,
                unit,
                realtime_us,
            } => {
                let relevant = match identifier {
                    Some(id) => self.covers(id),
                    None => unit.as_deref().is_some_and(|u| self.covers_unit(u)),
                };
                if !relevant {
                    return Outcome::Unmatched { relevant: false };
                }
                let time = realtime_us.map(|us| UNIX_EPOCH + Duration::from_micros(us));
                self.match_message(message, time)
            }
        }
    }

    /// Match one syslog line (RFC 3164, ISO 8601 or RFC 5424 header).
    pub fn match_line<'a>(&self, line: &'a str, now: SystemTime) -> Outcome<'a> {
        let Some(h) = header::parse(line, now) else {
            return Outcome::Unmatched { relevant: false };
        };
        if !self.covers(h.program) {
            return Outcome::Unmatched { relevant: false };
        }
        self.match_message(h.message, h.time)
    }

    /// The ids of the rules in this matcher, each once.
    pub fn rule_ids(&self) -> impl Iterator<Item = &'static str> {
        self.ids.iter().copied()
    }

    fn covers(&self, program: &str) -> bool {
        self.programs.contains(&program)
    }

    /// `sshd.service`, `ssh.service`, `sshd@...` / `ssh@...` (socket-activated) units.
    fn covers_unit(&self, unit: &str) -> bool {
        if !self.covers("sshd") {
            return false;
        }
        let name = unit.strip_suffix(".service").unwrap_or(unit);
        let name = name.split('@').next().unwrap_or(name);
        matches!(name, "ssh" | "sshd" | "sshd-session" | "sshd-auth")
    }

    /// Match a message body (after the header), from a covered program.
    fn match_message<'a>(&self, msg: &'a str, time: Option<SystemTime>) -> Outcome<'a> {
        // Trailing whitespace is never significant; trimming it once here keeps every rule's
        // end checks O(1) per candidate address (found by reading the fuzz targets: a PAM line
        // with hundreds of ` rhost=` and thousands of trailing spaces was quadratic).
        let msg = strip_level(msg).trim_end();
        let input = Input::new(msg).anchored(Anchored::Yes);
        let Some(hit) = self.leads.find(input) else {
            return Outcome::Unmatched { relevant: true };
        };
        for (rule, finder) in &self.groups[hit.pattern().as_usize()] {
            if let Some(ex) = rule.apply_with(msg, hit.end(), finder.as_ref()) {
                return Outcome::Matched(Match {
                    rule: rule.id,
                    addr: ex.addr,
                    user: ex.user,
                    time,
                });
            }
        }
        Outcome::Unmatched { relevant: true }
    }
}

/// Drop the server-written prefixes OpenSSH and some platforms put before the message:
/// Solaris' `[ID 800047 auth.info] `, and `error: `, `error: PAM: `, `fatal: `.
fn strip_level(mut msg: &str) -> &str {
    if let Some(rest) = msg.strip_prefix("[ID ") {
        if let Some(i) = rest.get(..64.min(rest.len())).and_then(|s| s.find("] ")) {
            msg = &rest[i + 2..];
        }
    }
    if let Some(rest) = msg.strip_prefix("error: ") {
        msg = rest.strip_prefix("PAM: ").unwrap_or(rest);
    } else if let Some(rest) = msg.strip_prefix("fatal: ") {
        msg = rest;
    }
    msg
}
