//! `ravelin firewall ...`: plan, apply (commit-confirmed), confirm, rollback, status,
//! exposure, scanners.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::config::parse_duration;
use crate::firewall::commit::{self, Ctx};
use crate::firewall::policy::{Policy, load_state_dir};
use crate::firewall::{exposure, guard, nft, ruleset, sockets};

/// `ravelin firewall`.
#[derive(Debug, Args)]
pub struct FirewallArgs {
    /// State dir (default: `state_dir` from the config file, else /var/lib/ravelin).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The nft binary.
    #[arg(long, global = true, default_value = "nft", hide = true)]
    pub nft: PathBuf,
    /// Our nftables table (family inet).
    #[arg(long, global = true, default_value = ruleset::TABLE, hide = true)]
    pub table: String,
    /// What to do.
    #[command(subcommand)]
    pub cmd: FirewallCmd,
}

/// Firewall subcommands.
#[derive(Debug, Subcommand)]
pub enum FirewallCmd {
    /// Show the ruleset the policy makes and a diff against the live table; changes nothing.
    Plan,
    /// Apply the policy atomically; roll back unless `ravelin firewall confirm` comes in time.
    Apply {
        /// Confirmation window (e.g. 60s, 5m).
        #[arg(long, value_name = "DURATION", default_value = "60s")]
        confirm: String,
        /// Keep the new ruleset without waiting for a confirmation.
        #[arg(long)]
        no_confirm: bool,
        /// Apply even if the lockout guard objects.
        #[arg(long)]
        force: bool,
    },
    /// Keep the ruleset applied by the last `apply`.
    Confirm,
    /// Restore the ruleset from before the last `apply`, now.
    Rollback {
        /// Internal (the watcher): wait for that apply's deadline, restore only if still
        /// unconfirmed.
        #[arg(long, value_name = "TOKEN", hide = true)]
        if_unconfirmed: Option<String>,
    },
    /// Whether an apply is waiting for confirmation.
    Status,
    /// At boot: honour a pending apply, and load the last confirmed table if it is gone.
    Boot,
    /// Listening sockets compared with the policy.
    Exposure {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Sources nftables has put into the scanner sets.
    Scanners,
}

/// Run a firewall subcommand.
pub fn run(
    config: Option<&Path>,
    a: &FirewallArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let state_dir = match &a.state_dir {
        Some(d) => d.clone(),
        None => load_state_dir(config).map_err(errors_to_anyhow)?,
    };
    let ctx = Ctx {
        nft: a.nft.clone(),
        table: a.table.clone(),
        state_dir,
        exe: std::env::current_exe()
            .context("cannot find this executable for the rollback watcher")?,
    };
    if !matches!(
        a.cmd,
        FirewallCmd::Confirm | FirewallCmd::Rollback { .. } | FirewallCmd::Boot
    ) {
        if let Some(p) = commit::honour_pending(&ctx)? {
            writeln!(
                out,
                "note: an apply is waiting for `ravelin firewall confirm` ({}s left)",
                p.remaining().as_secs()
            )?;
        }
    }
    match &a.cmd {
        FirewallCmd::Plan => {
            let Some(policy) = policy(config, out)? else {
                return Ok(ExitCode::FAILURE);
            };
            let def = ruleset::table(&policy, &ctx.table);
            nft::check(&ctx.nft, &ctx.table, &def)?;
            let problems = lockout_problems(&policy);
            if problems.is_empty() {
                writeln!(
                    out,
                    "# lockout guard: ok (every SSH session found could log in again)"
                )?;
            } else {
                writeln!(
                    out,
                    "# lockout guard: apply would refuse (--force overrides):"
                )?;
                for p in &problems {
                    writeln!(out, "#   - {p}")?;
                }
            }
            let (planned, canonical) = nft::canonical(&ctx.nft, &ctx.table, &def)?;
            let live = nft::structure(&ctx.nft, &ctx.table)?;
            writeln!(
                out,
                "# ruleset for inet {}{}:",
                ctx.table,
                if canonical {
                    ""
                } else {
                    " (as generated; nft's own form unavailable)"
                }
            )?;
            out.write_all(planned.as_bytes())?;
            writeln!(out)?;
            match live {
                None => writeln!(
                    out,
                    "# live: no table inet {}; apply adds all of the above",
                    ctx.table
                )?,
                Some(live) if live.trim() == planned.trim() => {
                    writeln!(out, "# live: identical; apply changes nothing")?
                }
                Some(live) => {
                    writeln!(
                        out,
                        "# diff against the live table (- live only, + plan only):"
                    )?;
                    for l in crate::firewall::diff(&live, &planned) {
                        if !l.starts_with("  ") {
                            writeln!(out, "{l}")?;
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FirewallCmd::Apply {
            confirm,
            no_confirm,
            force,
        } => {
            let window = if *no_confirm {
                None
            } else {
                Some(parse_duration(confirm).map_err(|e| anyhow::anyhow!("--confirm: {e}"))?)
            };
            let Some(policy) = policy(config, out)? else {
                return Ok(ExitCode::FAILURE);
            };
            let problems = lockout_problems(&policy);
            if !problems.is_empty() {
                let verb = if *force {
                    "applying anyway (--force)"
                } else {
                    "refusing to apply (--force overrides)"
                };
                writeln!(out, "lockout guard: {verb}:")?;
                for p in &problems {
                    writeln!(out, "  - {p}")?;
                }
                if !*force {
                    return Ok(ExitCode::FAILURE);
                }
            }
            let def = ruleset::table(&policy, &ctx.table);
            let applied = commit::apply(&ctx, &def, window)?;
            match applied.pending {
                Some(p) => writeln!(
                    out,
                    "applied inet {}; run `ravelin firewall confirm` within {}s or the previous ruleset comes back",
                    ctx.table,
                    p.remaining().as_secs()
                )?,
                None => writeln!(out, "applied inet {} (no confirmation asked)", ctx.table)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        FirewallCmd::Confirm => {
            if commit::confirm(&ctx)? {
                writeln!(out, "confirmed: the applied ruleset stays")?;
                Ok(ExitCode::SUCCESS)
            } else {
                writeln!(
                    out,
                    "nothing to confirm (no apply is pending; it may have been rolled back already)"
                )?;
                Ok(ExitCode::FAILURE)
            }
        }
        FirewallCmd::Rollback {
            if_unconfirmed: Some(token),
        } => {
            commit::rollback_if_unconfirmed(&ctx, token)?;
            Ok(ExitCode::SUCCESS)
        }
        FirewallCmd::Rollback {
            if_unconfirmed: None,
        } => {
            if commit::rollback(&ctx)? {
                writeln!(out, "restored the ruleset from before the last apply")?;
                Ok(ExitCode::SUCCESS)
            } else {
                writeln!(
                    out,
                    "nothing to roll back to (no apply recorded in {})",
                    commit::dir(&ctx.state_dir).display()
                )?;
                Ok(ExitCode::FAILURE)
            }
        }
        FirewallCmd::Boot => {
            match commit::boot(&ctx)? {
                commit::Boot::Pending(p) => writeln!(
                    out,
                    "an apply is waiting for confirmation ({}s left); left as is",
                    p.remaining().as_secs()
                )?,
                commit::Boot::Restored => {
                    writeln!(out, "loaded the last confirmed table inet {}", ctx.table)?
                }
                commit::Boot::Unchanged => writeln!(out, "nothing to do")?,
            }
            Ok(ExitCode::SUCCESS)
        }
        FirewallCmd::Status => {
            match commit::pending(&ctx)? {
                Some(p) => writeln!(
                    out,
                    "pending: rollback in {}s unless confirmed",
                    p.remaining().as_secs()
                )?,
                None => writeln!(out, "no apply pending")?,
            }
            let live = nft::snapshot(&ctx.nft, &ctx.table)?;
            writeln!(
                out,
                "table inet {}: {}",
                ctx.table,
                if live.is_some() { "live" } else { "absent" }
            )?;
            Ok(ExitCode::SUCCESS)
        }
        FirewallCmd::Exposure { json } => {
            let Some(policy) = policy(config, out)? else {
                return Ok(ExitCode::FAILURE);
            };
            let socks = sockets::read(Path::new("/proc/net"));
            let owners = sockets::owners(Path::new("/proc"));
            let findings = exposure::report(&policy, &socks, &owners, &guard::iface_of);
            if *json {
                writeln!(out, "{}", serde_json::to_string_pretty(&findings)?)?;
            } else {
                for f in &findings {
                    writeln!(
                        out,
                        "{:<12} {:<12} {:<16} {:<14} {}",
                        f.kind,
                        f.service,
                        f.addr.as_deref().unwrap_or("-"),
                        f.process.as_deref().unwrap_or("-"),
                        f.detail
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FirewallCmd::Scanners => {
            for (ip, left) in nft::read_scanners(&ctx.nft, &ctx.table)? {
                let left = left
                    .map(|d| format!("{}s", d.as_secs()))
                    .unwrap_or_else(|| "-".into());
                writeln!(out, "{ip}\t{left}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The policy, or every error printed and `None`.
fn policy(config: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<Option<Policy>> {
    match crate::firewall::load_policy(config) {
        Ok(Some(p)) => Ok(Some(p)),
        Ok(None) => {
            writeln!(out, "no [firewall] table in the config; nothing to do")?;
            Ok(None)
        }
        Err(errs) => {
            writeln!(
                out,
                "the firewall policy has {} error(s); nothing was applied:",
                errs.len()
            )?;
            for (k, m) in errs {
                writeln!(out, "  {k}: {m}")?;
            }
            Ok(None)
        }
    }
}

/// The guard with the real host's evidence.
fn lockout_problems(policy: &Policy) -> Vec<String> {
    let socks = sockets::read(Path::new("/proc/net"));
    let owners = sockets::owners(Path::new("/proc"));
    let env = std::env::var("SSH_CONNECTION").ok();
    let sessions = guard::sessions(env.as_deref(), &socks, &owners);
    let ports = guard::sshd_ports(&socks, &owners);
    guard::check(policy, &sessions, &ports, &guard::iface_of)
}

fn errors_to_anyhow(errs: Vec<(String, String)>) -> anyhow::Error {
    anyhow::anyhow!(
        "{}",
        errs.iter()
            .map(|(k, m)| format!("{k}: {m}"))
            .collect::<Vec<_>>()
            .join("; ")
    )
}
