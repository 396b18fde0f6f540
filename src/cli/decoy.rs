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
use crate::honeypot::sandbox::{self, SandboxMode};
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
    Serve(Box<ServeArgs>),
    /// Confine this process as the decoy is confined, then try what a compromised decoy
    /// would (write outside its directory, run a program, open a connection) and print the
    /// outcome of each as JSON. For tests and for checking a kernel.
    #[command(hide = true)]
    SandboxCheck(SandboxCheckArgs),
}

/// Arguments of `ravelin decoy sandbox-check`.
#[derive(Debug, clap::Args)]
pub struct SandboxCheckArgs {
    /// The data directory the decoy may write.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Drop to this user first.
    #[arg(long)]
    pub user: Option<String>,
    /// A file outside the data directory to try to create.
    #[arg(long, value_name = "FILE")]
    pub outside: PathBuf,
    /// A program to try to run.
    #[arg(long, value_name = "PROGRAM", default_value = "/bin/true")]
    pub exec: PathBuf,
    /// An address to try to connect to.
    #[arg(long, value_name = "ADDR:PORT")]
    pub connect: std::net::SocketAddr,
}

/// Arguments of `ravelin decoy serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:2022", value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,
    /// Serve on this inherited, already listening socket instead of binding `--listen`
    /// (repeatable; how the daemon starts the decoy).
    #[arg(long, value_name = "FD")]
    pub listen_fd: Vec<i32>,
    /// Write the JSON lines to this inherited descriptor instead of `--events`.
    #[arg(long, value_name = "FD")]
    pub events_fd: Option<i32>,
    /// Drop to this user before serving (needs to start as root).
    #[arg(long)]
    pub user: Option<String>,
    /// Confinement: required, best-effort or off.
    #[arg(long, default_value = "off")]
    pub sandbox: String,
    /// Keep asciinema recordings in `STATE_DIR/recordings`, this many MiB in all (0: off).
    #[arg(long, default_value_t = 512)]
    pub recordings_quota_mb: u64,
    /// Largest single recording, MiB.
    #[arg(long, default_value_t = 8)]
    pub recording_max_mb: u64,
    /// Fraction of the plausible weak credentials the decoy accepts (0: none, record only).
    #[arg(long, default_value_t = 0.25)]
    pub accept_fraction: f64,
    /// Also accept this `user:password` (repeatable).
    #[arg(long, value_name = "USER:PASSWORD")]
    pub accept_also: Vec<String>,
    /// Login attempts per connection.
    #[arg(long, default_value_t = Limits::default().max_auth_tries)]
    pub max_auth_tries: usize,
    /// Directory for host keys and the per-install secret (created 0700).
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// File that receives Cowrie-compatible JSON lines (appended).
    #[arg(long, value_name = "FILE", required_unless_present = "events_fd")]
    pub events: Option<PathBuf>,
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
    let a = match &args.command {
        DecoyCommand::Serve(a) => a,
        DecoyCommand::SandboxCheck(c) => return sandbox_check(c, out),
    };
    let mode = SandboxMode::parse(&a.sandbox).with_context(|| {
        format!(
            "--sandbox {:?}: expected required, best-effort or off",
            a.sandbox
        )
    })?;
    // Everything that needs privileges or paths outside the data directory happens here,
    // before confinement and before any thread is started.
    let listeners = if a.listen_fd.is_empty() {
        let l = std::net::TcpListener::bind(a.listen)
            .with_context(|| format!("binding {}", a.listen))?;
        vec![l]
    } else {
        a.listen_fd
            .iter()
            .map(|&fd| inherited_listener(fd))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    for l in &listeners {
        l.set_nonblocking(true)?;
    }
    // The events file is opened now, while its directory is still reachable; from here on
    // the decoy holds only descriptors and its own directory.
    let events_fd = match (a.events_fd, &a.events) {
        (Some(fd), _) => fd,
        (None, Some(path)) => {
            use std::os::fd::IntoRawFd;
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(path)
                .with_context(|| format!("opening events file {}", path.display()))?
                .into_raw_fd()
        }
        (None, None) => anyhow::bail!("give --events FILE or --events-fd FD"),
    };
    let parent = nix::unistd::getppid();
    sandbox::no_memory_locking()?;
    prepare_data_dir(&a.state_dir, a.user.as_deref())?;
    if a.events_fd.is_some() {
        follow_parent(parent)?;
    }
    let confinement = sandbox::confine(std::path::Path::new("."), mode)?;
    tracing::info!("decoy confinement: {confinement}");
    let cfg = DecoyConfig {
        banner: a.banner.clone(),
        state_dir: ".".into(),
        events_file: a.events.clone().unwrap_or_default(),
        events_fd: Some(events_fd),
        report_stats: a.events_fd.is_some(),
        accept_fraction: a.accept_fraction,
        accept_also: a
            .accept_also
            .iter()
            .map(|p| {
                p.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
                    .with_context(|| format!("--accept-also {p:?}: expected USER:PASSWORD"))
            })
            .collect::<anyhow::Result<_>>()?,
        recordings: (a.recordings_quota_mb > 0).then(|| crate::honeypot::record::RecordConfig {
            dir: "recordings".into(),
            quota_bytes: a.recordings_quota_mb.saturating_mul(1 << 20),
            max_file_bytes: a.recording_max_mb.max(1).saturating_mul(1 << 20),
        }),
        sensor: a.sensor.clone(),
        hostname: a.hostname.clone(),
        limits: Limits {
            max_sessions: a.max_sessions.max(1),
            max_per_addr: a.max_per_addr.max(1),
            auth_timeout: duration(&a.auth_timeout, "auth-timeout")?,
            idle_timeout: duration(&a.idle_timeout, "idle-timeout")?,
            session_timeout: duration(&a.session_timeout, "session-timeout")?,
            max_bytes: a.max_bytes,
            max_auth_tries: a.max_auth_tries.max(1),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut tokio_listeners = Vec::new();
        for l in listeners {
            let l = tokio::net::TcpListener::from_std(l)?;
            writeln!(out, "decoy listening on {}", l.local_addr()?)?;
            tokio_listeners.push(l);
        }
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
        crate::honeypot::serve(tokio_listeners, cfg, None, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Take ownership of an inherited descriptor that must be a listening TCP socket.
fn inherited_listener(fd: i32) -> anyhow::Result<std::net::TcpListener> {
    use std::os::fd::{BorrowedFd, FromRawFd};
    // SAFETY: only borrowed for the checks below; ownership is taken after they pass.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    let listening = nix::sys::socket::getsockopt(&b, nix::sys::socket::sockopt::AcceptConn)
        .with_context(|| format!("--listen-fd {fd} is not an open socket"))?;
    anyhow::ensure!(listening, "--listen-fd {fd} is not a listening socket");
    // SAFETY: an open listening socket handed to this process for serving; owned from here on.
    Ok(unsafe { std::net::TcpListener::from_raw_fd(fd) })
}

/// Create the data directory (0700), give it to `user`, make it the working directory, and
/// drop to that user. The directory is used through relative paths from here on, so its
/// parents (e.g. a 0700 `/var/lib/ravelin`) need not be reachable by that user.
fn prepare_data_dir(dir: &std::path::Path, user: Option<&str>) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let ids = user.map(sandbox::lookup_user).transpose()?;
    if let Some((uid, gid)) = ids {
        chown_tree(dir, uid, gid)?;
    }
    std::env::set_current_dir(dir).with_context(|| format!("entering {}", dir.display()))?;
    if let Some((uid, gid)) = ids {
        sandbox::drop_privileges(uid, gid)?;
    }
    Ok(())
}

/// Under the daemon: die with it. The kernel clears the parent-death signal the daemon set
/// when credentials change, so it is set again after the privilege drop, and a parent that
/// already went away meanwhile is noticed.
fn follow_parent(parent: nix::unistd::Pid) -> anyhow::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) } != 0 {
        return Err(std::io::Error::last_os_error()).context("PR_SET_PDEATHSIG");
    }
    if nix::unistd::getppid() != parent {
        anyhow::bail!("the daemon that started the decoy is gone");
    }
    Ok(())
}

/// Give `dir` and what is directly in it (and one level of subdirectories) to `uid:gid`.
fn chown_tree(dir: &std::path::Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", dir.display()))?;
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        // lchown: never follow a link planted in the directory.
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
            .with_context(|| format!("chown {}", p.display()))?;
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            for f in std::fs::read_dir(&p)?.flatten() {
                let _ = std::os::unix::fs::lchown(f.path(), Some(uid), Some(gid));
            }
        }
    }
    Ok(())
}

/// `ravelin decoy sandbox-check`: confine as the decoy does, then try to escape.
fn sandbox_check(c: &SandboxCheckArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let outside_path = std::path::absolute(&c.outside)?;
    sandbox::no_memory_locking()?;
    prepare_data_dir(&c.state_dir, c.user.as_deref())?;
    let confinement = sandbox::confine(std::path::Path::new("."), SandboxMode::Required)?;
    let outcome = |r: std::io::Result<()>| match r {
        Ok(()) => "allowed".to_string(),
        Err(e) => format!("denied: {e}"),
    };
    let inside = outcome(std::fs::write("probe", b"ok"));
    let outside = outcome(std::fs::write(&outside_path, b"escaped"));
    let read_outside = outcome(std::fs::read("/etc/hostname").map(|_| ()));
    let exec = outcome(
        std::process::Command::new(&c.exec)
            .stdin(std::process::Stdio::null())
            .status()
            .map(|_| ()),
    );
    let connect = outcome(
        std::net::TcpStream::connect_timeout(&c.connect, Duration::from_secs(2)).map(|_| ()),
    );
    let udp = outcome(std::net::UdpSocket::bind("127.0.0.1:0").map(|_| ()));
    let page = vec![0u8; 4096];
    // SAFETY: locks (and unlocks) a live buffer of exactly that length.
    let mlock = outcome(
        if unsafe { libc::mlock(page.as_ptr().cast(), page.len()) } == 0 {
            unsafe { libc::munlock(page.as_ptr().cast(), page.len()) };
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        },
    );
    let v = serde_json::json!({
        "uid": confinement.uid,
        "landlock": confinement.landlock,
        "seccomp": confinement.seccomp,
        "write_inside": inside,
        "write_outside": outside,
        "read_outside": read_outside,
        "exec": exec,
        "connect": connect,
        "udp_socket": udp,
        "mlock": mlock,
    });
    writeln!(out, "{v}")?;
    Ok(ExitCode::SUCCESS)
}
