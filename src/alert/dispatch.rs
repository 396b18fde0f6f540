//! The alert dispatcher: the only part of [`crate::alert`] that does I/O.
//!
//! ```text
//!  daemon ──emit (try_send)──▶ [bounded queue] ──▶ policy task ──▶ [bounded queue] ─▶ sink worker ─▶ webhook
//!                                                  (push / tick)  └▶ [bounded queue] ─▶ sink worker ─▶ email
//! ```
//!
//! [`AlertHandle::emit`] never waits: a full queue drops the event and counts it, so a dead
//! sink can never hold up a ban. Each sink has its own worker and queue, so a slow SMTP server
//! does not delay the webhook. Workers apply the sink's rate limit (a sliding hour; digests
//! are exempt, they are one per interval by design), then deliver with a timeout per attempt
//! and exponential backoff between attempts. When every handle is dropped the policy task
//! flushes open campaigns and the digest, and waits (bounded) for the workers to finish.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::AlertConfig;
use super::payload::Context;
use super::policy::{Alert, AlertShape, Policy};
use super::sink::Sink;
use super::{AlertEvent, Severity};
use crate::clock::Clock;
use crate::metrics::Exposition;

/// Metric names (GUIDE habit 8: constants, bounded labels: `sink` comes from the config).
pub const METRIC_SENT: &str = "ravelin_alerts_sent_total";
/// Deliveries that failed after every retry.
pub const METRIC_FAILED: &str = "ravelin_alerts_failed_total";
/// Alerts not sent on purpose (`reason`: duplicate, rate_limit).
pub const METRIC_SUPPRESSED: &str = "ravelin_alerts_suppressed_total";
/// Events or alerts dropped because a queue was full (`queue`: input, sink).
pub const METRIC_DROPPED: &str = "ravelin_alerts_dropped_total";
/// Events folded into a campaign or a digest (`into`: campaign, digest).
pub const METRIC_FOLDED: &str = "ravelin_alert_events_folded_total";

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// The sink's name (from the config).
    pub name: String,
    /// Alerts delivered.
    pub sent: AtomicU64,
    /// Alerts that failed after every retry (or could not be sent: sink not built).
    pub failed: AtomicU64,
    /// Retries made.
    pub retries: AtomicU64,
    /// Alerts dropped by the rate limit.
    pub rate_limited: AtomicU64,
    /// Alerts dropped because the sink's queue was full.
    pub dropped: AtomicU64,
}

/// Counters the daemon reads for metrics and status. Plain atomics, updated by the tasks.
#[derive(Debug, Default)]
pub struct AlertCounters {
    /// Events accepted into the input queue.
    pub received: AtomicU64,
    /// Events dropped because the input queue was full.
    pub dropped: AtomicU64,
    /// Events suppressed as duplicates.
    pub duplicates: AtomicU64,
    /// Ban events folded into a campaign alert.
    pub grouped: AtomicU64,
    /// Events below `min_severity`, kept for the digest.
    pub digested: AtomicU64,
    /// Per sink, in config order.
    pub sinks: Vec<SinkCounters>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CounterSnapshot {
    /// Events accepted.
    pub received: u64,
    /// Deliveries that succeeded (all sinks).
    pub sent: u64,
    /// Deliveries that failed after retries (all sinks).
    pub failed: u64,
    /// Duplicates plus rate-limited alerts.
    pub suppressed: u64,
    /// Dropped because a queue (input or a sink's) was full.
    pub dropped: u64,
    /// Folded into campaigns.
    pub grouped: u64,
    /// Sent to the digest.
    pub digested: u64,
    /// Retries made (all sinks).
    pub retries: u64,
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn inc(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

impl AlertCounters {
    fn new(cfg: &AlertConfig) -> Self {
        Self {
            sinks: cfg
                .sinks
                .iter()
                .map(|s| SinkCounters {
                    name: s.name.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Totals.
    pub fn snapshot(&self) -> CounterSnapshot {
        let sum =
            |f: fn(&SinkCounters) -> &AtomicU64| self.sinks.iter().map(|s| get(f(s))).sum::<u64>();
        CounterSnapshot {
            received: get(&self.received),
            sent: sum(|s| &s.sent),
            failed: sum(|s| &s.failed),
            suppressed: get(&self.duplicates) + sum(|s| &s.rate_limited),
            dropped: get(&self.dropped) + sum(|s| &s.dropped),
            grouped: get(&self.grouped),
            digested: get(&self.digested),
            retries: sum(|s| &s.retries),
        }
    }

    /// Append the alert families to a Prometheus exposition.
    pub fn render(&self, e: &mut Exposition) {
        e.family(METRIC_SENT, "counter", "Alerts delivered, per sink.");
        for s in &self.sinks {
            e.sample(METRIC_SENT, &[("sink", &s.name)], get(&s.sent) as f64);
        }
        e.family(
            METRIC_FAILED,
            "counter",
            "Alert deliveries that failed after every retry, per sink.",
        );
        for s in &self.sinks {
            e.sample(METRIC_FAILED, &[("sink", &s.name)], get(&s.failed) as f64);
        }
        e.family(
            METRIC_SUPPRESSED,
            "counter",
            "Alerts not sent on purpose: duplicates and rate limits.",
        );
        e.sample(
            METRIC_SUPPRESSED,
            &[("reason", "duplicate")],
            get(&self.duplicates) as f64,
        );
        let limited: u64 = self.sinks.iter().map(|s| get(&s.rate_limited)).sum();
        e.sample(
            METRIC_SUPPRESSED,
            &[("reason", "rate_limit")],
            limited as f64,
        );
        e.family(
            METRIC_DROPPED,
            "counter",
            "Alert events dropped because a queue was full.",
        );
        e.sample(
            METRIC_DROPPED,
            &[("queue", "input")],
            get(&self.dropped) as f64,
        );
        let sink_drops: u64 = self.sinks.iter().map(|s| get(&s.dropped)).sum();
        e.sample(METRIC_DROPPED, &[("queue", "sink")], sink_drops as f64);
        e.family(
            METRIC_FOLDED,
            "counter",
            "Alert events folded into a campaign or a digest.",
        );
        e.sample(
            METRIC_FOLDED,
            &[("into", "campaign")],
            get(&self.grouped) as f64,
        );
        e.sample(
            METRIC_FOLDED,
            &[("into", "digest")],
            get(&self.digested) as f64,
        );
    }
}

/// What the daemon holds: cheap to clone, [`AlertHandle::emit`] never blocks.
#[derive(Debug, Clone)]
pub struct AlertHandle {
    tx: mpsc::Sender<AlertEvent>,
    counters: Arc<AlertCounters>,
}

impl AlertHandle {
    /// Queue an event. Returns `false` (and counts it) when the queue is full or the
    /// dispatcher is gone; never waits.
    pub fn emit(&self, ev: AlertEvent) -> bool {
        match self.tx.try_send(ev) {
            Ok(()) => {
                inc(&self.counters.received, 1);
                true
            }
            Err(_) => {
                inc(&self.counters.dropped, 1);
                false
            }
        }
    }

    /// The counters (shared with the dispatcher).
    pub fn counters(&self) -> &Arc<AlertCounters> {
        &self.counters
    }
}

/// How long shutdown waits for the sink workers to finish what is queued.
const DRAIN: Duration = Duration::from_secs(15);

/// Start the dispatcher on the current tokio runtime. Sinks whose secrets cannot be read are
/// logged (by name and secret location) and count every alert for them as failed. Drop every
/// [`AlertHandle`] to stop; await the returned task to let it flush (bounded by a drain
/// timeout).
pub fn spawn(cfg: &AlertConfig, clock: Arc<dyn Clock>) -> (AlertHandle, JoinHandle<()>) {
    let counters = Arc::new(AlertCounters::new(cfg));
    let (tx, rx) = mpsc::channel(cfg.queue);
    let host: Arc<str> = hostname().into();
    let mut outs = Vec::new();
    let mut workers = Vec::new();
    for (i, sc) in cfg.sinks.iter().enumerate() {
        let sink = Sink::build(sc);
        if let Err(e) = &sink {
            tracing::warn!(sink = %sc.name, error = %e, "alert sink not usable; its alerts will count as failed");
        }
        let (stx, srx) = mpsc::channel(cfg.queue.min(256));
        outs.push(Route {
            tx: stx,
            min_severity: sc.min_severity,
            digest: sc.digest,
        });
        workers.push(tokio::spawn(worker(
            sink,
            sc.max_per_hour,
            srx,
            counters.clone(),
            i,
            host.clone(),
        )));
    }
    let policy = Policy::new(cfg, clock.now());
    let task = tokio::spawn(run(rx, policy, outs, workers, clock, counters.clone()));
    (AlertHandle { tx, counters }, task)
}

/// This machine's name for alert texts.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| super::clean_summary(h.trim()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

struct Route {
    tx: mpsc::Sender<Alert>,
    min_severity: Option<Severity>,
    digest: bool,
}

async fn run(
    mut rx: mpsc::Receiver<AlertEvent>,
    mut policy: Policy,
    outs: Vec<Route>,
    workers: Vec<JoinHandle<()>>,
    clock: Arc<dyn Clock>,
    counters: Arc<AlertCounters>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let out = tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => policy.push(&ev, clock.now()),
                None => break,
            },
            _ = tick.tick() => policy.tick(clock.now()),
        };
        sync_tally(&policy, &counters);
        fan_out(out, &outs, &counters);
    }
    let out = policy.flush(clock.now());
    sync_tally(&policy, &counters);
    fan_out(out, &outs, &counters);
    drop(outs);
    let drain = async {
        for w in workers {
            let _ = w.await;
        }
    };
    if tokio::time::timeout(DRAIN, drain).await.is_err() {
        tracing::warn!("alert sinks did not finish within {DRAIN:?}; pending alerts are lost");
    }
}

fn sync_tally(policy: &Policy, c: &AlertCounters) {
    c.duplicates
        .store(policy.tally.suppressed, Ordering::Relaxed);
    c.grouped.store(policy.tally.grouped, Ordering::Relaxed);
    c.digested.store(policy.tally.digested, Ordering::Relaxed);
}

fn fan_out(alerts: Vec<Alert>, outs: &[Route], counters: &AlertCounters) {
    for a in alerts {
        for (i, r) in outs.iter().enumerate() {
            let wanted = match a.shape {
                AlertShape::Digest => r.digest,
                _ => r.min_severity.is_none_or(|m| a.severity >= m),
            };
            if wanted && r.tx.try_send(a.clone()).is_err() {
                inc(&counters.sinks[i].dropped, 1);
            }
        }
    }
}

/// A sliding one-hour window of send times.
#[derive(Debug)]
pub struct RateLimit {
    max: usize,
    sent: VecDeque<Instant>,
}

impl RateLimit {
    /// At most `per_hour` alerts in any hour.
    pub fn new(per_hour: u32) -> Self {
        Self {
            max: per_hour.max(1) as usize,
            sent: VecDeque::new(),
        }
    }

    /// Whether one more may go at `now` (and if so, count it).
    pub fn allow(&mut self, now: Instant) -> bool {
        while let Some(t) = self.sent.front() {
            if now.duration_since(*t) >= Duration::from_secs(3600) {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        if self.sent.len() < self.max {
            self.sent.push_back(now);
            true
        } else {
            false
        }
    }
}

async fn worker(
    sink: Result<Sink, String>,
    per_hour: u32,
    mut rx: mpsc::Receiver<Alert>,
    counters: Arc<AlertCounters>,
    index: usize,
    host: Arc<str>,
) {
    let c = &counters.sinks[index];
    let mut limit = RateLimit::new(per_hour);
    let mut limited_since_last = 0u64;
    while let Some(alert) = rx.recv().await {
        if alert.shape != AlertShape::Digest && !limit.allow(Instant::now()) {
            inc(&c.rate_limited, 1);
            limited_since_last += 1;
            continue;
        }
        let sink = match &sink {
            Ok(s) => s,
            Err(_) => {
                inc(&c.failed, 1);
                continue;
            }
        };
        let ctx = Context {
            host: &host,
            suppressed_before: limited_since_last,
        };
        let (attempts, result) = sink.send(&alert, &ctx).await;
        inc(&c.retries, u64::from(attempts.saturating_sub(1)));
        match result {
            Ok(()) => {
                inc(&c.sent, 1);
                limited_since_last = 0;
            }
            Err(e) => {
                inc(&c.failed, 1);
                tracing::warn!(sink = %c.name, attempts, error = %e, "alert delivery failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_is_a_sliding_hour() {
        let mut r = RateLimit::new(2);
        let t = Instant::now();
        assert!(r.allow(t));
        assert!(r.allow(t + Duration::from_secs(10)));
        assert!(!r.allow(t + Duration::from_secs(20)));
        assert!(r.allow(t + Duration::from_secs(3600)));
        assert!(!r.allow(t + Duration::from_secs(3605)));
        assert!(r.allow(t + Duration::from_secs(3610)));
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_blocking() {
        let cfg = AlertConfig {
            queue: 2,
            ..Default::default()
        };
        let counters = Arc::new(AlertCounters::new(&cfg));
        let (tx, _rx) = mpsc::channel(cfg.queue);
        let h = AlertHandle { tx, counters };
        let ev = || {
            AlertEvent::new(
                super::super::AlertKind::Health,
                Severity::High,
                std::time::SystemTime::now(),
                "x",
            )
        };
        assert!(h.emit(ev()) && h.emit(ev()));
        assert!(!h.emit(ev()));
        let s = h.counters().snapshot();
        assert_eq!((s.received, s.dropped), (2, 1));
    }
}
