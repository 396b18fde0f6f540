//! `ravelin decoy serve`: run the SSH decoy in the foreground.
//!
//! This is the process the daemon will start as a sandboxed child (with the listening socket
//! passed in); run by hand it binds `--listen` itself. Events go to the `--events` file as
//! Cowrie-compatible JSON lines.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::config::parse_duration;
use crate::honeypot::{DEFAULT_BANNER, DecoyConfig, Limits};

/// Arguments of `ravelin decoy`.
#[derive(Debug, clap::Args)]
pub struct DecoyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DecoyCommand,
}

/// `ravelin decoy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DecoyCommand {
    /// Run the SSH decoy in the foreground until SIGINT or SIGTERM.
    Serve(ServeArgs),
}

/// Arguments of `ravelin decoy serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:2022", value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,
    /// Directory for host keys and the per-install secret (created 0700).
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// File that receives Cowrie-compatible JSON lines (appended).
    #[arg(long, value_name = "FILE")]
    pub events: PathBuf,
    /// Identification string sent to clients.
    #[arg(long, default_value = DEFAULT_BANNER)]
    pub banner: String,
    /// Hostname of the emulated machine (default: chosen per install).
    #[arg(long)]
    pub hostname: Option<String>,
    /// `sensor` field of the events (default: the emulated hostname).
    #[arg(long)]
    pub sensor: Option<String>,
    /// Sessions open at once.
    #[arg(long, default_value_t = Limits::default().max_sessions)]
    pub max_sessions: usize,
    /// Sessions open at once from one address.
    #[arg(long, default_value_t = Limits::default().max_per_addr)]
    pub max_per_addr: usize,
    /// Time allowed from connect to a successful login (e.g. 2m).
    #[arg(long, default_value = "2m")]
    pub auth_timeout: String,
    /// Close a session after this long without traffic.
    #[arg(long, default_value = "3m")]
    pub idle_timeout: String,
    /// Close any session after this long.
    #[arg(long, default_value = "15m")]
    pub session_timeout: String,
    /// Bytes per session in both directions.
    #[arg(long, default_value_t = Limits::default().max_bytes)]
    pub max_bytes: u64,
}

fn duration(s: &str, what: &str) -> anyhow::Result<Duration> {
    parse_duration(s).map_err(|e| anyhow::anyhow!("--{what} {s:?}: {e}"))
}

/// Run `ravelin decoy ...`.
pub fn run(args: &DecoyArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let DecoyCommand::Serve(a) = &args.command;
    let cfg = DecoyConfig {
        banner: a.banner.clone(),
        state_dir: a.state_dir.clone(),
        events_file: a.events.clone(),
        sensor: a.sensor.clone(),
        hostname: a.hostname.clone(),
        limits: Limits {
            max_sessions: a.max_sessions.max(1),
            max_per_addr: a.max_per_addr.max(1),
            auth_timeout: duration(&a.auth_timeout, "auth-timeout")?,
            idle_timeout: duration(&a.idle_timeout, "idle-timeout")?,
            session_timeout: duration(&a.session_timeout, "session-timeout")?,
            max_bytes: a.max_bytes,
            ..Limits::default()
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("binding {}", a.listen))?;
        writeln!(out, "decoy listening on {}", listener.local_addr()?)?;
        out.flush()?;
        let shutdown = async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return std::future::pending().await,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        crate::honeypot::serve(listener, cfg, None, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}
