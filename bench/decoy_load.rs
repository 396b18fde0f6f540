//! Load generator for SSH decoys: the same client drives ravelin's decoy and Cowrie in
//! `bench/decoy_vs_cowrie.sh` (results in docs/benchmarks.md, "Decoy vs Cowrie").
//!
//! ```text
//! decoy_load rate --addr 127.0.0.1:PORT --password PW [--concurrency 16 --seconds 20 --pid PID]
//! decoy_load hold --addr 127.0.0.1:PORT --password PW --pid PID [--sessions 2000 --hold-seconds 20]
//! decoy_load password --secret-file STATE/decoy.secret     # a pair the decoy accepts
//! ```
//!
//! `rate`: C workers loop for T seconds over whole sessions: TCP connect (from one of
//! `--sources` loopback addresses, 127.0.0.2 on), key exchange, password auth, `exec` of one
//! command, read to exit status and channel close, disconnect. Reports sessions/s (those
//! finished inside the window), failures by stage, p50/p99 session time, and the server's CPU
//! time per session when `--pid` is given.
//!
//! `hold`: opens N sessions (auth, pty, interactive shell, first output seen) with at most K
//! handshakes in flight, keeps them all open for `--hold-seconds`, and samples the server's
//! VmRSS from /proc/PID/status while they are held; a session the server closes stops counting
//! as held.
//!
//! Prints one JSON object on stdout (for the script) and a readable summary on stderr. Not a
//! test and not part of CI; `cargo bench --bench decoy_load` without a mode prints the usage.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use russh::client::{self, Handle};
use russh::keys::PublicKeyOrCertificate;
use russh::{ChannelMsg, Disconnect};
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};

#[derive(Parser)]
#[command(about = "SSH load generator for decoy benchmarks")]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(clap::Args, Clone)]
struct Target {
    /// Server address.
    #[arg(long)]
    addr: SocketAddr,
    /// User name to log in as.
    #[arg(long, default_value = "root")]
    user: String,
    /// Password (one the server accepts).
    #[arg(long)]
    password: String,
    /// Connect from this many loopback source addresses (127.0.0.2, 127.0.0.3, ...).
    #[arg(long, default_value_t = 16)]
    sources: u8,
    /// The server's pid: CPU time and memory are read from /proc/PID.
    #[arg(long)]
    pid: Option<u32>,
    /// Give up on one session (or one login in `hold`) after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

#[derive(Subcommand)]
enum Mode {
    /// Whole sessions per second: connect, kex, auth, one command, close.
    Rate {
        #[command(flatten)]
        target: Target,
        /// Sessions in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Length of the measured window.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// The command run in each session.
        #[arg(long, default_value = "uname -a")]
        command: String,
    },
    /// Concurrent interactive sessions held open, and the server's memory while held.
    Hold {
        #[command(flatten)]
        target: Target,
        /// Sessions to open.
        #[arg(long, default_value_t = 2000)]
        sessions: usize,
        /// Logins in flight at once while opening.
        #[arg(long, default_value_t = 32)]
        connect_concurrency: usize,
        /// How long to keep them open once all were tried.
        #[arg(long, default_value_t = 20)]
        hold_seconds: u64,
    },
    /// Print a password the decoy with this secret accepts for `--user`.
    Password {
        /// The decoy's `decoy.secret` (32 bytes).
        #[arg(long)]
        secret_file: std::path::PathBuf,
        #[arg(long, default_value = "root")]
        user: String,
    },
}

/// The client side: trusts any host key (loopback benchmark, fresh keys each run).
struct Client;

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Where a session failed.
#[derive(Clone, Copy, Debug)]
enum Stage {
    Connect,
    Handshake,
    AuthRefused,
    Auth,
    Channel,
    Command,
    Timeout,
}

const STAGES: [Stage; 7] = [
    Stage::Connect,
    Stage::Handshake,
    Stage::AuthRefused,
    Stage::Auth,
    Stage::Channel,
    Stage::Command,
    Stage::Timeout,
];

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Handshake => "handshake",
            Stage::AuthRefused => "auth_refused",
            Stage::Auth => "auth",
            Stage::Channel => "channel",
            Stage::Command => "command",
            Stage::Timeout => "timeout",
        }
    }
}

#[derive(Default)]
struct Failures([AtomicU64; 7]);

impl Failures {
    fn add(&self, s: Stage) {
        self.0[s as usize].fetch_add(1, Ordering::Relaxed);
    }
    fn total(&self) -> u64 {
        self.0.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }
    fn json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for s in STAGES {
            let n = self.0[s as usize].load(Ordering::Relaxed);
            if n > 0 {
                m.insert(s.name().into(), n.into());
            }
        }
        m.into()
    }
}

fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        // The benchmark ends sessions itself; no keepalives or client-side idle timeouts.
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    })
}

/// A TCP connection from 127.0.0.(2 + n % sources): spreads the 4-tuples over several source
/// addresses so tens of thousands of short sessions do not run out of ephemeral ports.
async fn tcp(target: &Target, n: usize) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    if target.addr.ip().is_loopback() && target.sources > 0 {
        let one: libc::c_int = 1;
        // Let connect() pick the port for the full 4-tuple (else bind() reserves it alone).
        // SAFETY: a valid socket fd and a c_int option of the right size.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let host = 2 + (n % usize::from(target.sources)) as u8;
        sock.bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)),
            0,
        ))?;
    }
    let s = sock.connect(target.addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Connect, exchange keys and log in.
async fn login(
    target: &Target,
    cfg: Arc<client::Config>,
    n: usize,
) -> Result<Handle<Client>, Stage> {
    let stream = tcp(target, n).await.map_err(|_| Stage::Connect)?;
    let mut h = client::connect_stream(cfg, stream, Client)
        .await
        .map_err(|_| Stage::Handshake)?;
    let auth = h
        .authenticate_password(target.user.clone(), target.password.clone())
        .await
        .map_err(|_| Stage::Auth)?;
    if !auth.success() {
        return Err(Stage::AuthRefused);
    }
    Ok(h)
}

/// One whole session; returns the bytes of command output read.
async fn one_session(
    target: &Target,
    cfg: Arc<client::Config>,
    n: usize,
    command: &str,
) -> Result<usize, Stage> {
    let h = login(target, cfg, n).await?;
    let mut ch = h.channel_open_session().await.map_err(|_| Stage::Channel)?;
    ch.exec(true, command).await.map_err(|_| Stage::Command)?;
    let (mut bytes, mut status) = (0, None);
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::Data { data } => bytes += data.len(),
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            ChannelMsg::Failure => return Err(Stage::Command),
            _ => {}
        }
    }
    if status.is_none() || bytes == 0 {
        return Err(Stage::Command);
    }
    let _ = h.disconnect(Disconnect::ByApplication, "", "en").await;
    Ok(bytes)
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// A `Vm*` field of /proc/PID/status in KiB.
fn vm_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

async fn rate(
    target: Target,
    concurrency: usize,
    seconds: u64,
    command: String,
) -> anyhow::Result<()> {
    let cfg = client_config();
    let target = Arc::new(target);
    let command: Arc<str> = command.into();
    let failures = Arc::new(Failures::default());
    let counter = Arc::new(AtomicUsize::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let cpu0 = target.pid.and_then(cpu_seconds);
    let own0 = own_cpu_seconds();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (cfg, target, command, failures, counter, late) = (
            cfg.clone(),
            target.clone(),
            command.clone(),
            failures.clone(),
            counter.clone(),
            late.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                let r = tokio::time::timeout(
                    Duration::from_secs(target.timeout),
                    one_session(&target, cfg.clone(), n, &command),
                )
                .await
                .unwrap_or(Err(Stage::Timeout));
                match r {
                    Ok(_) if Instant::now() <= deadline => times.push(t0.elapsed()),
                    Ok(_) => {
                        late.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(s) => {
                        failures.add(s);
                        // A refusing server should not turn the loop into a busy spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            times
        }));
    }
    let mut times = Vec::new();
    for w in workers {
        times.extend(w.await.context("worker")?);
    }
    let window = Duration::from_secs(seconds).as_secs_f64();
    let server_cpu = match (cpu0, target.pid.and_then(cpu_seconds)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let client_cpu = own_cpu_seconds() - own0;
    times.sort();
    let ok = times.len();
    let per_s = ok as f64 / window;
    let out = json!({
        "mode": "rate",
        "addr": target.addr.to_string(),
        "concurrency": concurrency,
        "seconds": seconds,
        "sessions": ok,
        "sessions_per_s": (per_s * 10.0).round() / 10.0,
        "finished_after_window": late.load(Ordering::Relaxed),
        "failures": failures.total(),
        "failures_by_stage": failures.json(),
        "p50_ms": (percentile(&times, 0.50) * 10.0).round() / 10.0,
        "p99_ms": (percentile(&times, 0.99) * 10.0).round() / 10.0,
        "server_cpu_s": server_cpu.map(|c| (c * 100.0).round() / 100.0),
        "server_cpu_ms_per_session": server_cpu.filter(|_| ok > 0).map(|c| (c * 1e3 / ok as f64 * 100.0).round() / 100.0),
        "client_cpu_s": (client_cpu * 100.0).round() / 100.0,
        "server_rss_kib": target.pid.and_then(|p| vm_kib(p, "VmRSS")),
        "server_hwm_kib": target.pid.and_then(|p| vm_kib(p, "VmHWM")),
    });
    eprintln!(
        "rate {}: {ok} sessions in {seconds} s = {per_s:.1}/s, {} failed {}, p50 {:.1} ms, p99 {:.1} ms, server CPU {}, client CPU {client_cpu:.1} s",
        target.addr,
        failures.total(),
        failures.json(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        server_cpu.map_or("?".into(), |c| format!("{c:.1} s")),
    );
    println!("{out}");
    Ok(())
}

/// What the sessions of a `hold` run share.
struct HoldRun {
    target: Target,
    cfg: Arc<client::Config>,
    /// Logins in flight.
    gate: Semaphore,
    held: AtomicUsize,
    closed_by_server: AtomicUsize,
    failures: Failures,
}

/// Open one interactive session and keep it until `release` fires or the server closes it.
async fn held_session(run: Arc<HoldRun>, n: usize, mut release: watch::Receiver<bool>) {
    let HoldRun {
        target,
        cfg,
        gate,
        held,
        closed_by_server,
        failures,
    } = &*run;
    let opened = {
        let Ok(_permit) = gate.acquire().await else {
            return;
        };
        let open = async {
            let h = login(target, cfg.clone(), n).await?;
            let mut ch = h.channel_open_session().await.map_err(|_| Stage::Channel)?;
            ch.request_pty(true, "xterm", 80, 24, 0, 0, &[])
                .await
                .map_err(|_| Stage::Channel)?;
            ch.request_shell(true).await.map_err(|_| Stage::Channel)?;
            // Held once the shell has said something (motd or prompt).
            loop {
                match ch.wait().await {
                    Some(ChannelMsg::Data { .. }) => return Ok((h, ch)),
                    Some(ChannelMsg::Failure) | None => return Err(Stage::Command),
                    Some(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(target.timeout), open)
            .await
            .unwrap_or(Err(Stage::Timeout))
    };
    let (h, mut ch) = match opened {
        Ok(x) => x,
        Err(s) => {
            failures.add(s);
            return;
        }
    };
    held.fetch_add(1, Ordering::SeqCst);
    loop {
        tokio::select! {
            msg = ch.wait() => if msg.is_none() {
                held.fetch_sub(1, Ordering::SeqCst);
                closed_by_server.fetch_add(1, Ordering::SeqCst);
                return;
            },
            r = release.changed() => if r.is_err() || *release.borrow() { break },
        }
    }
    held.fetch_sub(1, Ordering::SeqCst);
    let _ = h.disconnect(Disconnect::ByApplication, "", "en").await;
}

async fn hold(
    target: Target,
    sessions: usize,
    connect_concurrency: usize,
    hold_seconds: u64,
) -> anyhow::Result<()> {
    let Some(pid) = target.pid else {
        bail!("hold needs --pid (the server process whose memory is measured)");
    };
    let rss0 = vm_kib(pid, "VmRSS").context("reading /proc/PID/status")?;
    let run = Arc::new(HoldRun {
        target,
        cfg: client_config(),
        gate: Semaphore::new(connect_concurrency.max(1)),
        held: AtomicUsize::new(0),
        closed_by_server: AtomicUsize::new(0),
        failures: Failures::default(),
    });
    let (target, held, closed, failures) =
        (&run.target, &run.held, &run.closed_by_server, &run.failures);
    let (tx, rx) = watch::channel(false);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(sessions);
    for n in 0..sessions {
        tasks.push(tokio::spawn(held_session(run.clone(), n, rx.clone())));
    }
    // Opening: wait until every session is either held or failed.
    let mut peak_rss = rss0;
    loop {
        let done =
            held.load(Ordering::SeqCst) + closed.load(Ordering::SeqCst) + failures.total() as usize;
        peak_rss = peak_rss.max(vm_kib(pid, "VmRSS").unwrap_or(0));
        if done >= sessions {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ramp = start.elapsed();
    let at_ramp = held.load(Ordering::SeqCst);
    eprintln!(
        "hold {}: {at_ramp}/{sessions} open after {:.1} s ({} failed {}), holding {hold_seconds} s",
        target.addr,
        ramp.as_secs_f64(),
        failures.total(),
        failures.json()
    );
    // Holding: sample the count and the server's memory once a second.
    let mut min_held = at_ramp;
    let hold_end = Instant::now() + Duration::from_secs(hold_seconds);
    let mut rss_end = 0;
    while Instant::now() < hold_end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        min_held = min_held.min(held.load(Ordering::SeqCst));
        rss_end = vm_kib(pid, "VmRSS").unwrap_or(0);
        peak_rss = peak_rss.max(rss_end);
    }
    let held_end = held.load(Ordering::SeqCst);
    let cpu = cpu_seconds(pid);
    let _ = tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let mib = |k: u64| (k as f64 / 1024.0 * 10.0).round() / 10.0;
    let per_session = if held_end > 0 {
        Some(((rss_end as f64 - rss0 as f64) / held_end as f64 * 10.0).round() / 10.0)
    } else {
        None
    };
    let out = json!({
        "mode": "hold",
        "addr": target.addr.to_string(),
        "sessions": sessions,
        "connect_concurrency": connect_concurrency,
        "ramp_s": (ramp.as_secs_f64() * 10.0).round() / 10.0,
        "held_after_ramp": at_ramp,
        "held_min": min_held,
        "held_end": held_end,
        "hold_seconds": hold_seconds,
        "closed_by_server": closed.load(Ordering::SeqCst),
        "failures": failures.total(),
        "failures_by_stage": failures.json(),
        "rss_idle_mib": mib(rss0),
        "rss_held_mib": mib(rss_end),
        "rss_peak_mib": mib(peak_rss),
        "server_hwm_mib": vm_kib(pid, "VmHWM").map(mib),
        "kib_per_session": per_session,
        "server_cpu_s_total": cpu.map(|c| (c * 100.0).round() / 100.0),
    });
    eprintln!(
        "hold {}: {held_end} held at the end (min {min_held}), server RSS {:.1} MiB idle -> {:.1} MiB held (peak {:.1})",
        target.addr,
        mib(rss0),
        mib(rss_end),
        mib(peak_rss)
    );
    println!("{out}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Some(mode) = cli.mode else {
        eprintln!(
            "decoy_load: a mode is needed (rate, hold, password); see --help and bench/decoy_vs_cowrie.sh"
        );
        return Ok(());
    };
    if let Mode::Password { secret_file, user } = &mode {
        let b = std::fs::read(secret_file)
            .with_context(|| format!("reading {}", secret_file.display()))?;
        let key: [u8; 32] = b
            .try_into()
            .map_err(|_| anyhow::anyhow!("the secret is not 32 bytes"))?;
        let pw = ravelin::honeypot::auth::AuthPolicy::new(key)
            .an_accepted_password(user)
            .context("no accepted password for this user")?;
        println!("{pw}");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match mode {
            Mode::Rate {
                target,
                concurrency,
                seconds,
                command,
            } => rate(target, concurrency, seconds, command).await,
            Mode::Hold {
                target,
                sessions,
                connect_concurrency,
                hold_seconds,
            } => hold(target, sessions, connect_concurrency, hold_seconds).await,
            Mode::Password { .. } => Ok(()),
        }
    })
}
