//! `ravelin audit`: run the posture checks and print a table (or JSON), exit by severity.
//!
//! Exit status: 0 when no failure reaches `--fail-on` (or no `--fail-on` was given), 1 when
//! one does, 2 for usage errors (clap) and unreadable waivers. Warnings, waived results and
//! "could not evaluate" never change the exit status: they are printed, and a gate that
//! wants them strict can read the JSON.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::audit::{self, Ctx, Report, Severity, Status};
use crate::clock::{Clock, SystemClock};

/// Arguments of `ravelin audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Machine-readable output (one JSON document).
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when a check at or above this severity fails.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<Severity>,
    /// Audit a mounted or fixture filesystem instead of the live system (checks that need a
    /// running kernel or daemon report "not applicable").
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Deadline per check, in seconds (external commands get the same bound).
    #[arg(long, default_value_t = 2.5, value_name = "SECONDS")]
    pub timeout: f64,
    /// Only checks whose id starts with this prefix (e.g. `ssh.`).
    #[arg(long, value_name = "PREFIX")]
    pub only: Option<String>,
    /// The main sshd config, as a path on the audited system.
    #[arg(long, default_value = "/etc/ssh/sshd_config", value_name = "FILE")]
    pub sshd_config: PathBuf,
    /// The sshd binary used for `sshd -T` on a live system.
    #[arg(long, default_value = "/usr/sbin/sshd", value_name = "PATH")]
    pub sshd: PathBuf,
    /// Show the evidence of passing checks too.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Runs the audit.
pub fn run(a: &AuditArgs, config: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if !(a.timeout > 0.0 && a.timeout <= 600.0) {
        anyhow::bail!("--timeout must be between 0 and 600 seconds");
    }
    let timeout = Duration::from_secs_f64(a.timeout);
    let mut ctx = match &a.root {
        Some(r) => {
            if !r.is_dir() {
                anyhow::bail!("--root {}: not a directory", r.display());
            }
            Ctx::rooted(r, timeout)
        }
        None => Ctx::live(timeout),
    };
    ctx.sshd_config = a.sshd_config.clone();
    if let Ok(cfg) = crate::config::Config::load(config) {
        ctx.control_socket = cfg.control_socket;
    }
    ctx.sshd = a.sshd.clone();
    let waivers = match audit::load_waivers(config) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("ravelin: waivers: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let today = chrono::DateTime::<chrono::Utc>::from(SystemClock.now()).date_naive();
    let report = audit::run(&ctx, &waivers, today, a.only.as_deref());
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        print_table(out, &report, a.verbose)?;
    }
    let failed = a.fail_on.is_some_and(|s| report.fails_at(s));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_table(out: &mut dyn Write, r: &Report, verbose: bool) -> anyhow::Result<()> {
    writeln!(
        out,
        "ravelin audit of {} ({}), {} checks in {} ms",
        r.root,
        if r.live { "live system" } else { "files only" },
        r.results.len(),
        r.duration_ms
    )?;
    writeln!(
        out,
        "{:<7} {:<9} {:<27} REASON",
        "RESULT", "SEVERITY", "CHECK"
    )?;
    for c in &r.results {
        writeln!(
            out,
            "{:<7} {:<9} {:<27} {}",
            c.status.label(),
            c.severity.label(),
            c.id,
            c.reason
        )?;
        if let Some(w) = &c.waiver {
            writeln!(
                out,
                "{:<45}waived until {} ({}): {}",
                "",
                w.expires,
                w.original.label(),
                w.reason
            )?;
        }
        let show = verbose || matches!(c.status, Status::Fail | Status::Warn | Status::Error);
        if show {
            for e in c.evidence.iter().take(if verbose { usize::MAX } else { 3 }) {
                let at = e
                    .location
                    .as_deref()
                    .map(|l| format!(" @ {l}"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:<45}{}: {}{at}",
                    "",
                    e.source,
                    e.value.as_deref().unwrap_or("")
                )?;
            }
            if matches!(c.status, Status::Fail | Status::Warn) {
                writeln!(out, "{:<45}fix: {}", "", c.remediation)?;
            }
        }
    }
    writeln!(
        out,
        "{} pass, {} fail, {} warn, {} waived, {} n/a, {} could not evaluate",
        r.count(Status::Pass),
        r.count(Status::Fail),
        r.count(Status::Warn),
        r.count(Status::Waived),
        r.count(Status::NotApplicable),
        r.count(Status::Error)
    )?;
    Ok(())
}
