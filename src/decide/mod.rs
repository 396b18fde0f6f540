//! Policy: turn a [`Finding`] into a [`Decision`](crate::event::Decision). Pure: no I/O, time passed in.
//!
//! Two things happen here and nowhere else: the allowlist check, which is the only way to
//! mint the [`Permit`](allowlist::Permit) that enforcement demands, and escalation, which
//! turns the number of earlier bans (read from the store by the caller) into a ban length.

pub mod allowlist;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::event::{BanLength, BanOrder, Finding};
use allowlist::{Allowlist, Refusal};

/// How ban lengths grow for repeat offenders: `ban_time * factor^prior`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Escalation {
    /// First ban length.
    pub ban_time: BanLength,
    /// Multiplier per earlier ban (1 = no escalation).
    pub factor: f64,
    /// Cap.
    pub max: Duration,
}

impl Escalation {
    /// The length of a ban for a target that was banned `prior` times before.
    pub fn length(&self, prior: u32) -> BanLength {
        match self.ban_time {
            BanLength::Permanent => BanLength::Permanent,
            BanLength::For(base) => {
                let secs = base.as_secs_f64() * self.factor.powi(prior.min(1_000) as i32);
                let capped = if secs.is_finite() {
                    secs.min(self.max.as_secs_f64())
                } else {
                    self.max.as_secs_f64()
                };
                BanLength::For(
                    Duration::from_secs(capped.max(1.0).round() as u64).max(base.min(self.max)),
                )
            }
        }
    }
}

/// Decide on a finding: allowlist check, then escalation. `prior` is how many times the
/// target was banned within the store's retention window.
pub fn decide(
    finding: &Finding,
    allow: &Allowlist,
    esc: &Escalation,
    prior: u32,
    permanent_after: Option<u32>,
    now: SystemTime,
) -> Result<BanOrder, Refusal> {
    let permit = allow.permit(finding.target)?;
    // Recidive: one record per target across all jails (the store's ban history); past the
    // configured count the ban no longer expires.
    let length = if permanent_after.is_some_and(|n| prior >= n) {
        BanLength::Permanent
    } else {
        esc.length(prior)
    };
    Ok(BanOrder {
        permit,
        length,
        start: now,
        jail: finding.jail.clone(),
        reason: reason(finding, prior),
        level: prior,
        detector: finding.detector,
    })
}

fn reason(f: &Finding, prior: u32) -> String {
    let what = match f.detector {
        "prefix" => format!("{} distinct failing addresses in {}", f.count, f.target),
        "enumeration" => format!("{} distinct user names tried", f.count),
        "window" => format!("failure score {} in a long window (low-and-slow)", f.count),
        _ => format!(
            "{} {}",
            f.count,
            if f.count == 1 { "failure" } else { "failures" }
        ),
    };
    let repeat = if prior > 0 {
        format!("; repeat offender, {prior} earlier ban(s)")
    } else {
        String::new()
    };
    format!(
        "{what} in jail {} (detector {}){repeat}",
        f.jail, f.detector
    )
}

/// A ban asked for by the operator (`ravelin ban`). Still has to pass the allowlist.
pub fn manual(
    target: ipnet::IpNet,
    length: BanLength,
    reason: &str,
    allow: &Allowlist,
    now: SystemTime,
) -> Result<BanOrder, Refusal> {
    Ok(BanOrder {
        permit: allow.permit(target)?,
        length,
        start: now,
        jail: Arc::from("manual"),
        reason: if reason.is_empty() {
            "manual ban".into()
        } else {
            reason.to_string()
        },
        level: 0,
        detector: "manual",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_unix_secs;

    fn esc(base: u64, factor: f64, max: u64) -> Escalation {
        Escalation {
            ban_time: BanLength::For(Duration::from_secs(base)),
            factor,
            max: Duration::from_secs(max),
        }
    }

    #[test]
    fn ban_length_escalates_and_caps() {
        let e = esc(600, 2.0, 30 * 86_400);
        let table = [
            (0, 600),
            (1, 1200),
            (2, 2400),
            (3, 4800),
            (12, 2_457_600),
            (13, 2_592_000),
            (500, 2_592_000),
            (u32::MAX, 2_592_000),
        ];
        for (prior, secs) in table {
            assert_eq!(
                e.length(prior),
                BanLength::For(Duration::from_secs(secs)),
                "prior {prior}"
            );
        }
        assert_eq!(
            esc(600, 1.0, 600).length(9),
            BanLength::For(Duration::from_secs(600))
        );
        let perm = Escalation {
            ban_time: BanLength::Permanent,
            ..e
        };
        assert_eq!(perm.length(0), BanLength::Permanent);
    }

    #[test]
    fn decide_needs_the_allowlist_and_records_the_level() {
        let allow = Allowlist::new(&["192.0.2.0/24".parse().unwrap()], &[]);
        let f = |t: &str| Finding {
            target: t.parse().unwrap(),
            jail: Arc::from("sshd"),
            detector: "threshold",
            count: 5,
            time: from_unix_secs(5),
        };
        let now = from_unix_secs(100);
        let o = decide(
            &f("203.0.113.9/32"),
            &allow,
            &esc(600, 2.0, 86_400),
            2,
            None,
            now,
        )
        .unwrap();
        assert_eq!(o.target().to_string(), "203.0.113.9/32");
        assert_eq!(o.length, BanLength::For(Duration::from_secs(2400)));
        assert_eq!(o.level, 2);
        assert_eq!(o.expires(), Some(from_unix_secs(2500)));
        assert!(o.reason.contains("5 failures in jail sshd"), "{}", o.reason);
        // Past permanent_after, the ban never expires.
        let p = decide(
            &f("203.0.113.9/32"),
            &allow,
            &esc(600, 2.0, 86_400),
            3,
            Some(3),
            now,
        )
        .unwrap();
        assert_eq!(p.length, BanLength::Permanent);
        assert!(
            p.reason.contains("repeat offender, 3 earlier"),
            "{}",
            p.reason
        );
        assert!(
            decide(
                &f("192.0.2.7/32"),
                &allow,
                &esc(600, 2.0, 86_400),
                0,
                None,
                now
            )
            .is_err()
        );
        assert!(
            manual(
                "127.0.0.1/32".parse().unwrap(),
                BanLength::Permanent,
                "",
                &allow,
                now
            )
            .is_err()
        );
    }
}

#[cfg(test)]
mod overflow_tests {
    use super::*;
    use crate::clock::from_unix_secs;

    /// Found by reading the fuzz targets: `start + u64::MAX s` panicked in `expires()`.
    #[test]
    fn a_ban_length_past_the_clock_is_treated_as_never_ending() {
        let allow = Allowlist::new(&[], &[]);
        let o = manual(
            "203.0.113.1/32".parse().unwrap(),
            BanLength::For(Duration::from_secs(u64::MAX)),
            "",
            &allow,
            from_unix_secs(1),
        )
        .unwrap();
        assert_eq!(o.expires(), None);
    }
}
