//! ravelin watching itself, for the operations channel: a source that went silent while it
//! usually logs, a jail whose sources produce lines while its rules match none for a day
//! ("installed is not effective"), and bans spiking well above their learned baseline. Pure:
//! the worker feeds it counters and the time once a minute and sends what it returns.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// A source is "usually logging" above this many lines per hour (smoothed).
const USUAL_LINES_PER_HOUR: f64 = 6.0;
/// Silence that is worth saying.
const SILENT_FOR: Duration = Duration::from_secs(3600);
/// A jail that matched nothing for this long while its sources read lines is blind.
const BLIND_FOR: Duration = Duration::from_secs(86_400);
/// Bans are counted in buckets of this length for the spike baseline.
const BUCKET: Duration = Duration::from_secs(600);
/// A bucket is a spike above `max(SPIKE_MIN, SPIKE_FACTOR x baseline)`.
const SPIKE_FACTOR: f64 = 5.0;
const SPIKE_MIN: f64 = 20.0;
/// Time constant of a source's usual rate.
const RATE_HORIZON: Duration = Duration::from_secs(6 * 3600);
/// Smoothing of the ban baseline (weight of the newest bucket).
const ALPHA: f64 = 0.1;

/// One thing worth telling.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// A source stopped producing lines.
    Silent {
        /// Source name.
        source: String,
        /// Its smoothed usual rate.
        per_hour: f64,
    },
    /// A jail's rules match nothing while its sources read lines.
    Blind {
        /// Jail name.
        jail: String,
        /// Lines its sources read meanwhile.
        lines: u64,
    },
    /// Bans (or attempts) in the last bucket far above the baseline.
    Spike {
        /// `bans` or `attempts`.
        what: &'static str,
        /// Count in the bucket.
        count: u64,
        /// The baseline per bucket.
        baseline: f64,
    },
}

/// Counts per ten-minute bucket against a smoothed baseline.
#[derive(Debug, Default)]
struct Spiker {
    bucket_start: Option<SystemTime>,
    count: u64,
    seen: u64,
    baseline: Option<f64>,
}

impl Spiker {
    /// Feed the running total; at the end of a bucket, return (count, baseline) if it spiked.
    fn feed(&mut self, total: u64, now: SystemTime, min: f64) -> Option<(u64, f64)> {
        let start = *self.bucket_start.get_or_insert(now);
        self.count += total.saturating_sub(self.seen);
        self.seen = total;
        if now.duration_since(start).unwrap_or_default() < BUCKET {
            return None;
        }
        let n = self.count as f64;
        let spike = self
            .baseline
            .filter(|b| n > min.max(SPIKE_FACTOR * b))
            .map(|b| (self.count, b));
        // The spike itself moves the baseline only a little.
        self.baseline = Some(self.baseline.map_or(n, |b| b * (1.0 - ALPHA) + n * ALPHA));
        self.bucket_start = Some(now);
        self.count = 0;
        spike
    }
}

#[derive(Debug, Clone)]
struct SourceState {
    lines: u64,
    last_line: SystemTime,
    last_sample: SystemTime,
    per_hour: f64,
    /// The smoothed rate when the last line came (silence must not erase what was usual).
    usual: f64,
    warned: bool,
}

#[derive(Debug, Clone)]
struct JailState {
    matched: u64,
    last_match: SystemTime,
    /// Lines its sources had read when it last matched (so "lines since" is a difference,
    /// not the total since start).
    read_at_match: u64,
    warned: bool,
}

/// The learned state.
#[derive(Debug, Default)]
pub struct Watch {
    sources: HashMap<String, SourceState>,
    jails: HashMap<String, JailState>,
    bans: Spiker,
    attempts: Spiker,
}

impl Watch {
    /// Feed current totals. `sources`: (name, lines read so far). `jails`: (name, lines matched
    /// so far, lines read so far by its sources). `bans`: bans issued so far.
    pub fn tick(
        &mut self,
        now: SystemTime,
        sources: &[(String, u64)],
        jails: &[(String, u64, u64)],
        bans: u64,
        attempts: u64,
    ) -> Vec<Health> {
        let mut out = Vec::new();
        for (name, lines) in sources {
            let st = self.sources.entry(name.clone()).or_insert(SourceState {
                lines: *lines,
                last_line: now,
                last_sample: now,
                per_hour: 0.0,
                usual: 0.0,
                warned: false,
            });
            let dt = now
                .duration_since(st.last_sample)
                .unwrap_or_default()
                .as_secs_f64();
            if dt >= 60.0 {
                let new = lines.saturating_sub(st.lines);
                let rate = new as f64 * 3600.0 / dt;
                // A six-hour time constant: one stray line does not make a quiet source "busy".
                let a = (dt / RATE_HORIZON.as_secs_f64()).min(1.0);
                st.per_hour = st.per_hour * (1.0 - a) + rate * a;
                if new > 0 {
                    st.last_line = now;
                    st.usual = st.per_hour;
                    st.warned = false;
                } else if !st.warned
                    && st.usual >= USUAL_LINES_PER_HOUR
                    && now.duration_since(st.last_line).unwrap_or_default() >= SILENT_FOR
                {
                    st.warned = true;
                    out.push(Health::Silent {
                        source: name.clone(),
                        per_hour: st.usual,
                    });
                }
                st.lines = *lines;
                st.last_sample = now;
            }
        }
        for (name, matched, read) in jails {
            let st = self.jails.entry(name.clone()).or_insert(JailState {
                matched: *matched,
                last_match: now,
                read_at_match: *read,
                warned: false,
            });
            if *matched > st.matched {
                st.matched = *matched;
                st.last_match = now;
                st.read_at_match = *read;
                st.warned = false;
            }
            let since = read.saturating_sub(st.read_at_match);
            if !st.warned
                && since > 0
                && now.duration_since(st.last_match).unwrap_or_default() >= BLIND_FOR
            {
                st.warned = true;
                out.push(Health::Blind {
                    jail: name.clone(),
                    lines: since,
                });
            }
        }
        if let Some((count, baseline)) = self.bans.feed(bans, now, SPIKE_MIN) {
            out.push(Health::Spike {
                what: "bans",
                count,
                baseline,
            });
        }
        if let Some((count, baseline)) = self.attempts.feed(attempts, now, SPIKE_MIN * 10.0) {
            out.push(Health::Spike {
                what: "attempts",
                count,
                baseline,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_unix_secs;

    #[test]
    fn a_usually_busy_source_that_goes_quiet_is_reported_once() {
        let mut w = Watch::default();
        let mut lines = 0;
        let mut t = 1_000_000;
        // Six hours at ~60 lines an hour.
        for _ in 0..360 {
            lines += 1;
            assert!(
                w.tick(from_unix_secs(t), &[("auth".into(), lines)], &[], 0, 0)
                    .is_empty()
            );
            t += 60;
        }
        // Then silence: nothing before an hour, one report after, not repeated.
        let mut reports = Vec::new();
        for _ in 0..120 {
            reports.extend(w.tick(from_unix_secs(t), &[("auth".into(), lines)], &[], 0, 0));
            t += 60;
        }
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(matches!(&reports[0], Health::Silent { source, .. } if source == "auth"));
        // A source that never logs much is never "silent".
        let mut q = Watch::default();
        let mut r = Vec::new();
        for i in 0..600u64 {
            r.extend(q.tick(
                from_unix_secs(t + i * 60),
                &[("rare".into(), i / 200)],
                &[],
                0,
                0,
            ));
        }
        assert!(r.is_empty(), "{r:?}");
    }

    #[test]
    fn a_jail_that_matches_nothing_for_a_day_while_reading_is_blind() {
        let mut w = Watch::default();
        let mut out = Vec::new();
        for h in 0..30u64 {
            out.extend(w.tick(
                from_unix_secs(h * 3600),
                &[],
                &[("sshd".into(), 0, h * 100)],
                0,
                0,
            ));
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(matches!(&out[0], Health::Blind { jail, .. } if jail == "sshd"));
        // A jail that matches is fine.
        let mut ok = Watch::default();
        let mut out = Vec::new();
        for h in 0..30u64 {
            out.extend(ok.tick(
                from_unix_secs(h * 3600),
                &[],
                &[("sshd".into(), h, h * 100)],
                0,
                0,
            ));
        }
        assert!(out.is_empty(), "{out:?}");
        // A jail that matched, after which its source fell silent, is not blind: no line
        // went unmatched.
        let mut quiet = Watch::default();
        let mut out = Vec::new();
        for h in 0..30u64 {
            let (matched, read) = if h < 2 { (h, h * 10) } else { (1, 10) };
            out.extend(quiet.tick(
                from_unix_secs(h * 3600),
                &[],
                &[("sshd".into(), matched, read)],
                0,
                0,
            ));
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn bans_far_above_the_baseline_are_a_spike() {
        let mut w = Watch::default();
        let mut bans = 0;
        let mut out = Vec::new();
        // Two bans every ten minutes for a day: the baseline.
        for i in 0..144u64 {
            bans += 2;
            out.extend(w.tick(from_unix_secs(i * 600), &[], &[], bans, 0));
        }
        assert!(out.is_empty(), "{out:?}");
        // Then 60 in ten minutes.
        bans += 60;
        out.extend(w.tick(from_unix_secs(144 * 600), &[], &[], bans, 0));
        out.extend(w.tick(from_unix_secs(145 * 600), &[], &[], bans, 0));
        assert!(
            out.iter().any(|h| matches!(
                h,
                Health::Spike {
                    what: "bans",
                    count: 60,
                    ..
                }
            )),
            "{out:?}"
        );
    }
}

#[cfg(test)]
mod attempt_tests {
    use super::*;
    use crate::clock::from_unix_secs;

    #[test]
    fn attempts_far_above_their_baseline_are_a_spike_too() {
        let mut w = Watch::default();
        let mut attempts = 0;
        let mut out = Vec::new();
        for i in 0..144u64 {
            attempts += 30;
            out.extend(w.tick(from_unix_secs(i * 600), &[], &[], 0, attempts));
        }
        assert!(out.is_empty(), "{out:?}");
        attempts += 1000;
        out.extend(w.tick(from_unix_secs(144 * 600), &[], &[], 0, attempts));
        out.extend(w.tick(from_unix_secs(145 * 600), &[], &[], 0, attempts));
        assert!(
            out.iter().any(|h| matches!(
                h,
                Health::Spike {
                    what: "attempts",
                    count: 1000,
                    ..
                }
            )),
            "{out:?}"
        );
    }
}
