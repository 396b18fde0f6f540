//! The pipeline worker: one thread that owns every piece of mutable pipeline state (matchers,
//! detectors, the allowlist, the store, the enforcer) and runs
//! matcher -> detect -> decide -> store -> enforce for each batch of records.
//!
//! Why one thread: the middle stages are cheap and pure, so the cost that matters is the
//! enforcement transaction and the store commit. Draining whatever is queued, then committing
//! once and applying one nftables transaction, gives natural batching under load and
//! immediate action when idle (a lone failure line is in the kernel set within milliseconds),
//! with no timers and no locks. The thread runs a current-thread tokio runtime so it can wait
//! on its channels, and may block (SQLite, `nft`) without stalling the main runtime.
//!
//! The same worker runs `ravelin simulate`: a fake clock set from the log's own timestamps,
//! an in-memory store, the `log` enforcer, and a sink that collects every decision.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::control::{Envelope, Reply, Request};
use super::jail::Jail;
use crate::clock::{Clock, rfc3339};
use crate::config::{Config, format_duration};
use crate::decide::allowlist::{Allowlist, normalize_net};
use crate::decide::{self};
use crate::enforce::{Change, Enforcer};
use crate::event::{BanLength, BanOrder, Finding, Observation, host_net};
use crate::matcher::Outcome;
use crate::source::{SourceEvent, SourceStats};
use crate::store::{BanRow, Store};

/// Most records handled before a flush, so a flood still commits regularly.
const MAX_BATCH: usize = 8192;
/// Default length of `ravelin ban` without `--for`.
const DEFAULT_MANUAL: Duration = Duration::from_secs(3600);
/// Observations kept in the store (newest first) and replayed on start.
const MAX_STORED_OBSERVATIONS: usize = 2_000_000;
/// The longest ban with an end (longer ones must say `permanent`).
pub const MAX_BAN: Duration = Duration::from_secs(100 * 365 * 86_400);
/// Observations kept for `ravelin top`.
const RECENT: usize = 50;
/// Trusted addresses remembered at once (oldest dropped first).
const MAX_TRUSTED: usize = 10_000;

/// Messages from the main runtime besides control requests.
pub enum Command {
    /// Apply a new, already validated config. Host addresses are re-read by the caller.
    Reload(Box<Config>, Vec<IpAddr>, oneshot::Sender<Vec<String>>),
    /// Read a checkpoint (for a source started on reload).
    Checkpoint(String, oneshot::Sender<Option<String>>),
}

/// Source statistics shared with the main runtime, for `status`.
pub type SourceRegistry = Arc<Mutex<Vec<(String, String, Arc<SourceStats>)>>>;

/// Counters of the whole pipeline (exposed by `status`; metrics later).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counters {
    /// Records received from sources.
    pub records: u64,
    /// Records a rule matched (plus structured observations taken by a jail).
    pub matched: u64,
    /// Lines from a covered program (sshd) that no rule matched.
    pub unmatched_relevant: u64,
    /// Successful logins seen (they clear an address's failures).
    pub accepted: u64,
    /// Observations skipped because the address is trusted (recent key login).
    pub trusted: u64,
    /// Detector findings.
    pub findings: u64,
    /// Bans issued.
    pub bans: u64,
    /// Findings on targets already banned.
    pub already_banned: u64,
    /// Findings refused by the allowlist.
    pub allowlisted: u64,
    /// Bans lifted (unban, expiry).
    pub unbans: u64,
    /// Failed enforcement transactions.
    pub enforce_errors: u64,
    /// Failed store operations.
    pub store_errors: u64,
    /// Kernel elements re-added by reconciliation.
    pub reconciled_missing: u64,
    /// Kernel elements not known to the store.
    pub reconciled_unknown: u64,
}

#[derive(Debug, Clone)]
struct Active {
    jail: String,
    detector: String,
    reason: String,
    level: u32,
    start: SystemTime,
    expires: Option<SystemTime>,
}

/// One decision, as `ravelin simulate --json` prints it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DecisionRecord {
    /// When (log time in a simulation).
    pub time: String,
    /// `ban` or `unban`.
    pub action: &'static str,
    /// Address or CIDR.
    pub target: String,
    /// Ban length in seconds (`null` for permanent bans and unbans).
    pub duration_s: Option<u64>,
    /// Jail.
    pub jail: String,
    /// Detector.
    pub detector: String,
}

/// Everything the worker owns.
pub struct Worker {
    cfg: Config,
    clock: Arc<dyn Clock>,
    store: Box<dyn Store>,
    enforcer: Box<dyn Enforcer>,
    allow: Allowlist,
    jails: Vec<Jail>,
    /// Jail indices per source name; shared slices so routing a record allocates nothing.
    by_source: HashMap<String, Arc<[usize]>>,
    active: HashMap<IpNet, Active>,
    /// Active prefix bans, so addresses inside one are not banned again one by one.
    active_prefixes: Vec<IpNet>,
    schedule: BinaryHeap<Reverse<(SystemTime, IpNet)>>,
    trusted: HashMap<IpAddr, SystemTime>,
    orders: Vec<BanOrder>,
    removes: Vec<IpNet>,
    checkpoints: HashMap<String, String>,
    observations: Vec<Observation>,
    counters: Counters,
    sources: SourceRegistry,
    started: SystemTime,
    kernel_elements: Option<usize>,
    needs_reconcile: bool,
    replaying: bool,
    /// Collects decisions (simulate); `None` in the daemon.
    pub decisions: Option<Vec<DecisionRecord>>,
    /// Persist observations (off in `simulate`, which only needs the decisions).
    pub keep_observations: bool,
    /// Matches per (jail, rule id): both from closed sets, so bounded.
    matches: BTreeMap<(Arc<str>, Arc<str>), u64>,
    /// Findings and bans per (jail, detector).
    decided: BTreeMap<(Arc<str>, &'static str), (u64, u64)>,
    /// Seconds per enforcement transaction.
    enforce_latency: crate::metrics::Histogram,
    /// The operations channel (`None`: no dispatcher, e.g. in `simulate`).
    pub alerts: Option<crate::alert::AlertHandle>,
    /// The decoy supervisor's counters, when the decoy runs.
    pub decoy: Option<Arc<super::decoy::DecoyStats>>,
    /// Silent sources, blind jails, ban spikes.
    health: super::health::Watch,
    /// The newest observations, for `ravelin top` (bounded).
    recent: std::collections::VecDeque<Observation>,
}

impl Worker {
    /// Build the worker: jails, active bans from the store, and detector state rebuilt by
    /// replaying the stored observations of the longest window.
    pub fn new(
        cfg: Config,
        host_addrs: &[IpAddr],
        clock: Arc<dyn Clock>,
        store: Box<dyn Store>,
        enforcer: Box<dyn Enforcer>,
        sources: SourceRegistry,
    ) -> anyhow::Result<Self> {
        let now = clock.now();
        let mut w = Self {
            allow: Allowlist::new(&cfg.allow, host_addrs),
            cfg,
            clock,
            store,
            enforcer,
            jails: Vec::new(),
            by_source: HashMap::new(),
            active: HashMap::new(),
            active_prefixes: Vec::new(),
            schedule: BinaryHeap::new(),
            trusted: HashMap::new(),
            orders: Vec::new(),
            removes: Vec::new(),
            checkpoints: HashMap::new(),
            observations: Vec::new(),
            counters: Counters::default(),
            sources,
            started: now,
            kernel_elements: None,
            needs_reconcile: true,
            replaying: false,
            decisions: None,
            keep_observations: true,
            matches: BTreeMap::new(),
            decided: BTreeMap::new(),
            enforce_latency: crate::metrics::Histogram::default(),
            alerts: None,
            decoy: None,
            health: super::health::Watch::default(),
            recent: std::collections::VecDeque::new(),
        };
        w.build_jails(Vec::new())?;
        for row in w.store.active_bans(now)? {
            w.track(
                row.target,
                Active {
                    jail: row.jail,
                    detector: row.detector,
                    reason: row.reason,
                    level: row.level,
                    start: row.start,
                    expires: row.expires,
                },
            );
        }
        w.replay(now)?;
        Ok(w)
    }

    /// Rebuild detector state from stored observations (findings are discarded: whatever
    /// they caused is already in the store).
    fn replay(&mut self, now: SystemTime) -> anyhow::Result<()> {
        let since = now
            .checked_sub(self.cfg.longest_window())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let obs = self
            .store
            .observations_since(since, MAX_STORED_OBSERVATIONS)?;
        if obs.is_empty() {
            return Ok(());
        }
        self.replaying = true;
        for o in &obs {
            self.take_observation(o, o.time.min(now));
        }
        self.replaying = false;
        tracing::info!(
            observations = obs.len(),
            "detector state rebuilt from stored observations"
        );
        Ok(())
    }

    /// (Re)build jails from the config, keeping detector state of jails that keep their name.
    fn build_jails(&mut self, mut old: Vec<Jail>) -> anyhow::Result<()> {
        let mut jails = Vec::new();
        for jc in self.cfg.jails.iter().filter(|j| j.enabled) {
            let prev = old
                .iter()
                .position(|j| j.cfg.name == jc.name)
                .map(|i| old.swap_remove(i));
            jails.push(Jail::build(jc, prev)?);
        }
        let mut by_source: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, j) in jails.iter().enumerate() {
            for s in &j.cfg.sources {
                by_source.entry(s.clone()).or_default().push(i);
            }
        }
        self.jails = jails;
        self.by_source = by_source
            .into_iter()
            .map(|(k, v)| (k, Arc::from(v)))
            .collect();
        Ok(())
    }

    fn track(&mut self, target: IpNet, a: Active) {
        if let Some(e) = a.expires {
            self.schedule.push(Reverse((e, target)));
        }
        if target.prefix_len() < target.max_prefix_len() && !self.active_prefixes.contains(&target)
        {
            self.active_prefixes.push(target);
        }
        self.active.insert(target, a);
    }

    fn untrack(&mut self, target: &IpNet) -> Option<Active> {
        self.active_prefixes.retain(|p| p != target);
        self.active.remove(target)
    }

    /// Is `target` already covered by an active ban (itself, or a prefix containing it)?
    fn covered(&self, target: &IpNet) -> bool {
        self.active.contains_key(target)
            || self.active_prefixes.iter().any(|p| p.contains(target))
            || self
                .orders
                .iter()
                .any(|o| o.target() == *target || o.target().contains(target))
    }

    /// Run until both channels close.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<SourceEvent>,
        mut control: mpsc::Receiver<Envelope>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        self.reconcile();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_reconcile = self.clock.now();
        let mut last_prune = SystemTime::UNIX_EPOCH;
        let mut last_health = SystemTime::UNIX_EPOCH;
        let mut events_open = true;
        let mut control_open = true;
        while events_open || control_open {
            tokio::select! {
                ev = events.recv(), if events_open => match ev {
                    None => events_open = false,
                    Some(ev) => {
                        self.on_event(ev);
                        let mut n = 1;
                        while n < MAX_BATCH {
                            match events.try_recv() {
                                Ok(ev) => { self.on_event(ev); n += 1; }
                                Err(_) => break,
                            }
                        }
                        self.flush();
                    }
                },
                req = control.recv(), if control_open => match req {
                    None => control_open = false,
                    Some((req, reply)) => {
                        let r = self.on_request(req);
                        self.flush();
                        let _ = reply.send(r);
                    }
                },
                cmd = commands.recv() => if let Some(cmd) = cmd { self.on_command(cmd) },
                _ = tick.tick() => {
                    let now = self.clock.now();
                    self.expire(now);
                    if self.needs_reconcile || now.duration_since(last_reconcile).unwrap_or_default() >= Duration::from_secs(60) {
                        self.reconcile();
                        last_reconcile = now;
                        for j in &mut self.jails { j.sweep(now); }
                        self.trusted.retain(|_, until| *until > now);
                    }
                    if now.duration_since(last_health).unwrap_or(Duration::MAX) >= Duration::from_secs(60) {
                        self.check_health(now);
                        last_health = now;
                    }
                    if now.duration_since(last_prune).unwrap_or(Duration::MAX) >= Duration::from_secs(3600) {
                        self.prune(now);
                        last_prune = now;
                    }
                    self.flush();
                }
            }
        }
        self.flush();
        tracing::info!("pipeline worker stopped");
    }

    fn prune(&mut self, now: SystemTime) {
        let keep = self.cfg.longest_window().max(Duration::from_secs(86_400));
        let res = self
            .store
            .prune(now, self.cfg.store.retention)
            .and_then(|a| {
                Ok(a + self
                    .store
                    .prune_observations(now, keep, MAX_STORED_OBSERVATIONS)?)
            });
        match res {
            Ok(n) if n > 0 => tracing::info!(
                rows = n,
                "pruned store history outside the retention windows"
            ),
            Ok(_) => {}
            Err(e) => {
                self.counters.store_errors += 1;
                tracing::error!(error = %e, "store prune failed");
            }
        }
    }

    /// Once a minute: feed the health watch and alert on what it finds.
    fn check_health(&mut self, now: SystemTime) {
        use crate::alert::{AlertEvent, AlertKind, Severity};
        use std::sync::atomic::Ordering::Relaxed;
        let sources: Vec<(String, u64)> = self
            .sources
            .lock()
            .map(|l| {
                l.iter()
                    .map(|(n, _, s)| (n.clone(), s.lines.load(Relaxed)))
                    .collect()
            })
            .unwrap_or_default();
        let jails: Vec<(String, u64, u64)> = self
            .jails
            .iter()
            .filter(|j| j.matcher.is_some())
            .map(|j| {
                let read = j
                    .cfg
                    .sources
                    .iter()
                    .filter_map(|s| sources.iter().find(|(n, _)| n == s))
                    .map(|(_, l)| *l)
                    .sum();
                (j.name.to_string(), j.matched, read)
            })
            .collect();
        for h in self.health.tick(
            now,
            &sources,
            &jails,
            self.counters.bans,
            self.counters.matched,
        ) {
            let ev = match h {
                super::health::Health::Silent { source, per_hour } => AlertEvent::new(
                    AlertKind::Health,
                    Severity::High,
                    now,
                    &format!("source {source} has been silent for an hour (it usually reads ~{per_hour:.0} lines/h): is the log still written there?"),
                )
                .with_key(&format!("silent:{source}")),
                super::health::Health::Blind { jail, lines } => AlertEvent::new(
                    AlertKind::Health,
                    Severity::High,
                    now,
                    &format!("jail {jail} matched nothing for a day while its sources read {lines} lines: installed is not effective (check the log sshd really writes)"),
                )
                .with_key(&format!("blind:{jail}")),
                super::health::Health::Spike { what, count, baseline } => AlertEvent::new(
                    AlertKind::Spike,
                    Severity::High,
                    now,
                    &format!("{count} {what} in ten minutes, against a usual {baseline:.1}"),
                )
                .with_key(&format!("spike:{what}")),
            };
            tracing::warn!(alert = ?ev.kind, "health");
            self.alert(ev);
        }
    }

    fn alert(&self, ev: crate::alert::AlertEvent) {
        if let Some(a) = &self.alerts {
            a.emit(ev);
        }
    }

    /// Are bans waiting for a flush?
    pub fn has_pending(&self) -> bool {
        !self.orders.is_empty() || !self.removes.is_empty()
    }

    /// Handle one event from a source.
    pub fn on_event(&mut self, ev: SourceEvent) {
        match ev {
            SourceEvent::Checkpoint { key, value } => {
                self.checkpoints.insert(key, value);
            }
            SourceEvent::Observation(obs) => {
                self.counters.records += 1;
                let now = self.clock.now();
                self.take_observation(&obs, now);
            }
            SourceEvent::Record(rec) => {
                self.counters.records += 1;
                let now = self.clock.now();
                let Some(jail_ids) = self.by_source.get(&*rec.source).cloned() else {
                    return;
                };
                // A record is matched once per distinct rule set; most configs have one jail per
                // source, so this is one match per line.
                let mut seen: Option<Observation> = None;
                for &ji in jail_ids.iter() {
                    let Some(m) = self.jails[ji].matcher.as_ref() else {
                        continue;
                    };
                    match m.match_body(&rec.body, now) {
                        Outcome::Unmatched { relevant } => {
                            if relevant {
                                self.counters.unmatched_relevant += 1;
                            }
                        }
                        Outcome::Matched(m) => {
                            self.jails[ji].matched += 1;
                            *self
                                .matches
                                .entry((self.jails[ji].name.clone(), Arc::from(m.rule)))
                                .or_default() += 1;
                            let obs = Observation {
                                time: m.time.unwrap_or(now),
                                addr: m.addr,
                                user: m.user.map(str::to_string),
                                rule: Arc::from(m.rule),
                                source: rec.source.clone(),
                            };
                            self.observe_in(ji, &obs, now);
                            seen = Some(obs);
                        }
                    }
                }
                if let Some(obs) = seen {
                    self.counters.matched += 1;
                    if !self.replaying {
                        self.observations.push(obs);
                    }
                }
            }
        }
    }

    /// A structured (or replayed) observation: to every jail that takes it.
    fn take_observation(&mut self, obs: &Observation, now: SystemTime) {
        let mut taken = false;
        for ji in 0..self.jails.len() {
            let j = &self.jails[ji];
            let by_rules = j.matcher.is_some() && j.cfg.sources.iter().any(|s| **s == *obs.source);
            let by_kind = j.takes_kind(&obs.rule)
                && (j.cfg.sources.is_empty() || j.cfg.sources.iter().any(|s| **s == *obs.source));
            if by_rules || by_kind {
                self.observe_in(ji, obs, now);
                taken = true;
            }
        }
        if self.replaying {
            return;
        }
        if taken {
            self.counters.matched += 1;
        }
        // Decoy stages are kept even when no jail bans on them: the review's funnel reads them.
        if taken || obs.rule.starts_with("decoy.stage.") {
            self.observations.push(obs.clone());
        }
    }

    /// The heart of the pipeline for one observation in one jail.
    fn observe_in(&mut self, ji: usize, obs: &Observation, now: SystemTime) {
        if obs.rule.starts_with("sshd.accepted") {
            if !self.replaying {
                self.counters.accepted += 1;
            }
            for j in &mut self.jails {
                j.forget(obs.addr);
            }
            if let (Some(ttl), true) = (
                self.cfg.trust.key_login_ttl,
                &*obs.rule == "sshd.accepted-publickey",
            ) {
                if let Some(until) = obs.time.checked_add(ttl) {
                    self.trust(obs.addr, until);
                }
            }
            return;
        }
        // Allowlisted addresses are never even counted.
        if self.allow.contains_addr(obs.addr) {
            return;
        }
        if self
            .trusted
            .get(&obs.addr)
            .is_some_and(|until| *until > now)
        {
            self.counters.trusted += 1;
            return;
        }
        let weight = self.jails[ji].weight(&obs.rule, obs.user.as_deref());
        if weight <= 0.0 {
            return;
        }
        let findings = self.jails[ji].observe(obs, weight, now);
        if self.replaying {
            return;
        }
        for f in findings {
            self.on_finding(ji, f, now);
        }
    }

    fn trust(&mut self, addr: IpAddr, until: SystemTime) {
        if self.trusted.len() >= MAX_TRUSTED && !self.trusted.contains_key(&addr) {
            if let Some(oldest) = self
                .trusted
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(a, _)| *a)
            {
                self.trusted.remove(&oldest);
            }
        }
        self.trusted.insert(addr, until);
    }

    fn on_finding(&mut self, ji: usize, f: Finding, now: SystemTime) {
        self.counters.findings += 1;
        self.decided
            .entry((self.jails[ji].name.clone(), f.detector))
            .or_default()
            .0 += 1;
        let target = normalize_net(f.target);
        if self.covered(&target) {
            self.counters.already_banned += 1;
            return;
        }
        let since = now
            .checked_sub(self.cfg.store.retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let prior = match self.store.prior_bans(target, since) {
            Ok(n) => n,
            Err(e) => {
                self.counters.store_errors += 1;
                tracing::error!(error = %e, "cannot read ban history; escalating from level 0");
                0
            }
        };
        let permanent_after = self.cfg.recidive.permanent_after;
        let jail = &mut self.jails[ji];
        match decide::decide(&f, &self.allow, &jail.esc, prior, permanent_after, now) {
            Ok(order) => {
                jail.bans += 1;
                self.decided
                    .entry((jail.name.clone(), f.detector))
                    .or_default()
                    .1 += 1;
                tracing::info!(
                    target = %order.target(), jail = %order.jail, detector = order.detector, level = order.level,
                    length = %length_str(order.length), reason = %order.reason, "ban"
                );
                self.orders.push(order);
            }
            Err(refusal) => {
                self.counters.allowlisted += 1;
                tracing::info!(%refusal, detector = f.detector, "not banned: allowlisted");
            }
        }
    }

    /// Commit queued bans to the store, apply them (and queued unbans) in one kernel
    /// transaction, then persist observations and checkpoints (only after the records before
    /// them took effect).
    pub fn flush(&mut self) {
        let now = self.clock.now();
        let orders = std::mem::take(&mut self.orders);
        let removes = std::mem::take(&mut self.removes);
        if !orders.is_empty() || !removes.is_empty() {
            let mut changes = Vec::with_capacity(orders.len() + removes.len());
            for t in &removes {
                changes.push(Change::Remove { target: *t });
            }
            for o in &orders {
                let timeout = o.expires().map(|e| remaining(e, now));
                changes.push(Change::Add {
                    permit: &o.permit,
                    timeout,
                });
            }
            let t0 = std::time::Instant::now();
            let res = self.enforcer.apply(&changes);
            self.enforce_latency.observe(t0.elapsed().as_secs_f64());
            if let Err(e) = res {
                self.counters.enforce_errors += 1;
                self.needs_reconcile = true;
                self.alert(
                    crate::alert::AlertEvent::new(
                        crate::alert::AlertKind::Health,
                        crate::alert::Severity::High,
                        now,
                        &format!("enforcement failed: {e}"),
                    )
                    .with_key("health:enforce"),
                );
                tracing::error!(error = %e, "enforcement failed; bans are kept in the store and retried by reconciliation");
            }
            for o in &orders {
                let row = BanRow {
                    id: 0,
                    target: o.target(),
                    jail: o.jail.to_string(),
                    reason: o.reason.clone(),
                    level: o.level,
                    detector: o.detector.to_string(),
                    start: o.start,
                    expires: o.expires(),
                    ended: None,
                };
                if let Err(e) = self.store.insert_ban(&row) {
                    self.counters.store_errors += 1;
                    tracing::error!(error = %e, target = %row.target, "cannot record ban in the store (it is enforced; it will not survive a restart)");
                }
                self.counters.bans += 1;
                self.alert(crate::alert::AlertEvent::ban(
                    o.start,
                    o.target(),
                    o.jail.clone(),
                    o.detector,
                    &o.reason,
                ));
                if let Some(d) = &mut self.decisions {
                    d.push(DecisionRecord {
                        time: rfc3339(o.start),
                        action: "ban",
                        target: o.target().to_string(),
                        duration_s: match o.length {
                            BanLength::For(len) => Some(len.as_secs()),
                            BanLength::Permanent => None,
                        },
                        jail: o.jail.to_string(),
                        detector: o.detector.to_string(),
                    });
                }
                self.track(
                    o.target(),
                    Active {
                        jail: o.jail.to_string(),
                        detector: o.detector.to_string(),
                        reason: o.reason.clone(),
                        level: o.level,
                        start: o.start,
                        expires: o.expires(),
                    },
                );
            }
        }
        let mut obs = std::mem::take(&mut self.observations);
        for o in obs.iter().rev().take(RECENT).rev() {
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(o.clone());
        }
        if !self.keep_observations {
            obs.clear();
        }
        if let Err(e) = self.store.record_observations(&obs) {
            self.counters.store_errors += 1;
            tracing::error!(error = %e, count = obs.len(), "cannot record observations (explain and restart replay will miss them)");
        }
        for (k, v) in std::mem::take(&mut self.checkpoints) {
            if let Err(e) = self.store.save_checkpoint(&k, &v, now) {
                self.counters.store_errors += 1;
                tracing::error!(error = %e, key = %k, "cannot save source checkpoint");
            }
        }
    }

    /// Walk the ordered unban schedule.
    pub fn expire(&mut self, now: SystemTime) {
        while let Some(Reverse((when, target))) = self.schedule.peek().cloned() {
            if when > now {
                break;
            }
            self.schedule.pop();
            if self
                .active
                .get(&target)
                .is_some_and(|a| a.expires == Some(when))
            {
                let a = self.untrack(&target);
                self.counters.unbans += 1;
                tracing::info!(%target, "ban expired");
                if let Some(a) = &a {
                    self.alert(crate::alert::AlertEvent::unban(
                        when,
                        target,
                        Arc::from(a.jail.as_str()),
                        "expired",
                    ));
                }
                if let (Some(d), Some(a)) = (&mut self.decisions, a) {
                    d.push(DecisionRecord {
                        time: rfc3339(when),
                        action: "unban",
                        target: target.to_string(),
                        duration_s: None,
                        jail: a.jail,
                        detector: a.detector,
                    });
                }
                // The kernel element expires on its own timeout; removing it too keeps the
                // log backend (and any clock skew) consistent. Absent elements are fine.
                self.removes.push(target);
            }
        }
    }

    /// Make the kernel set agree with the store: re-add missing bans with their remaining time,
    /// report elements the store does not know.
    fn reconcile(&mut self) {
        let now = self.clock.now();
        self.needs_reconcile = false;
        let kernel = match self.enforcer.list() {
            Ok(k) => k,
            Err(e) => {
                self.counters.enforce_errors += 1;
                self.needs_reconcile = true;
                tracing::error!(error = %e, "cannot list the kernel ban sets");
                return;
            }
        };
        self.kernel_elements = Some(kernel.len());
        let in_kernel: HashMap<IpNet, Option<Duration>> = kernel
            .iter()
            .map(|k| (normalize_net(k.target), k.expires_in))
            .collect();
        let mut permits = Vec::new();
        let mut lifted = Vec::new();
        for (target, a) in &self.active {
            if a.expires.is_some_and(|e| e <= now) || in_kernel.contains_key(target) {
                continue;
            }
            match self.allow.permit(*target) {
                Ok(p) => permits.push((p, a.expires.map(|e| remaining(e, now)))),
                Err(refusal) => lifted.push((*target, refusal)),
            }
        }
        for (target, refusal) in lifted {
            tracing::warn!(%refusal, "stored ban is now allowlisted; lifting it");
            self.lift(target, "allowlisted", now);
        }
        if !permits.is_empty() {
            let changes: Vec<Change<'_>> = permits
                .iter()
                .map(|(p, t)| Change::Add {
                    permit: p,
                    timeout: *t,
                })
                .collect();
            match self.enforcer.apply(&changes) {
                Ok(()) => {
                    self.counters.reconciled_missing += permits.len() as u64;
                    tracing::warn!(
                        count = permits.len(),
                        "re-added bans missing from the kernel set"
                    );
                    self.kernel_elements = Some(kernel.len() + permits.len());
                }
                Err(e) => {
                    self.counters.enforce_errors += 1;
                    self.needs_reconcile = true;
                    tracing::error!(error = %e, "cannot re-add missing bans");
                }
            }
        }
        let unknown: Vec<String> = in_kernel
            .keys()
            .filter(|t| !self.active.contains_key(*t))
            .map(|t| t.to_string())
            .collect();
        if !unknown.is_empty() {
            self.counters.reconciled_unknown = unknown.len() as u64;
            let shown: Vec<&str> = unknown.iter().take(10).map(String::as_str).collect();
            tracing::warn!(count = unknown.len(), first = %shown.join(","), "kernel ban set holds elements the store does not know (left in place; `ravelin unban` removes them)");
        }
    }

    fn lift(&mut self, target: IpNet, reason: &str, now: SystemTime) -> bool {
        let was = self.untrack(&target).is_some();
        if let Err(e) = self.store.end_ban(target, now, reason) {
            self.counters.store_errors += 1;
            tracing::error!(error = %e, %target, "cannot record unban in the store");
        }
        if target.prefix_len() == target.max_prefix_len() {
            for j in &mut self.jails {
                j.forget(target.addr());
            }
        }
        self.removes.push(target);
        self.counters.unbans += u64::from(was);
        was
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Checkpoint(key, reply) => {
                let v = self.store.load_checkpoint(&key).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "cannot read checkpoint");
                    None
                });
                let _ = reply.send(v);
            }
            Command::Reload(cfg, hosts, reply) => {
                let mut notes = Vec::new();
                if cfg.state_dir != self.cfg.state_dir
                    || cfg.control_socket != self.cfg.control_socket
                    || cfg.enforce != self.cfg.enforce
                    || cfg.alert != self.cfg.alert
                    || cfg.metrics != self.cfg.metrics
                {
                    notes.push("state_dir, control_socket, [enforce], [alert] and [metrics] changes take effect after a restart".to_string());
                }
                let old_cfg = std::mem::replace(&mut self.cfg, *cfg);
                self.cfg.state_dir = old_cfg.state_dir.clone();
                self.cfg.control_socket = old_cfg.control_socket.clone();
                self.cfg.enforce = old_cfg.enforce.clone();
                self.allow = Allowlist::new(&self.cfg.allow, &hosts);
                let old = std::mem::take(&mut self.jails);
                if let Err(e) = self.build_jails(old) {
                    notes.push(format!("jails not rebuilt: {e}"));
                }
                self.needs_reconcile = true;
                tracing::info!(jails = self.jails.len(), "configuration reloaded");
                let _ = reply.send(notes);
            }
        }
    }

    /// Serve one control request.
    pub fn on_request(&mut self, req: Request) -> Reply {
        let now = self.clock.now();
        match req {
            Request::Status => Reply::ok(self.status(now)),
            Request::Bans => Reply::ok(Value::Array(self.bans_json(now))),
            Request::Jails => Reply::ok(Value::Array(self.jails_json(now))),
            Request::Metrics => Reply::ok(Value::String(self.metrics_text(now))),
            Request::Selftest => self.selftest(now),
            Request::Explain { target } => match target.trim().parse::<IpAddr>() {
                Ok(addr) => Reply::ok(self.explain(crate::event::normalize_addr(addr), now)),
                Err(_) => Reply::err(format!("{target:?} is not an IP address")),
            },
            Request::Ban {
                target,
                seconds,
                permanent,
                reason,
            } => {
                let Some(target) = parse_target(&target) else {
                    return Reply::err(format!(
                        "{target:?} is not an address or CIDR (e.g. 203.0.113.7, 203.0.113.0/24, 2001:db8::/64)"
                    ));
                };
                if seconds.is_some_and(|s| s > MAX_BAN.as_secs()) {
                    return Reply::err("a ban longer than 100 years: use --for permanent");
                }
                let length = if permanent {
                    BanLength::Permanent
                } else {
                    BanLength::For(Duration::from_secs(
                        seconds.unwrap_or(DEFAULT_MANUAL.as_secs()).max(1),
                    ))
                };
                match decide::manual(target, length, &reason, &self.allow, now) {
                    Err(refusal) => Reply::err(format!(
                        "refused: {refusal}; remove it from [allow] first if you really mean it"
                    )),
                    Ok(order) => {
                        let t = order.target();
                        self.removes.retain(|r| *r != t);
                        tracing::info!(target = %t, length = %length_str(order.length), "manual ban");
                        self.orders.push(order);
                        self.flush();
                        Reply::ok(json!({ "target": t.to_string(), "length": length_str(length) }))
                    }
                }
            }
            Request::Unban { target } => {
                let Some(target) = parse_target(&target) else {
                    return Reply::err(format!("{target:?} is not an address or CIDR"));
                };
                let was = self.lift(target, "manual unban", now);
                self.flush();
                tracing::info!(%target, was_banned = was, "unban");
                Reply::ok(json!({ "target": target.to_string(), "was_banned": was }))
            }
        }
    }

    fn ban_json(t: &IpNet, a: &Active, now: SystemTime) -> Value {
        json!({
            "target": t.to_string(),
            "jail": a.jail,
            "detector": a.detector,
            "reason": a.reason,
            "level": a.level,
            "start": rfc3339(a.start),
            "expires": a.expires.map(rfc3339),
            "remaining_s": a.expires.map(|e| remaining(e, now).as_secs()),
        })
    }

    fn bans_json(&self, now: SystemTime) -> Vec<Value> {
        let mut list: Vec<(&IpNet, &Active)> = self
            .active
            .iter()
            .filter(|(_, a)| a.expires.is_none_or(|e| e > now))
            .collect();
        list.sort_by_key(|(t, a)| (a.start, **t));
        list.into_iter()
            .map(|(t, a)| Self::ban_json(t, a, now))
            .collect()
    }

    /// Everything ravelin knows about one address, and why it did or did not ban it.
    fn explain(&mut self, addr: IpAddr, now: SystemTime) -> Value {
        let host = host_net(addr);
        let allowlisted = self.allow.permit(host).err().map(|r| r.to_string());
        let bans: Vec<Value> = self
            .active
            .iter()
            .filter(|(t, a)| t.contains(&addr) && a.expires.is_none_or(|e| e > now))
            .map(|(t, a)| Self::ban_json(t, a, now))
            .collect();
        let since = now
            .checked_sub(self.cfg.store.retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let prior = self.store.prior_bans(host, since).unwrap_or(0);
        let history: Vec<Value> = self
            .store
            .history(host, 20)
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                json!({
                    "start": rfc3339(r.start), "jail": r.jail, "detector": r.detector, "level": r.level,
                    "expires": r.expires.map(rfc3339), "ended": r.ended.map(|(t, why)| json!({"time": rfc3339(t), "reason": why})),
                    "reason": r.reason,
                })
            })
            .collect();
        let obs = self.store.observations_of(addr, 500).unwrap_or_default();
        let mut by_rule: BTreeMap<String, (u64, SystemTime, SystemTime)> = BTreeMap::new();
        for o in &obs {
            let e = by_rule
                .entry(o.rule.to_string())
                .or_insert((0, o.time, o.time));
            e.0 += 1;
            e.1 = e.1.min(o.time);
            e.2 = e.2.max(o.time);
        }
        let by_rule: Vec<Value> = by_rule
            .into_iter()
            .map(|(rule, (n, first, last))| json!({"rule": rule, "count": n, "first": rfc3339(first), "last": rfc3339(last)}))
            .collect();
        let recent: Vec<Value> = obs
            .iter()
            .take(20)
            .map(|o| json!({"time": rfc3339(o.time), "rule": &*o.rule, "user": o.user, "source": &*o.source}))
            .collect();
        let jails: Vec<Value> = self.jails.iter().map(|j| j.explain(addr, now)).collect();
        let next = self.jails.first().map(|j| {
            if self
                .cfg
                .recidive
                .permanent_after
                .is_some_and(|n| prior >= n)
            {
                "permanent".to_string()
            } else {
                length_str(j.esc.length(prior))
            }
        });
        json!({
            "address": addr.to_string(),
            "allowlisted": allowlisted,
            "trusted_until": self.trusted.get(&addr).filter(|t| **t > now).map(|t| rfc3339(*t)),
            "bans": bans,
            "prior_bans": prior,
            "permanent_after": self.cfg.recidive.permanent_after,
            "next_ban_length": next,
            "history": history,
            "observations": { "total_shown": obs.len(), "by_rule": by_rule, "recent": recent },
            "jails": jails,
        })
    }

    fn jails_json(&self, now: SystemTime) -> Vec<Value> {
        self.jails
            .iter()
            .map(|j| {
                let (tracked, evicted) = j.tracked();
                json!({
                    "name": &*j.name,
                    "sources": j.cfg.sources,
                    "rules": j.cfg.rules,
                    "kinds": j.cfg.kinds,
                    "max_retry": j.cfg.max_retry.get(),
                    "find_time": format_duration(j.cfg.find_time),
                    "ban_time": length_str(j.cfg.ban_time),
                    "ban_time_factor": j.cfg.ban_time_factor,
                    "ban_time_max": format_duration(j.cfg.ban_time_max),
                    "windows": j.cfg.windows.iter().map(|w| json!({"threshold": w.threshold, "window": format_duration(w.window)})).collect::<Vec<_>>(),
                    "prefix": j.cfg.prefix.as_ref().map(|p| json!({"min_addresses": p.min_addresses, "window": format_duration(p.window), "ipv4_len": p.v4_len, "ipv6_len": p.v6_len})),
                    "enumeration": j.cfg.enumeration.as_ref().map(|e| json!({"min_users": e.min_users, "window": format_duration(e.window)})),
                    "tracked": tracked,
                    "evicted": evicted,
                    "matched": j.matched,
                    "bans": j.bans,
                    "active_bans": self.active.values().filter(|a| a.jail == *j.name && a.expires.is_none_or(|e| e > now)).count(),
                })
            })
            .collect()
    }

    /// `ravelin selftest`: a finding for a TEST-NET address goes through decide (the
    /// allowlist permit), the store and one enforcement transaction; then the kernel set must
    /// hold it, the drop rules must reference the sets, the firewall policy (if configured)
    /// must be live; the element is removed again. Every step is reported; any failure fails.
    fn selftest(&mut self, now: SystemTime) -> Reply {
        let mut steps: Vec<Value> = Vec::new();
        let mut ok = true;
        let mut step = |name: &str, res: Result<String, String>| {
            ok &= res.is_ok();
            steps.push(match res {
                Ok(d) => json!({"step": name, "ok": true, "detail": d}),
                Err(d) => json!({"step": name, "ok": false, "detail": d}),
            });
        };
        let candidates = ["192.0.2.254", "198.51.100.254", "203.0.113.254"];
        let Some(target) = candidates
            .iter()
            .map(|a| host_net(a.parse().expect("literal")))
            .find(|t| self.allow.permit(*t).is_ok() && !self.active.contains_key(t))
        else {
            return Reply::err(
                "every TEST-NET probe address is allowlisted or banned; cannot run the selftest",
            );
        };
        let finding = Finding {
            target,
            jail: Arc::from("selftest"),
            detector: "selftest",
            count: 1,
            time: now,
        };
        let esc = decide::Escalation {
            ban_time: BanLength::For(Duration::from_secs(60)),
            factor: 1.0,
            max: Duration::from_secs(60),
        };
        match decide::decide(&finding, &self.allow, &esc, 0, None, now) {
            Ok(order) => {
                step(
                    "decide",
                    Ok(format!("allowlist issued a permit for {target}")),
                );
                self.orders.push(order);
                let errors = self.counters.enforce_errors;
                self.flush();
                step(
                    "enforce",
                    if self.counters.enforce_errors == errors {
                        Ok("one transaction applied".into())
                    } else {
                        Err("the enforcement transaction failed (see the daemon log)".into())
                    },
                );
            }
            Err(r) => step("decide", Err(r.to_string())),
        }
        match self.enforcer.list() {
            Ok(list) if list.iter().any(|e| normalize_net(e.target) == target) => step(
                "kernel set",
                Ok(format!(
                    "{target} is in the {} ban set",
                    self.enforcer.name()
                )),
            ),
            Ok(_) => step(
                "kernel set",
                Err(format!(
                    "{target} is missing from the ban set after the transaction"
                )),
            ),
            Err(e) => step("kernel set", Err(e.to_string())),
        }
        step(
            "drop rule",
            self.enforcer
                .verify()
                .map(|()| "the drop rules reference the ban sets".to_string())
                .map_err(|e| e.to_string()),
        );
        if self.cfg.firewall.is_some() && self.enforcer.name() == "nftables" {
            let live = crate::firewall::nft::structure(
                &self.cfg.enforce.nft,
                crate::firewall::ruleset::TABLE,
            );
            step(
                "firewall policy",
                match live {
                    Ok(Some(t)) if t.contains("policy drop") => Ok(format!(
                        "table inet {} is live with policy drop",
                        crate::firewall::ruleset::TABLE
                    )),
                    Ok(Some(_)) => Err(
                        "the firewall table is live but its input chain does not drop by default"
                            .into(),
                    ),
                    Ok(None) => Err(
                        "the [firewall] policy is not applied: run `ravelin firewall apply`".into(),
                    ),
                    Err(e) => Err(e.to_string()),
                },
            );
        }
        self.lift(target, "selftest", now);
        self.flush();
        match self.enforcer.list() {
            Ok(list) if list.iter().all(|e| normalize_net(e.target) != target) => {
                step("cleanup", Ok(format!("{target} removed")))
            }
            Ok(_) => step("cleanup", Err(format!("{target} is still in the ban set"))),
            Err(e) => step("cleanup", Err(e.to_string())),
        }
        let data = json!({"ok": ok, "steps": steps});
        if ok {
            Reply::ok(data)
        } else {
            Reply {
                ok: false,
                data: Some(data),
                error: Some("selftest failed".into()),
            }
        }
    }

    /// Prometheus exposition of everything the worker counts.
    fn metrics_text(&self, now: SystemTime) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let mut e = crate::metrics::Exposition::default();
        type Stat = fn(&SourceStats) -> &std::sync::atomic::AtomicU64;
        let sources = self.sources.lock().map(|l| l.clone()).unwrap_or_default();
        let per_source: [(&str, &str, Stat); 5] = [
            (
                "ravelin_source_lines_total",
                "Lines (or journal entries) read per source.",
                |s| &s.lines,
            ),
            (
                "ravelin_source_cut_lines_total",
                "Lines longer than the cap, cut.",
                |s| &s.cut_lines,
            ),
            (
                "ravelin_source_invalid_utf8_total",
                "Lines with invalid UTF-8 (replaced).",
                |s| &s.invalid_utf8,
            ),
            (
                "ravelin_source_errors_total",
                "Read errors per source.",
                |s| &s.errors,
            ),
            (
                "ravelin_source_rotations_total",
                "Rotations followed per source.",
                |s| &s.rotations,
            ),
        ];
        for (name, help, get) in per_source {
            e.family(name, "counter", help);
            for (src, _, s) in &sources {
                e.sample(name, &[("source", src)], get(s).load(Relaxed) as f64);
            }
        }
        e.family(
            "ravelin_matches_total",
            "counter",
            "Lines matched, per jail and rule.",
        );
        for ((jail, rule), n) in &self.matches {
            e.sample(
                "ravelin_matches_total",
                &[("jail", jail), ("rule", rule)],
                *n as f64,
            );
        }
        e.family(
            "ravelin_findings_total",
            "counter",
            "Detector findings, per jail and detector.",
        );
        for ((jail, det), (f, _)) in &self.decided {
            e.sample(
                "ravelin_findings_total",
                &[("jail", jail), ("detector", det)],
                *f as f64,
            );
        }
        e.family(
            "ravelin_bans_added_total",
            "counter",
            "Bans issued by detectors, per jail and detector.",
        );
        for ((jail, det), (_, b)) in &self.decided {
            e.sample(
                "ravelin_bans_added_total",
                &[("jail", jail), ("detector", det)],
                *b as f64,
            );
        }
        e.family("ravelin_bans_active", "gauge", "Bans in force, per jail.");
        let mut active: BTreeMap<&str, u64> = self.jails.iter().map(|j| (&*j.name, 0)).collect();
        for a in self
            .active
            .values()
            .filter(|a| a.expires.is_none_or(|x| x > now))
        {
            *active.entry(a.jail.as_str()).or_default() += 1;
        }
        for (jail, n) in active {
            e.sample("ravelin_bans_active", &[("jail", jail)], n as f64);
        }
        e.family(
            "ravelin_tracked",
            "gauge",
            "Keys tracked by a jail's detectors (bounded by max_tracked).",
        );
        for j in &self.jails {
            e.sample(
                "ravelin_tracked",
                &[("jail", &j.name)],
                j.tracked().0 as f64,
            );
        }
        let c = &self.counters;
        let totals: [(&str, &str, u64); 11] = [
            (
                "ravelin_records_total",
                "Records received from all sources.",
                c.records,
            ),
            (
                "ravelin_unmatched_relevant_total",
                "Lines from covered programs that no rule matched.",
                c.unmatched_relevant,
            ),
            (
                "ravelin_accepted_logins_total",
                "Successful logins seen.",
                c.accepted,
            ),
            (
                "ravelin_trusted_skipped_total",
                "Observations skipped for trusted addresses.",
                c.trusted,
            ),
            (
                "ravelin_already_banned_total",
                "Findings on targets already banned.",
                c.already_banned,
            ),
            (
                "ravelin_allowlisted_total",
                "Findings refused by the allowlist.",
                c.allowlisted,
            ),
            (
                "ravelin_unbans_total",
                "Bans lifted (expiry or unban).",
                c.unbans,
            ),
            (
                "ravelin_enforce_errors_total",
                "Failed enforcement transactions.",
                c.enforce_errors,
            ),
            (
                "ravelin_store_errors_total",
                "Failed store operations.",
                c.store_errors,
            ),
            (
                "ravelin_reconciled_missing_total",
                "Kernel elements re-added by reconciliation.",
                c.reconciled_missing,
            ),
            (
                "ravelin_bans_total",
                "Bans issued (detectors and manual).",
                c.bans,
            ),
        ];
        for (name, help, v) in totals {
            e.family(name, "counter", help).sample(name, &[], v as f64);
        }
        e.family(
            "ravelin_kernel_elements",
            "gauge",
            "Elements in the kernel ban sets at the last reconciliation.",
        )
        .sample(
            "ravelin_kernel_elements",
            &[],
            self.kernel_elements.unwrap_or(0) as f64,
        );
        e.histogram(
            "ravelin_enforce_seconds",
            "Time per enforcement transaction.",
            &self.enforce_latency,
        );
        if let Some(a) = &self.alerts {
            a.counters().render(&mut e);
        }
        if let Some(d) = &self.decoy {
            d.render(&mut e);
        }
        e.finish()
    }

    fn status(&self, now: SystemTime) -> Value {
        let sources: Vec<Value> = self
            .sources
            .lock()
            .map(|list| {
                list.iter()
                    .map(|(name, what, s)| {
                        use std::sync::atomic::Ordering::Relaxed;
                        json!({
                            "name": name, "reads": what,
                            "lines": s.lines.load(Relaxed), "cut_lines": s.cut_lines.load(Relaxed),
                            "invalid_utf8": s.invalid_utf8.load(Relaxed), "errors": s.errors.load(Relaxed),
                            "rotations": s.rotations.load(Relaxed),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "config": self.cfg.origin.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in default".into()),
            "uptime_s": now.duration_since(self.started).unwrap_or_default().as_secs(),
            "backend": self.enforcer.name(),
            "table": self.cfg.enforce.table,
            "active_bans": self.active.values().filter(|a| a.expires.is_none_or(|e| e > now)).count(),
            "kernel_elements": self.kernel_elements,
            "allowlist": self.allow.entries().iter().map(|(n, why)| format!("{n} ({why})")).collect::<Vec<_>>(),
            "trusted": self.trusted.values().filter(|t| **t > now).count(),
            "sources": sources,
            "jails": self.jails_json(now),
            "counters": self.counters,
            "recent": self.recent.iter().rev().map(|o| json!({"time": rfc3339(o.time), "addr": o.addr.to_string(), "rule": &*o.rule, "user": o.user})).collect::<Vec<_>>(),
            "decoy": self.decoy.as_ref().map(|d| d.status_json()),
        })
    }
}

fn parse_target(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .map(normalize_net)
        .or_else(|| s.parse::<IpAddr>().ok().map(host_net))
}

/// Time left until `e`, rounded up to whole seconds, at least 1 s (the kernel's unit).
fn remaining(e: SystemTime, now: SystemTime) -> Duration {
    let d = e.duration_since(now).unwrap_or_default();
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(Duration::from_secs(1))
}

/// `10m`, `permanent`.
pub fn length_str(l: BanLength) -> String {
    match l {
        BanLength::For(d) => format_duration(d),
        BanLength::Permanent => "permanent".into(),
    }
}

#[cfg(test)]
mod tests_support {
    pub(super) use super::*;

    pub(super) use crate::clock::{FakeClock, from_unix_secs};
    pub(super) use crate::enforce::LogEnforcer;
    pub(super) use crate::event::{Record, RecordBody};
    pub(super) use crate::store::SqliteStore;

    pub(super) const T0: u64 = 1_795_000_000; // 2026-11-19

    /// The sshd jail with only the threshold detector, plus `extra` TOML (top-level keys first,
    /// then jail keys after a `#jail` marker line).
    pub(super) fn config_with(max_retry: u32, extra: &str) -> Config {
        let (top, jail) = extra.split_once("#jail\n").unwrap_or((extra, ""));
        Config::parse(
            &format!(
                "{top}\n[allow]\naddresses = [\"192.0.2.10\"]\n[enforce]\nbackend = \"log\"\n[[source]]\nname = \"auth\"\nfile = \"/x\"\n\
                 [[jail]]\nname = \"sshd\"\nsources = [\"auth\"]\nmax_retry = {max_retry}\nfind_time = \"10m\"\nban_time = \"10m\"\nban_time_factor = 2\nban_time_max = \"1h\"\n{jail}\n"
            ),
            None,
        )
        .unwrap()
    }

    pub(super) fn config(max_retry: u32) -> Config {
        config_with(
            max_retry,
            "#jail\nwindow = []\nprefix = false\nenumeration = false\n",
        )
    }

    pub(super) fn worker(max_retry: u32) -> (Worker, FakeClock) {
        worker_with(
            config(max_retry),
            Box::new(SqliteStore::in_memory().unwrap()),
        )
    }

    pub(super) fn worker_with(cfg: Config, store: Box<dyn Store>) -> (Worker, FakeClock) {
        let clock = FakeClock::new(from_unix_secs(T0));
        let w = Worker::new(
            cfg,
            &[],
            Arc::new(clock.clone()),
            store,
            Box::new(LogEnforcer::new()),
            Arc::new(Mutex::new(Vec::new())),
        )
        .unwrap();
        (w, clock)
    }

    pub(super) fn fail(w: &mut Worker, clock: &FakeClock, addr: &str) {
        let dt: chrono::DateTime<chrono::Utc> = clock.now().into();
        let line = format!(
            "{} host sshd[1]: Failed password for invalid user x from {addr} port 4 ssh2",
            dt.format("%b %e %H:%M:%S")
        );
        w.on_event(SourceEvent::Record(Record {
            source: Arc::from("auth"),
            body: RecordBody::Line(line),
        }));
        w.flush();
    }

    pub(super) fn kernel(w: &mut Worker) -> Vec<String> {
        let mut v: Vec<String> = w
            .enforcer
            .list()
            .unwrap()
            .iter()
            .map(|e| e.target.to_string())
            .collect();
        v.sort();
        v
    }

    pub(super) fn line(w: &mut Worker, clock: &FakeClock, msg: &str) {
        let dt: chrono::DateTime<chrono::Utc> = clock.now().into();
        let line = format!("{} host sshd[1]: {msg}", dt.format("%b %e %H:%M:%S"));
        w.on_event(SourceEvent::Record(Record {
            source: Arc::from("auth"),
            body: RecordBody::Line(line),
        }));
        w.flush();
    }

    pub(super) fn fail_user(w: &mut Worker, clock: &FakeClock, addr: &str, user: &str) {
        line(
            w,
            clock,
            &format!("Failed password for {user} from {addr} port 4 ssh2"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;

    #[test]
    fn threshold_ban_expiry_and_escalation_in_simulated_time() {
        let (mut w, clock) = worker(3);
        fail(&mut w, &clock, "203.0.113.7");
        fail(&mut w, &clock, "203.0.113.7");
        assert!(kernel(&mut w).is_empty());
        fail(&mut w, &clock, "203.0.113.7");
        assert_eq!(kernel(&mut w), vec!["203.0.113.7/32"]);
        assert_eq!(w.counters.bans, 1);
        // Ten minutes later the schedule lifts it.
        clock.advance(Duration::from_secs(601));
        w.expire(clock.now());
        w.flush();
        assert!(kernel(&mut w).is_empty());
        // Second offence: 20 minutes; third: 40; fourth: capped at 1h.
        for (level, secs) in [(1u32, 1200u64), (2, 2400), (3, 3600)] {
            for _ in 0..3 {
                fail(&mut w, &clock, "203.0.113.7");
            }
            let a = w
                .active
                .get(&"203.0.113.7/32".parse().unwrap())
                .cloned()
                .expect("banned");
            assert_eq!(a.level, level);
            assert_eq!(a.expires, Some(clock.now() + Duration::from_secs(secs)));
            clock.advance(Duration::from_secs(secs + 1));
            w.expire(clock.now());
            w.flush();
        }
    }

    #[test]
    fn allowlisted_and_successful_logins_are_never_banned() {
        let (mut w, clock) = worker(2);
        for _ in 0..10 {
            fail(&mut w, &clock, "192.0.2.10");
            fail(&mut w, &clock, "127.0.0.1");
        }
        assert!(kernel(&mut w).is_empty());
        // A typo, a successful key login, another typo: the login clears the count.
        fail(&mut w, &clock, "198.51.100.4");
        let dt: chrono::DateTime<chrono::Utc> = clock.now().into();
        let ok = format!(
            "{} host sshd[1]: Accepted publickey for alice from 198.51.100.4 port 5 ssh2: ED25519 SHA256:abc",
            dt.format("%b %e %H:%M:%S")
        );
        w.on_event(SourceEvent::Record(Record {
            source: Arc::from("auth"),
            body: RecordBody::Line(ok),
        }));
        fail(&mut w, &clock, "198.51.100.4");
        assert!(
            kernel(&mut w).is_empty(),
            "a user with a typo either side of a login was banned"
        );
        assert_eq!(w.counters.accepted, 1);
    }

    #[test]
    fn manual_ban_unban_and_reconcile_restores_missing_elements() {
        let (mut w, _clock) = worker(3);
        let r = w.on_request(Request::Ban {
            target: "2001:db8:5::/64".into(),
            seconds: None,
            permanent: true,
            reason: "noisy".into(),
        });
        assert!(r.ok, "{:?}", r.error);
        let r = w.on_request(Request::Ban {
            target: "192.0.2.0/24".into(),
            seconds: Some(60),
            permanent: false,
            reason: String::new(),
        });
        assert!(!r.ok && r.error.unwrap().contains("allowlisted"));
        assert_eq!(kernel(&mut w), vec!["2001:db8:5::/64"]);
        // The kernel loses the element behind our back; reconcile puts it back.
        let t: IpNet = "2001:db8:5::/64".parse().unwrap();
        w.enforcer.apply(&[Change::Remove { target: t }]).unwrap();
        assert!(kernel(&mut w).is_empty());
        w.reconcile();
        assert_eq!(kernel(&mut w), vec!["2001:db8:5::/64"]);
        assert_eq!(w.counters.reconciled_missing, 1);
        let r = w.on_request(Request::Unban {
            target: "2001:db8:5::1234/64".into(),
        });
        assert!(r.ok);
        assert!(kernel(&mut w).is_empty());
        assert!(w.bans_json(w.clock.now()).is_empty());
        let r = w.on_request(Request::Ban {
            target: "not an ip".into(),
            seconds: None,
            permanent: false,
            reason: String::new(),
        });
        assert!(!r.ok);
    }

    #[test]
    fn checkpoints_are_saved_after_the_records_before_them() {
        let (mut w, _clock) = worker(3);
        w.on_event(SourceEvent::Checkpoint {
            key: "file:auth".into(),
            value: "1:2:3".into(),
        });
        assert_eq!(
            w.store.load_checkpoint("file:auth").unwrap(),
            None,
            "saved before flush"
        );
        w.flush();
        assert_eq!(
            w.store.load_checkpoint("file:auth").unwrap().as_deref(),
            Some("1:2:3")
        );
    }
}

#[cfg(test)]
mod detection_tests {
    use super::tests_support::*;

    #[test]
    fn structured_observations_can_ban_on_the_first_one() {
        let cfg = config_with(
            5,
            "#jail\nwindow = []\n[[jail]]\nname = \"scanners\"\nkinds = [\"scan\"]\nmax_retry = 1\nban_time = \"1d\"\n",
        );
        let (mut w, clock) = worker_with(cfg, Box::new(SqliteStore::in_memory().unwrap()));
        let obs = |rule: &str, addr: &str| Observation {
            time: clock.now(),
            addr: addr.parse().unwrap(),
            user: None,
            rule: Arc::from(rule),
            source: Arc::from("firewall"),
        };
        // A kind no jail takes changes nothing; "scan.portscan" is of kind "scan".
        w.on_event(SourceEvent::Observation(obs("decoy.login", "198.51.100.9")));
        w.on_event(SourceEvent::Observation(obs("scanner", "198.51.100.9")));
        w.flush();
        assert!(kernel(&mut w).is_empty());
        w.on_event(SourceEvent::Observation(obs(
            "scan.portscan",
            "198.51.100.9",
        )));
        w.flush();
        assert_eq!(kernel(&mut w), vec!["198.51.100.9/32"]);
        let b = &w.bans_json(clock.now())[0];
        assert_eq!(
            (b["jail"].as_str(), b["remaining_s"].as_u64()),
            (Some("scanners"), Some(86_400))
        );
    }

    #[test]
    fn repeat_offenders_end_up_banned_permanently() {
        let cfg = config_with(
            2,
            "[recidive]\npermanent_after = 2\n#jail\nwindow = []\nprefix = false\nenumeration = false\n",
        );
        let (mut w, clock) = worker_with(cfg, Box::new(SqliteStore::in_memory().unwrap()));
        for round in 0..3 {
            fail(&mut w, &clock, "203.0.113.44");
            fail(&mut w, &clock, "203.0.113.44");
            let a = w
                .active
                .get(&"203.0.113.44/32".parse().unwrap())
                .cloned()
                .expect("banned");
            assert_eq!(a.expires.is_none(), round == 2, "round {round}: {a:?}");
            clock.advance(Duration::from_secs(7200));
            w.expire(clock.now());
            w.flush();
        }
        assert_eq!(
            kernel(&mut w),
            vec!["203.0.113.44/32"],
            "the permanent ban stays"
        );
    }

    #[test]
    fn a_recent_key_login_makes_an_address_trusted() {
        let cfg = config_with(2, "[trust]\nkey_login_ttl = \"1d\"\n#jail\n");
        let (mut w, clock) = worker_with(cfg, Box::new(SqliteStore::in_memory().unwrap()));
        line(
            &mut w,
            &clock,
            "Accepted publickey for admin from 198.51.100.20 port 5 ssh2: ED25519 SHA256:abc",
        );
        for _ in 0..10 {
            fail(&mut w, &clock, "198.51.100.20");
        }
        assert!(
            kernel(&mut w).is_empty(),
            "a trusted admin address was banned"
        );
        assert_eq!(w.counters.trusted, 10);
        // A password login does not make an address trusted.
        line(
            &mut w,
            &clock,
            "Accepted password for bob from 198.51.100.21 port 5 ssh2",
        );
        fail(&mut w, &clock, "198.51.100.21");
        fail(&mut w, &clock, "198.51.100.21");
        assert_eq!(kernel(&mut w), vec!["198.51.100.21/32"]);
    }

    #[test]
    fn low_and_slow_rotating_and_enumerating_sources_are_caught_and_explained() {
        let cfg = config_with(
            5,
            "#jail\nwindow = [{ threshold = 6, window = \"1d\" }]\n[jail.prefix]\nmin_addresses = 4\nwindow = \"1h\"\n[jail.enumeration]\nmin_users = 4\nwindow = \"1d\"\n",
        );
        let (mut w, clock) = worker_with(cfg, Box::new(SqliteStore::in_memory().unwrap()));
        // Low and slow: one failure every 20 minutes never trips 5 in 10m, but trips the day window.
        for _ in 0..5 {
            fail_user(&mut w, &clock, "203.0.113.5", "root"); // root weighs 2
            clock.advance(Duration::from_secs(1200));
        }
        assert!(
            w.active.contains_key(&"203.0.113.5/32".parse().unwrap()),
            "{:?}",
            w.bans_json(clock.now())
        );
        assert_eq!(
            w.active[&"203.0.113.5/32".parse().unwrap()].detector,
            "window"
        );
        // Rotating: 4 addresses of one /24, once each.
        for i in 1..=4 {
            fail(&mut w, &clock, &format!("198.51.100.{i}"));
        }
        assert!(
            kernel(&mut w).contains(&"198.51.100.0/24".to_string()),
            "{:?}",
            kernel(&mut w)
        );
        let e = w.explain("198.51.100.3".parse().unwrap(), clock.now());
        assert_eq!(e["bans"][0]["target"], "198.51.100.0/24", "{e}");
        // Enumeration: 4 names from one address, slowly.
        for u in ["oracle", "postgres", "git", "ubuntu"] {
            fail_user(&mut w, &clock, "2001:db8:77::1", u);
            clock.advance(Duration::from_secs(900));
        }
        let v6 = w
            .active
            .get(&"2001:db8:77::1/128".parse().unwrap())
            .cloned()
            .expect("enumerator banned");
        assert_eq!(v6.detector, "enumeration");
        // Explain tells where an address stands against each detector.
        fail(&mut w, &clock, "192.0.2.200");
        let e = w.explain("192.0.2.200".parse().unwrap(), clock.now());
        let dets = e["jails"][0]["detectors"].as_array().unwrap();
        let threshold = dets.iter().find(|d| d["detector"] == "threshold").unwrap();
        assert_eq!(
            (threshold["value"].as_u64(), threshold["threshold"].as_u64()),
            (Some(1), Some(5))
        );
        assert!(
            dets.iter()
                .any(|d| d["detector"] == "prefix" && d["prefix"] == "192.0.2.0/24")
        );
        assert_eq!(
            e["observations"]["by_rule"][0]["rule"],
            "sshd.failed-password"
        );
        assert!(e["bans"].as_array().unwrap().is_empty());
        let e = w.explain("192.0.2.10".parse().unwrap(), clock.now());
        assert!(e["allowlisted"].as_str().unwrap().contains("config"), "{e}");
    }

    #[test]
    fn detector_state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("r.db");
        let cfg = config_with(
            3,
            "#jail\nwindow = []\nprefix = false\nenumeration = false\n",
        );
        {
            let (mut w, clock) =
                worker_with(cfg.clone(), Box::new(SqliteStore::open(&db).unwrap()));
            fail(&mut w, &clock, "203.0.113.66");
            fail(&mut w, &clock, "203.0.113.66");
        }
        let (mut w, clock) = worker_with(cfg, Box::new(SqliteStore::open(&db).unwrap()));
        let e = w.explain("203.0.113.66".parse().unwrap(), clock.now());
        assert_eq!(e["jails"][0]["detectors"][0]["value"], 2, "{e}");
        fail(&mut w, &clock, "203.0.113.66");
        assert_eq!(
            kernel(&mut w),
            vec!["203.0.113.66/32"],
            "counted failures lost across restart"
        );
    }
}
