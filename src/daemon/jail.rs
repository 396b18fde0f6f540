//! One jail's detectors, built from its config: the threshold detector (fail2ban's rule) plus
//! the detectors thresholds miss (long windows on score, prefix aggregation, user-name
//! enumeration). The worker feeds every observation of the jail through all of them; each is
//! pure and bounded, this only fans out and explains.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::config::{JailConfig, format_duration};
use crate::decide::Escalation;
use crate::detect::{
    EnumerationDetector, EnumerationParams, PrefixDetector, PrefixParams, ThresholdDetector,
    ThresholdParams, WindowDetector, WindowParams,
};
use crate::event::{Finding, Observation};
use crate::matcher::Matcher;

/// A jail's runtime state.
pub struct Jail {
    /// Its config.
    pub cfg: JailConfig,
    /// Its name, shared with findings.
    pub name: Arc<str>,
    /// Text rules (`None` for a jail that only takes structured kinds).
    pub matcher: Option<Matcher>,
    /// Escalation for its bans.
    pub esc: Escalation,
    threshold: ThresholdDetector,
    windows: Vec<WindowDetector>,
    prefix: Option<PrefixDetector>,
    enumeration: Option<EnumerationDetector>,
    /// Lines matched by its rules.
    pub matched: u64,
    /// Bans it issued.
    pub bans: u64,
}

fn threshold_params(j: &JailConfig) -> ThresholdParams {
    ThresholdParams {
        max_retry: j.max_retry,
        find_time: j.find_time,
        max_tracked: j.max_tracked,
    }
}

fn window_params(j: &JailConfig, i: usize) -> WindowParams {
    let w = &j.windows[i];
    WindowParams {
        threshold: w.threshold,
        window: w.window,
        max_tracked: j.max_tracked,
    }
}

fn prefix_params(j: &JailConfig) -> Option<PrefixParams> {
    j.prefix.as_ref().map(|p| PrefixParams {
        min_addresses: p.min_addresses,
        window: p.window,
        v4_len: p.v4_len,
        v6_len: p.v6_len,
        max_tracked: j.max_tracked,
    })
}

fn enumeration_params(j: &JailConfig) -> Option<EnumerationParams> {
    j.enumeration.as_ref().map(|e| EnumerationParams {
        min_users: e.min_users,
        window: e.window,
        max_tracked: j.max_tracked,
        by_prefix: e
            .per_prefix
            .then(|| j.prefix.as_ref().map_or((24, 64), |p| (p.v4_len, p.v6_len))),
    })
}

impl Jail {
    /// Build a jail, taking over the detector state of `old` (same name, on reload) where the
    /// detector still exists.
    pub fn build(jc: &JailConfig, old: Option<Jail>) -> anyhow::Result<Jail> {
        let name: Arc<str> = Arc::from(jc.name.as_str());
        let matcher = if jc.rules.is_empty() {
            None
        } else {
            Some(Matcher::new(&jc.rules).map_err(|e| anyhow::anyhow!("jail {}: {e}", jc.name))?)
        };
        let (mut threshold, mut old_windows, mut old_prefix, mut old_enum) = match old {
            Some(o) => (Some(o.threshold), o.windows, o.prefix, o.enumeration),
            None => (None, Vec::new(), None, None),
        };
        let threshold = match threshold.take() {
            Some(mut t) => {
                t.set_params(threshold_params(jc));
                t
            }
            None => ThresholdDetector::new(name.clone(), threshold_params(jc)),
        };
        let mut windows = Vec::new();
        for i in 0..jc.windows.len() {
            // Windows are matched by position; a reload that reorders them keeps the state of
            // whichever detector sits at that position, which only shifts scores, never loses
            // a ban.
            let d = if i < old_windows.len() {
                let mut d = old_windows.remove(0);
                d.set_params(window_params(jc, i));
                d
            } else {
                WindowDetector::new(name.clone(), window_params(jc, i))
            };
            windows.push(d);
        }
        let prefix = prefix_params(jc).map(|p| match old_prefix.take() {
            Some(mut d) => {
                d.set_params(p);
                d
            }
            None => PrefixDetector::new(name.clone(), p),
        });
        let enumeration = enumeration_params(jc).map(|p| match old_enum.take() {
            Some(mut d) => {
                d.set_params(p);
                d
            }
            None => EnumerationDetector::new(name.clone(), p),
        });
        Ok(Jail {
            esc: Escalation {
                ban_time: jc.ban_time,
                factor: jc.ban_time_factor,
                max: jc.ban_time_max,
            },
            cfg: jc.clone(),
            name,
            matcher,
            threshold,
            windows,
            prefix,
            enumeration,
            matched: 0,
            bans: 0,
        })
    }

    /// Does this jail take structured observations of this rule id?
    pub fn takes_kind(&self, rule: &str) -> bool {
        self.cfg.kinds.iter().any(|k| {
            rule == k
                || (rule.starts_with(k.as_str()) && rule.as_bytes().get(k.len()) == Some(&b'.'))
        })
    }

    /// The weight of one match of `rule` in this jail (overrides, then the built-in table;
    /// structured kinds weigh 1 unless overridden).
    pub fn weight(&self, rule: &str, user: Option<&str>) -> f32 {
        if let Some((_, w)) = self.cfg.weights.iter().find(|(r, _)| r == rule) {
            return *w;
        }
        if self.matcher.is_some() && rule.starts_with("sshd.") {
            crate::matcher::default_weight(rule, user)
        } else {
            1.0
        }
    }

    /// Feed one counted observation (weight > 0) to every detector; returns what fired.
    pub fn observe(&mut self, obs: &Observation, weight: f32, now: SystemTime) -> Vec<Finding> {
        let mut out = Vec::new();
        out.extend(self.threshold.observe(obs, now));
        for w in &mut self.windows {
            out.extend(w.observe(obs, weight, now));
        }
        if let Some(p) = &mut self.prefix {
            out.extend(p.observe(obs, weight, now));
        }
        if let Some(e) = &mut self.enumeration {
            out.extend(e.observe(obs, weight, now));
        }
        out
    }

    /// A successful login (or an unban): clear the address everywhere.
    pub fn forget(&mut self, addr: IpAddr) {
        self.threshold.forget(addr);
        for w in &mut self.windows {
            w.forget(addr);
        }
        if let Some(p) = &mut self.prefix {
            p.forget(addr);
        }
        if let Some(e) = &mut self.enumeration {
            e.forget(addr);
        }
    }

    /// Drop state that can no longer fire.
    pub fn sweep(&mut self, now: SystemTime) {
        self.threshold.sweep(now);
        for w in &mut self.windows {
            w.sweep(now);
        }
        if let Some(p) = &mut self.prefix {
            p.sweep(now);
        }
        if let Some(e) = &mut self.enumeration {
            e.sweep(now);
        }
    }

    /// Addresses (and prefixes) tracked across detectors, and how many were evicted by caps.
    pub fn tracked(&self) -> (usize, u64) {
        let mut t = self.threshold.tracked();
        let mut e = self.threshold.evicted();
        for w in &self.windows {
            t += w.tracked();
            e += w.evicted();
        }
        if let Some(p) = &self.prefix {
            t += p.tracked();
            e += p.evicted();
        }
        if let Some(d) = &self.enumeration {
            t += d.tracked();
            e += d.evicted();
        }
        (t, e)
    }

    /// Where `addr` stands against every detector of this jail.
    pub fn explain(&self, addr: IpAddr, now: SystemTime) -> Value {
        let mut dets = vec![json!({
            "detector": "threshold",
            "value": self.threshold.count(addr, now),
            "threshold": self.cfg.max_retry.get(),
            "window": format_duration(self.cfg.find_time),
            "unit": "failures",
        })];
        for w in &self.windows {
            let p = w.params();
            dets.push(json!({
                "detector": "window",
                "value": (w.score(addr, now) * 100.0).round() / 100.0,
                "threshold": p.threshold,
                "window": format_duration(p.window),
                "unit": "score",
            }));
        }
        if let Some(p) = &self.prefix {
            let net = p.prefix_of(addr);
            dets.push(json!({
                "detector": "prefix",
                "prefix": net.to_string(),
                "value": p.distinct(net, now),
                "threshold": p.params().min_addresses,
                "window": format_duration(p.params().window),
                "unit": "distinct addresses",
            }));
        }
        if let Some(e) = &self.enumeration {
            dets.push(json!({
                "detector": "enumeration",
                "value": e.distinct_users(addr, now),
                "threshold": e.params().min_users,
                "window": format_duration(e.params().window),
                "unit": "distinct user names",
            }));
        }
        json!({ "jail": &*self.name, "detectors": dets })
    }
}
