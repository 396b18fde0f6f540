//! Kernel scanner sets -> observations of kind `scan` (pure: listing and clock passed in).
//!
//! The daemon polls [`super::read_scanners`] (a few ms per call; every 2 s is plenty, the
//! elements last `remember`) and hands each listing to [`ScanWatch::observe`], which returns
//! an [`Observation`] for every source that is new in the sets since the previous listing.
//! A source that stays in the set is reported once; one that expired and was added again
//! is reported again. Memory is bounded by the sets' own `size`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::event::Observation;
use crate::firewall::policy::canonical;

/// The rule name of the observations (kind `scan`: a jail with `kinds = ["scan"]` takes it).
pub const RULE: &str = "scan.portscan";
/// The source name of the observations.
pub const SOURCE: &str = "firewall";

/// Remembers which scanners were already reported.
#[derive(Debug, Default)]
pub struct ScanWatch {
    seen: HashSet<IpAddr>,
}

impl ScanWatch {
    /// A watch that has reported nothing (the first listing reports every element; after a
    /// restart, replays are harmless: a ban is refreshed, not doubled).
    pub fn new() -> Self {
        Self::default()
    }

    /// New scanners in `listed` (from [`super::read_scanners`]) as observations at `now`.
    pub fn observe(
        &mut self,
        listed: &[(IpAddr, Option<Duration>)],
        now: SystemTime,
    ) -> Vec<Observation> {
        let current: HashSet<IpAddr> = listed.iter().map(|(ip, _)| canonical(*ip)).collect();
        let rule: Arc<str> = Arc::from(RULE);
        let source: Arc<str> = Arc::from(SOURCE);
        let mut fresh: Vec<IpAddr> = current.difference(&self.seen).copied().collect();
        fresh.sort();
        self.seen = current;
        fresh
            .into_iter()
            .map(|addr| Observation {
                time: now,
                addr,
                user: None,
                rule: rule.clone(),
                source: source.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_scanner_once_while_it_stays_and_again_after_it_returns() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let b: IpAddr = "2001:db8::7".parse().unwrap();
        let mut w = ScanWatch::new();
        let first = w.observe(&[(a, Some(Duration::from_secs(3600)))], t);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].addr, &*first[0].rule, &*first[0].source),
            (a, RULE, SOURCE)
        );
        assert!(
            w.observe(&[(a, None), (b, None)], t)
                .iter()
                .map(|o| o.addr)
                .eq([b])
        );
        assert!(w.observe(&[(a, None), (b, None)], t).is_empty());
        assert!(w.observe(&[(b, None)], t).is_empty(), "a expired");
        assert!(
            w.observe(&[(a, None), (b, None)], t)
                .iter()
                .map(|o| o.addr)
                .eq([a]),
            "a is back"
        );
    }
}
