//! `ravelin simulate FILE`: the whole pipeline over a log file in log time.
//!
//! The daemon's own [`Worker`] runs with a fake clock that follows the timestamps of the lines
//! (not the wall clock), an in-memory store and the `log` enforcer, so escalation, expiry and
//! every detector behave exactly as they would have live, and nothing on the machine is
//! touched. This is how an operator tries a config on last month's logs, and how the detection
//! benchmark runs.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Context;

use crate::clock::{Clock, FakeClock};
use crate::config::Config;
use crate::daemon::worker::{DecisionRecord, Worker};
use crate::enforce::LogEnforcer;
use crate::event::{Record, RecordBody};
use crate::matcher::Matcher;
use crate::source::{MAX_LINE, SourceEvent};
use crate::store::SqliteStore;

/// Arguments of `ravelin simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The log file to replay (syslog text: auth.log or similar).
    pub file: PathBuf,
    /// One JSON object per decision: time, action, target, duration_s, jail, detector.
    #[arg(long)]
    pub json: bool,
}

/// Flush at least this often even without decisions (observations, expiry).
const FLUSH_EVERY: usize = 4096;

/// Run the simulation, writing decisions (or a summary) to `out`.
pub fn run(cfg: Config, args: &SimulateArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    // RFC 3164 stamps carry no year: the file's modification time anchors them (a log ends
    // near when it was last written).
    let reference = file
        .metadata()
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    let mut rule_sets: Vec<String> = cfg
        .jails
        .iter()
        .filter(|j| j.enabled)
        .flat_map(|j| j.rules.clone())
        .collect();
    rule_sets.sort();
    rule_sets.dedup();
    let timer = Matcher::new(&rule_sets)?;
    let mut sources: Vec<Arc<str>> = Vec::new();
    for j in cfg
        .jails
        .iter()
        .filter(|j| j.enabled && !j.rules.is_empty())
    {
        if let Some(s) = j.sources.first() {
            if !sources.iter().any(|x| **x == **s) {
                sources.push(Arc::from(s.as_str()));
            }
        }
    }
    anyhow::ensure!(
        !sources.is_empty(),
        "the config has no enabled jail with text rules to simulate"
    );

    let clock = FakeClock::new(SystemTime::UNIX_EPOCH);
    let mut worker = Worker::new(
        cfg,
        &[],
        Arc::new(clock.clone()),
        Box::new(SqliteStore::in_memory()?),
        Box::new(LogEnforcer::new()),
        Arc::new(Mutex::new(Vec::new())),
    )?;
    worker.decisions = Some(Vec::new());
    worker.keep_observations = false;

    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(256);
    let (mut lines, mut started, mut since_flush) = (0u64, false, 0usize);
    let mut all: Vec<DecisionRecord> = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        lines += 1;
        let end = buf.len().min(MAX_LINE);
        let line = String::from_utf8_lossy(&buf[..end])
            .trim_end_matches(['\n', '\r'])
            .to_string();
        let body = RecordBody::Line(line);
        if let Some(t) = timer
            .match_body(&body, reference)
            .matched()
            .and_then(|m| m.time)
        {
            if !started || t > clock.now() {
                clock.set(t);
                started = true;
            }
            worker.expire(clock.now());
        }
        if !started {
            continue;
        }
        for s in &sources {
            worker.on_event(SourceEvent::Record(Record {
                source: s.clone(),
                body: body.clone(),
            }));
        }
        since_flush += 1;
        if worker.has_pending() || since_flush >= FLUSH_EVERY {
            worker.flush();
            since_flush = 0;
            emit(&mut worker, args.json, out, &mut all)?;
        }
    }
    worker.flush();
    emit(&mut worker, args.json, out, &mut all)?;
    if !args.json {
        summary(out, lines, &all)?;
    }
    Ok(())
}

fn emit(
    worker: &mut Worker,
    json: bool,
    out: &mut dyn Write,
    all: &mut Vec<DecisionRecord>,
) -> anyhow::Result<()> {
    let Some(d) = worker.decisions.as_mut() else {
        return Ok(());
    };
    for rec in d.drain(..) {
        if json {
            serde_json::to_writer(&mut *out, &rec)?;
            writeln!(out)?;
        } else {
            all.push(rec);
        }
    }
    Ok(())
}

fn summary(out: &mut dyn Write, lines: u64, all: &[DecisionRecord]) -> anyhow::Result<()> {
    let bans: Vec<&DecisionRecord> = all.iter().filter(|d| d.action == "ban").collect();
    writeln!(
        out,
        "{lines} lines replayed in log time: {} bans, {} unbans",
        bans.len(),
        all.len() - bans.len()
    )?;
    let mut by: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for b in &bans {
        *by.entry((b.jail.clone(), b.detector.clone())).or_default() += 1;
    }
    for ((jail, det), n) in by {
        writeln!(out, "  jail {jail:<12} detector {det:<12} {n:>7} bans")?;
    }
    let prefixes = bans
        .iter()
        .filter(|b| {
            b.target.contains('/') && !b.target.ends_with("/32") && !b.target.ends_with("/128")
        })
        .count();
    writeln!(out, "  {prefixes} of the bans cover a whole prefix")?;
    writeln!(out, "first bans:")?;
    for b in bans.iter().take(10) {
        let len = b
            .duration_s
            .map(|s| crate::config::format_duration(std::time::Duration::from_secs(s)))
            .unwrap_or_else(|| "permanent".into());
        writeln!(
            out,
            "  {} {:<40} {:>8} ({}, {})",
            b.time, b.target, len, b.jail, b.detector
        )?;
    }
    Ok(())
}
