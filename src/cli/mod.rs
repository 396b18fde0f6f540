//! Subcommands. The only module that prints to stdout.
//!
//! Every subcommand accepts `--config FILE` before or after its name (a global flag) and finds
//! the control socket and state from that config, so `ravelin --config x bans` and
//! `ravelin bans --config x` talk to the same daemon.

pub mod alert;
pub mod audit;
pub mod decoy;
pub mod firewall;
pub mod harden;
pub mod sessions;
pub mod simulate;
pub mod test_rules;
pub mod top;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::config::{Config, parse_duration};
use crate::daemon::control::{self, Reply, Request};

/// ravelin: a layered defense for internet-facing Linux servers.
#[derive(Debug, Parser)]
#[command(name = "ravelin", version, about, propagate_version = true)]
pub struct Cli {
    /// Config file (default /etc/ravelin/ravelin.toml; built-in default if that is absent).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// All subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (SIGHUP reloads the config, SIGTERM stops).
    Run,
    /// Validate the config and report every error; exit 1 if there are any.
    CheckConfig,
    /// Daemon state: sources, jails, counters.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Active bans.
    Bans {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Ban an address or prefix by hand (still subject to the allowlist).
    Ban {
        /// Address or CIDR, e.g. 203.0.113.7 or 203.0.113.0/24.
        target: String,
        /// How long: 90s, 10m, 1h, 30d, or "permanent" (default 1h).
        #[arg(long = "for", value_name = "DURATION")]
        length: Option<String>,
        /// Why (stored with the ban).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a ban.
    Unban {
        /// Address or CIDR.
        target: String,
    },
    /// Jails with their settings and state.
    Jails {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run the rules over a log file and report matches (like fail2ban-regex).
    TestRules(test_rules::TestRulesArgs),
    /// Replay a log file through the whole pipeline in log time; nothing is touched.
    Simulate(simulate::SimulateArgs),
    /// The default-deny firewall: plan, apply (commit-confirmed), confirm, rollback.
    Firewall(firewall::FirewallArgs),
    /// Prove the layers are effective: a synthetic ban must reach the kernel and go again.
    Selftest {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Alerts: `alert test` sends a test alert through every configured sink.
    Alert(alert::AlertArgs),
    /// The review: attempts and bans over time, top sources, near misses, threshold suggestions.
    Report {
        /// How far back.
        #[arg(long, default_value = "7d")]
        since: String,
        /// Also write one self-contained HTML file (SVG charts, no scripts).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// A live view: rates, jails, attempts arriving now, recent bans (Ctrl-C quits).
    Top(top::TopArgs),
    /// What ravelin knows about an address, and why it did or did not ban it.
    Explain {
        /// The address.
        addr: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Posture audit: effective state with evidence; exit 1 by --fail-on severity.
    Audit(audit::AuditArgs),
    /// Write a hardening drop-in (ssh), show the diff, validate it with the real daemon.
    Harden(harden::HardenArgs),
    /// The SSH decoy (honeypot): `decoy serve` runs it in the foreground.
    Decoy(decoy::DecoyArgs),
    /// The decoy's sessions: source, client, logins, commands, stages, recording.
    Sessions(sessions::SessionsArgs),
    /// Play back a decoy session's recording in the terminal.
    Replay(sessions::ReplayArgs),
}

/// Where the decoy's events file is when neither `--events` nor the config says.
pub const DEFAULT_DECOY_EVENTS: &str = "/var/log/ravelin/decoy.json";
/// Where the decoy's recordings are when neither `--recordings` nor the config says.
pub const DEFAULT_DECOY_RECORDINGS: &str = "/var/lib/ravelin/decoy/recordings";

/// The decoy's events file and recordings directory: the command-line overrides, else the
/// defaults. (The one place to take them from the `[honeypot]` config instead.)
fn decoy_paths(cli: &Cli, events: Option<&Path>, recordings: Option<&Path>) -> (PathBuf, PathBuf) {
    // The `[honeypot]` section names both; flags override; the defaults match its defaults.
    let hp = Config::load(cli.config.as_deref())
        .ok()
        .and_then(|c| c.honeypot);
    let (cfg_events, cfg_rec) = match &hp {
        Some(h) => (h.events_file.clone(), h.data_dir.join("recordings")),
        None => (
            PathBuf::from(DEFAULT_DECOY_EVENTS),
            PathBuf::from(DEFAULT_DECOY_RECORDINGS),
        ),
    };
    (
        events.map_or(cfg_events, Path::to_owned),
        recordings.map_or(cfg_rec, Path::to_owned),
    )
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Simulate(_)));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match dispatch(&cli, &mut out) {
        Ok(code) => code,
        Err(e) => {
            let _ = out.flush();
            eprintln!("ravelin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(quiet: bool) {
    // The daemon logs at info; offline tools (simulate) only warn, their output is stdout.
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAVELIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    Ok(Config::load(cli.config.as_deref())?)
}

fn dispatch(cli: &Cli, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Run => crate::daemon::run(cli.config.as_deref()).map(|()| ExitCode::SUCCESS),
        Command::CheckConfig => {
            let cfg = load(cli)?;
            let origin = cfg
                .origin
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in default (no config file)".into());
            writeln!(out, "config ok: {origin}")?;
            // Sinks are shown with where their secrets live, never the secrets.
            for line in cfg.alert.to_string().lines() {
                writeln!(out, "  {line}")?;
            }
            writeln!(
                out,
                "  sources: {}",
                cfg.sources
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            for j in &cfg.jails {
                writeln!(
                    out,
                    "  jail {}: {} failures in {} -> ban {} (x{} per repeat, max {}){}",
                    j.name,
                    j.max_retry,
                    crate::config::format_duration(j.find_time),
                    crate::daemon::worker::length_str(j.ban_time),
                    j.ban_time_factor,
                    crate::config::format_duration(j.ban_time_max),
                    if j.enabled { "" } else { " [disabled]" }
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => {
            let data = ask(cli, &Request::Status)?;
            if *json {
                print_json(out, &data)?;
            } else {
                print_status(out, &data)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bans { json } => {
            let data = ask(cli, &Request::Bans)?;
            if *json {
                print_json(out, &data)?;
            } else {
                print_bans(out, &data)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Jails { json } => {
            let data = ask(cli, &Request::Jails)?;
            if *json {
                print_json(out, &data)?;
            } else {
                for j in data.as_array().into_iter().flatten() {
                    writeln!(
                        out,
                        "{}: {} failures in {} -> ban {} (x{}, max {}); sources {}; tracked {}; active bans {}",
                        s(&j["name"]),
                        j["max_retry"],
                        s(&j["find_time"]),
                        s(&j["ban_time"]),
                        j["ban_time_factor"],
                        s(&j["ban_time_max"]),
                        j["sources"]
                            .as_array()
                            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","))
                            .unwrap_or_default(),
                        j["tracked"],
                        j["active_bans"]
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ban {
            target,
            length,
            reason,
        } => {
            let (seconds, permanent) = match length.as_deref() {
                None => (None, false),
                Some("permanent") => (None, true),
                Some(d) => (
                    Some(
                        parse_duration(d)
                            .map_err(|e| anyhow::anyhow!("--for: {e}"))?
                            .as_secs(),
                    ),
                    false,
                ),
            };
            let data = ask(
                cli,
                &Request::Ban {
                    target: target.clone(),
                    seconds,
                    permanent,
                    reason: reason.clone(),
                },
            )?;
            writeln!(
                out,
                "banned {} for {}",
                s(&data["target"]),
                s(&data["length"])
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Unban { target } => {
            let data = ask(
                cli,
                &Request::Unban {
                    target: target.clone(),
                },
            )?;
            if data["was_banned"].as_bool() == Some(true) {
                writeln!(out, "unbanned {}", s(&data["target"]))?;
            } else {
                writeln!(
                    out,
                    "{} was not banned (removed from the kernel set if it was there)",
                    s(&data["target"])
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(a) => audit::run(a, cli.config.as_deref(), out),
        Command::Harden(a) => harden::run(a, out),
        Command::Decoy(a) => decoy::run(a, out),
        Command::Sessions(a) => {
            let (events, recordings) =
                decoy_paths(cli, a.events.as_deref(), a.recordings.as_deref());
            sessions::run_sessions(a, &events, &recordings, out)
        }
        Command::Replay(a) => {
            let (_, recordings) = decoy_paths(cli, None, a.recordings.as_deref());
            sessions::run_replay(a, &recordings, out)
        }
        Command::TestRules(a) => test_rules::run(a, out).map(|()| ExitCode::SUCCESS),
        Command::Selftest { json } => {
            let cfg = load(cli)?;
            let reply = control::call(&control::socket_path(&cfg), &Request::Selftest)?;
            let data = reply.data.clone().unwrap_or(Value::Null);
            if *json {
                print_json(out, &data)?;
            } else {
                for st in data["steps"].as_array().into_iter().flatten() {
                    let mark = if st["ok"].as_bool() == Some(true) {
                        "ok  "
                    } else {
                        "FAIL"
                    };
                    writeln!(out, "{mark} {:<16} {}", s(&st["step"]), s(&st["detail"]))?;
                }
            }
            if reply.ok {
                Ok(ExitCode::SUCCESS)
            } else {
                anyhow::bail!(
                    "{}",
                    reply.error.unwrap_or_else(|| "selftest failed".into())
                )
            }
        }
        Command::Report { since, html, json } => {
            let cfg = load(cli)?;
            let back = parse_duration(since).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
            let now = std::time::SystemTime::now();
            let from = now.checked_sub(back).unwrap_or(std::time::UNIX_EPOCH);
            let db = cfg.db_path();
            anyhow::ensure!(
                db.exists(),
                "no store at {} (has `ravelin run` used this config?)",
                db.display()
            );
            let mut store = crate::store::SqliteStore::open(&db)?;
            use crate::store::Store as _;
            let bans = store.bans_since(from)?;
            let obs = store.observations_since(from, 2_000_000)?;
            let mut r = crate::report::build(&bans, &obs, from, now);
            if let Some(h) = &cfg.honeypot {
                let q = crate::honeypot::sessions::Query {
                    since: Some(from),
                    ..Default::default()
                };
                match crate::honeypot::sessions::load_sessions(&h.events_file, None, &q) {
                    Ok(s) => crate::report::add_decoy(&mut r, &s.sessions),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!("decoy events {}: {e}", h.events_file.display()),
                }
            }
            if let Some(path) = html {
                std::fs::write(path, crate::report::html::render(&r))
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            }
            if *json {
                print_json(out, &serde_json::to_value(&r)?)?;
            } else {
                out.write_all(crate::report::text(&r).as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Top(a) => {
            let cfg = load(cli)?;
            top::run(&control::socket_path(&cfg), a, out).map(|()| ExitCode::SUCCESS)
        }
        Command::Simulate(a) => simulate::run(load(cli)?, a, out).map(|()| ExitCode::SUCCESS),
        Command::Firewall(a) => firewall::run(cli.config.as_deref(), a, out),
        Command::Alert(a) => alert::run(cli.config.as_deref(), a, out),
        Command::Explain { addr, json } => {
            let data = ask(
                cli,
                &Request::Explain {
                    target: addr.clone(),
                },
            )?;
            if *json {
                print_json(out, &data)?;
            } else {
                print_explain(out, &data)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn ask(cli: &Cli, req: &Request) -> anyhow::Result<Value> {
    let cfg = load(cli)?;
    let Reply { ok, data, error } = control::call(&control::socket_path(&cfg), req)?;
    if ok {
        Ok(data.unwrap_or(Value::Null))
    } else {
        anyhow::bail!("{}", error.unwrap_or_else(|| "the daemon refused".into()))
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_json(out: &mut dyn Write, v: &Value) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    writeln!(out)?;
    Ok(())
}

fn print_bans(out: &mut dyn Write, data: &Value) -> anyhow::Result<()> {
    let list = data.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        writeln!(out, "no active bans")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<40} {:<12} {:<12} {:>5} {:<20} {:>10}  REASON",
        "TARGET", "JAIL", "DETECTOR", "LEVEL", "EXPIRES", "LEFT"
    )?;
    for b in list {
        let left = b["remaining_s"]
            .as_u64()
            .map(|x| crate::config::format_duration(std::time::Duration::from_secs(x)))
            .unwrap_or_else(|| "never".into());
        let expires = if b["expires"].is_null() {
            "permanent".into()
        } else {
            s(&b["expires"])
        };
        writeln!(
            out,
            "{:<40} {:<12} {:<12} {:>5} {:<20} {:>10}  {}",
            s(&b["target"]),
            s(&b["jail"]),
            s(&b["detector"]),
            b["level"].as_u64().unwrap_or(0),
            expires,
            left,
            s(&b["reason"])
        )?;
    }
    Ok(())
}

fn print_explain(out: &mut dyn Write, d: &Value) -> anyhow::Result<()> {
    writeln!(out, "{}", s(&d["address"]))?;
    if let Some(why) = d["allowlisted"].as_str() {
        writeln!(out, "  allowlisted: never banned ({why})")?;
    }
    if let Some(t) = d["trusted_until"].as_str() {
        writeln!(out, "  trusted until {t} (recent key login)")?;
    }
    let bans = d["bans"].as_array().cloned().unwrap_or_default();
    if bans.is_empty() {
        writeln!(out, "  not banned")?;
    }
    for b in &bans {
        let until = if b["expires"].is_null() {
            "permanently".to_string()
        } else {
            format!("until {}", s(&b["expires"]))
        };
        writeln!(
            out,
            "  BANNED as {} {until} by jail {} (detector {}, level {}): {}",
            s(&b["target"]),
            s(&b["jail"]),
            s(&b["detector"]),
            b["level"],
            s(&b["reason"])
        )?;
    }
    let perm = d["permanent_after"]
        .as_u64()
        .map(|n| format!(", permanent after {n}"))
        .unwrap_or_default();
    writeln!(
        out,
        "  earlier bans: {}{perm}; a next ban would last {}",
        d["prior_bans"],
        s(&d["next_ban_length"])
    )?;
    for j in d["jails"].as_array().into_iter().flatten() {
        writeln!(out, "  jail {}:", s(&j["jail"]))?;
        for det in j["detectors"].as_array().into_iter().flatten() {
            let scope = det["prefix"]
                .as_str()
                .map(|p| format!(" [{p}]"))
                .unwrap_or_default();
            let (v, t) = (
                det["value"].as_f64().unwrap_or(0.0),
                det["threshold"].as_f64().unwrap_or(0.0),
            );
            let state = if v >= t && t > 0.0 {
                "AT THRESHOLD".to_string()
            } else {
                format!("{} below", fmt_num(t - v))
            };
            writeln!(
                out,
                "    {:<12} {:>6} / {:<6} {} in {}{scope}: {state}",
                s(&det["detector"]),
                fmt_num(v),
                fmt_num(t),
                s(&det["unit"]),
                s(&det["window"])
            )?;
        }
    }
    let o = &d["observations"];
    writeln!(out, "  observations (newest {} kept):", o["total_shown"])?;
    for r in o["by_rule"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "    {:<36} {:>6}  {} .. {}",
            s(&r["rule"]),
            r["count"],
            s(&r["first"]),
            s(&r["last"])
        )?;
    }
    for r in o["recent"].as_array().into_iter().flatten().take(10) {
        writeln!(
            out,
            "    {} {:<36} user={}",
            s(&r["time"]),
            s(&r["rule"]),
            s(&r["user"])
        )?;
    }
    for h in d["history"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  past ban {} jail {} detector {} level {}: {}",
            s(&h["start"]),
            s(&h["jail"]),
            s(&h["detector"]),
            h["level"],
            s(&h["reason"])
        )?;
    }
    Ok(())
}

fn fmt_num(x: f64) -> String {
    if x.fract().abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

fn print_status(out: &mut dyn Write, d: &Value) -> anyhow::Result<()> {
    writeln!(
        out,
        "ravelin {} (pid {}), up {}s, config: {}",
        s(&d["version"]),
        d["pid"],
        d["uptime_s"],
        s(&d["config"])
    )?;
    writeln!(
        out,
        "enforcement: {} (table inet {}), {} active bans, {} kernel elements",
        s(&d["backend"]),
        s(&d["table"]),
        d["active_bans"],
        s(&d["kernel_elements"])
    )?;
    writeln!(out, "sources:")?;
    for src in d["sources"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  {:<12} {}: {} lines, {} cut, {} invalid UTF-8, {} errors, {} rotations",
            s(&src["name"]),
            s(&src["reads"]),
            src["lines"],
            src["cut_lines"],
            src["invalid_utf8"],
            src["errors"],
            src["rotations"]
        )?;
    }
    if let Some(dc) = d.get("decoy").filter(|v| v.is_object()) {
        writeln!(
            out,
            "decoy: {}, {} restarts, {} sessions, {} logins failed, {} succeeded, {} commands",
            if dc["running"] == true {
                "running"
            } else {
                "NOT RUNNING"
            },
            dc["restarts"],
            dc["sessions"],
            dc["logins_failed"],
            dc["logins_succeeded"],
            dc["commands"]
        )?;
    }
    writeln!(out, "jails:")?;
    for j in d["jails"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  {:<12} matched {}, tracked {}, bans {}, active {}",
            s(&j["name"]),
            j["matched"],
            j["tracked"],
            j["bans"],
            j["active_bans"]
        )?;
    }
    let c = &d["counters"];
    writeln!(
        out,
        "counters: {} records, {} matched, {} findings, {} bans, {} allowlisted, {} enforcement errors, {} store errors",
        c["records"],
        c["matched"],
        c["findings"],
        c["bans"],
        c["allowlisted"],
        c["enforce_errors"],
        c["store_errors"]
    )?;
    Ok(())
}
