//! `ravelin alert test`: send a test alert through every configured sink and say how each
//! one went, so a wrong URL or a firewalled SMTP server shows up at install time, not during
//! the first attack.
//!
//! It reads the `[alert]` table of the config file itself (the same parser the validator
//! uses), loads each sink's secrets the way the daemon does, and makes one attempt per sink
//! with the sink's timeout (no retries: the answer should come quickly).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::alert::payload::Context;
use crate::alert::sink::Sink;
use crate::alert::{Alert, parse_alert_config};

/// `ravelin alert`.
#[derive(Debug, Args)]
pub struct AlertArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: AlertCmd,
}

/// Alert subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertCmd {
    /// Send a test alert through every configured sink; exit 1 if any failed.
    Test {
        /// Only this sink (by name, e.g. `webhook0`).
        #[arg(long, value_name = "NAME")]
        sink: Option<String>,
    },
}

/// Run `ravelin alert ...`.
pub fn run(
    config: Option<&Path>,
    args: &AlertArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let AlertCmd::Test { sink: only } = &args.cmd;
    let path = config
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_PATH));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let doc: toml::Value =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let Some(v) = doc.get("alert") else {
        anyhow::bail!(
            "{} has no [alert] section: add an [[alert.sink]]",
            path.display()
        );
    };
    let cfg = parse_alert_config(v).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|(k, m)| format!("  {k}: {m}")).collect();
        anyhow::anyhow!("invalid alert config:\n{}", lines.join("\n"))
    })?;
    let sinks: Vec<_> = cfg
        .sinks
        .iter()
        .filter(|s| only.as_ref().is_none_or(|n| *n == s.name))
        .collect();
    if sinks.is_empty() {
        match only {
            Some(n) => anyhow::bail!("no sink named {n:?} in {}", path.display()),
            None => anyhow::bail!("no [[alert.sink]] in {}", path.display()),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let host = crate::alert::dispatch::hostname();
    let alert = Alert::test(std::time::SystemTime::now());
    let mut failed = 0;
    for sc in sinks {
        let result = match Sink::build(sc) {
            Err(e) => Err(e),
            Ok(s) => {
                let ctx = Context {
                    host: &host,
                    suppressed_before: 0,
                };
                rt.block_on(s.send_once(&alert, &ctx)).map_err(|e| e.reason)
            }
        };
        match result {
            Ok(()) => writeln!(out, "ok    {} ({})", sc.name, sc.kind.as_str())?,
            Err(e) => {
                failed += 1;
                writeln!(out, "FAIL  {} ({}): {e}", sc.name, sc.kind.as_str())?;
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
