//! Assembly: load the config, open the store, set up enforcement, reconcile, start sources,
//! serve the control socket, and handle SIGHUP (reload) and SIGTERM/SIGINT (clean stop).
//!
//! Process model: one process. The main tokio runtime runs the sources, the control socket
//! and signal handling; the [`worker`] thread owns all pipeline state and does the blocking
//! work (SQLite, `nft`). Stopping the daemon never touches the kernel table: bans stay in force
//! with their kernel timeouts until the next start reconciles them.

pub mod control;
pub mod decoy;
pub mod health;
pub mod hostaddr;
pub mod jail;
pub mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::clock::SystemClock;
use crate::config::{Backend, Config, SourceConfig, SourceKind};
use crate::enforce::{Enforcer, LogEnforcer, NftEnforcer, probe_nft};
use crate::source::{self, SourceEvent, SourceStats};
use crate::store::{SqliteStore, Store};
use worker::{Command, SourceRegistry, Worker};

/// Depth of the source -> worker queue. Sources wait when it is full (lines stay in the file).
const EVENT_QUEUE: usize = 16_384;

struct Running {
    cfg: SourceConfig,
    shutdown: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// `ravelin run`: the daemon in the foreground. Returns when stopped by a signal.
pub fn run(config_path: Option<&Path>) -> anyhow::Result<()> {
    let cfg = Config::load(config_path)?;
    match &cfg.origin {
        Some(p) => tracing::info!(config = %p.display(), "configuration loaded"),
        None => tracing::info!(
            "no config file at {}; using the built-in default",
            crate::config::DEFAULT_PATH
        ),
    }
    let listener = control::bind(&cfg.control_socket)?;
    let socket = cfg.control_socket.clone();
    let res = start(cfg, config_path, listener);
    if res.is_err() {
        let _ = std::fs::remove_file(&socket);
    }
    res
}

fn start(
    cfg: Config,
    config_path: Option<&Path>,
    listener: std::os::unix::net::UnixListener,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("cannot create state_dir {}", cfg.state_dir.display()))?;
    restrict_dir(&cfg.state_dir);
    let store = SqliteStore::open(&cfg.db_path())?;
    let mut enforcer: Box<dyn Enforcer> = match cfg.enforce.backend {
        Backend::Nftables => {
            probe_nft(&cfg.enforce.nft)?;
            Box::new(NftEnforcer::new(
                cfg.enforce.nft.clone(),
                cfg.enforce.table.clone(),
            ))
        }
        Backend::Log => Box::new(LogEnforcer::new()),
    };
    enforcer.setup()?;
    if cfg.enforce.backend == Backend::Nftables {
        firewall_boot(&cfg);
    }
    let hosts = hostaddr::host_addresses();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async_main(
        listener,
        cfg,
        config_path.map(Path::to_path_buf),
        store,
        enforcer,
        hosts,
    ))
}

fn restrict_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot restrict directory to 0700");
    }
}

async fn async_main(
    listener: std::os::unix::net::UnixListener,
    cfg: Config,
    config_path: Option<PathBuf>,
    mut store: SqliteStore,
    enforcer: Box<dyn Enforcer>,
    hosts: Vec<std::net::IpAddr>,
) -> anyhow::Result<()> {
    let socket_path = cfg.control_socket.clone();

    // Checkpoints for the first set of sources are read before the store moves to the worker.
    let mut checkpoints = HashMap::new();
    for s in wanted_sources(&cfg) {
        let key = checkpoint_key(&s);
        if let Some(v) = store.load_checkpoint(&key)? {
            checkpoints.insert(key, v);
        }
    }

    let (ev_tx, ev_rx) = mpsc::channel::<SourceEvent>(EVENT_QUEUE);
    let (ctl_tx, ctl_rx) = mpsc::channel(64);
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    let registry: SourceRegistry = Arc::new(Mutex::new(Vec::new()));

    let (alerts, alert_task) = crate::alert::spawn(&cfg.alert, Arc::new(SystemClock));
    let mut worker = Worker::new(
        cfg.clone(),
        &hosts,
        Arc::new(SystemClock),
        Box::new(store),
        enforcer,
        registry.clone(),
    )?;
    let audit_task = tokio::spawn(watch_audit(
        alerts.clone(),
        config_path.clone(),
        cfg.audit_every,
    ));
    // The decoy: the daemon binds its ports (it may need root for 22) and keeps them; the
    // decoy process itself runs confined. A port that cannot be bound costs the decoy, not
    // the bans.
    let decoy = match &cfg.honeypot {
        None => None,
        Some(h) => match decoy::bind(&h.listen).and_then(|fds| {
            decoy::Supervisor::start(h.clone(), fds, ev_tx.clone(), Some(alerts.clone()))
        }) {
            Ok(s) => {
                worker.decoy = Some(s.stats.clone());
                Some(s)
            }
            Err(e) => {
                tracing::error!("the SSH decoy is not running: {e:#}");
                None
            }
        },
    };
    worker.alerts = Some(alerts);
    let worker_thread = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(worker.run(ev_rx, ctl_rx, cmd_rx)),
                Err(e) => tracing::error!(error = %e, "cannot start the pipeline runtime"),
            }
        })?;

    let mut running: Vec<Running> = Vec::new();
    for s in wanted_sources(&cfg) {
        let cp = checkpoints.remove(&checkpoint_key(&s));
        running.push(start_source(s, cp, ev_tx.clone(), &registry));
    }
    // The kernel's scanner sets, read as a structured source (kind `scan`).
    let scans = (cfg.firewall.is_some() && cfg.enforce.backend == Backend::Nftables)
        .then(|| tokio::spawn(watch_scanners(cfg.enforce.nft.clone(), ev_tx.clone())));
    let metrics = match cfg.metrics {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                if !addr.ip().is_loopback() {
                    tracing::warn!(%addr, "metrics are served beyond loopback; restrict access with the firewall");
                }
                tracing::info!(%addr, "metrics on http://{addr}/metrics");
                Some(tokio::spawn(crate::metrics::http::serve(l, ctl_tx.clone())))
            }
            // Metrics are not worth refusing to protect the server: warn and go on.
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot serve metrics (set [metrics] listen, or enabled = false)");
                None
            }
        },
    };
    let server = tokio::spawn(control::serve(listener, ctl_tx));
    tracing::info!(socket = %socket_path.display(), sources = running.len(), jails = cfg.jails.len(), "ravelin running");

    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                match Config::load(config_path.as_deref()) {
                    Err(e) => tracing::error!("reload refused, keeping the running configuration: {e}"),
                    Ok(new) => {
                        if new.honeypot != cfg.honeypot {
                            tracing::warn!("[honeypot] changed: the running decoy keeps its settings until ravelin restarts (its jails are reloaded now)");
                        }
                        running = reload_sources(running, &new, &ev_tx, &cmd_tx, &registry).await;
                        let (tx, rx) = oneshot::channel();
                        if cmd_tx.send(Command::Reload(Box::new(new), hostaddr::host_addresses(), tx)).await.is_ok() {
                            for note in rx.await.unwrap_or_default() {
                                tracing::warn!("{note}");
                            }
                        }
                    }
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping");
    server.abort();
    audit_task.abort();
    if let Some(s) = scans {
        s.abort();
    }
    if let Some(m) = metrics {
        m.abort();
    }
    for r in running {
        stop_source(r).await;
    }
    if let Some(d) = decoy {
        let _ = tokio::task::spawn_blocking(move || d.stop()).await;
    }
    drop(ev_tx);
    drop(cmd_tx);
    let _ = tokio::task::spawn_blocking(move || worker_thread.join()).await;
    // The worker held the last alert handle: the dispatcher now sends open campaigns and the
    // digest, bounded by its drain timeout.
    let _ = alert_task.await;
    let _ = std::fs::remove_file(&socket_path);
    tracing::info!("stopped; kernel bans remain in force until their timeouts");
    Ok(())
}

/// Re-run the posture audit periodically and alert on checks of high or critical severity that
/// newly fail (a drop-in re-enabling passwords, a flushed firewall): changes, not the standing
/// state, so the channel stays quiet once the operator knows.
async fn watch_audit(
    alerts: crate::alert::AlertHandle,
    config_path: Option<PathBuf>,
    every: Duration,
) {
    use crate::alert::{AlertEvent, AlertKind, Severity};
    use crate::audit::{Severity as Sev, Status};
    let mut known: Option<std::collections::HashSet<&'static str>> = None;
    // The first run (a minute after start, or sooner if the interval is shorter) learns what
    // already fails; each later run alerts on what newly fails.
    tokio::time::sleep(every.min(Duration::from_secs(60))).await;
    loop {
        let cp = config_path.clone();
        let report = tokio::task::spawn_blocking(move || {
            let waivers = crate::audit::load_waivers(cp.as_deref()).unwrap_or_default();
            let today = chrono::Utc::now().date_naive();
            let mut ctx = crate::audit::Ctx::live(Duration::from_secs(3));
            if let Ok(cfg) = Config::load(cp.as_deref()) {
                ctx.control_socket = cfg.control_socket;
            }
            crate::audit::run(&ctx, &waivers, today, None)
        })
        .await;
        if let Ok(report) = report {
            let failing: Vec<&crate::audit::CheckResult> = report
                .results
                .iter()
                .filter(|r| r.status == Status::Fail && r.severity >= Sev::High)
                .collect();
            let ids: std::collections::HashSet<&'static str> =
                failing.iter().map(|r| r.id).collect();
            if let Some(before) = &known {
                for r in failing.iter().filter(|r| !before.contains(r.id)) {
                    let sev = if r.severity == Sev::Critical {
                        Severity::Critical
                    } else {
                        Severity::High
                    };
                    alerts.emit(
                        AlertEvent::new(
                            AlertKind::Audit,
                            sev,
                            std::time::SystemTime::now(),
                            &format!("audit: {} now fails: {}", r.id, r.reason),
                        )
                        .with_key(&format!("audit:{}", r.id)),
                    );
                }
            }
            known = Some(ids);
        }
        tokio::time::sleep(every).await;
    }
}

/// How often the kernel's scanner sets are read.
const SCAN_POLL: Duration = Duration::from_secs(2);

/// Turn new entries of the firewall's scanner sets into observations of kind `scan`.
async fn watch_scanners(nft: PathBuf, tx: mpsc::Sender<SourceEvent>) {
    let mut watch = crate::firewall::scan::ScanWatch::default();
    let mut warned = false;
    loop {
        let nft2 = nft.clone();
        let listed = tokio::task::spawn_blocking(move || {
            crate::firewall::read_scanners(&nft2, crate::firewall::ruleset::TABLE)
        })
        .await;
        match listed {
            Ok(Ok(list)) => {
                warned = false;
                for obs in watch.observe(&list, std::time::SystemTime::now()) {
                    if tx.send(SourceEvent::Observation(obs)).await.is_err() {
                        return;
                    }
                }
            }
            // No firewall table yet (policy not applied): say so once, keep looking.
            Ok(Err(e)) if !warned => {
                tracing::info!(error = %e, "firewall scanner sets not readable (run `ravelin firewall apply`)");
                warned = true;
            }
            _ => {}
        }
        tokio::time::sleep(SCAN_POLL).await;
    }
}

/// After a reboot the kernel has forgotten the firewall table: bring back the last confirmed
/// one, and honour a pending commit-confirmed apply whose watcher died.
fn firewall_boot(cfg: &Config) {
    let ctx = crate::firewall::commit::Ctx {
        nft: cfg.enforce.nft.clone(),
        table: crate::firewall::ruleset::TABLE.into(),
        state_dir: cfg.state_dir.clone(),
        exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("ravelin")),
    };
    match crate::firewall::commit::boot(&ctx) {
        Ok(crate::firewall::commit::Boot::Unchanged) => {}
        Ok(crate::firewall::commit::Boot::Restored) => tracing::warn!(
            "firewall table was missing (reboot?): restored the last confirmed policy"
        ),
        Ok(crate::firewall::commit::Boot::Pending(_)) => tracing::warn!(
            "a firewall apply is waiting for `ravelin firewall confirm`; it rolls back by itself otherwise"
        ),
        Err(e) => tracing::error!(error = %e, "firewall state could not be checked"),
    }
}

/// Sources referenced by an enabled jail (a defined but unused source is not started).
fn wanted_sources(cfg: &Config) -> Vec<SourceConfig> {
    cfg.sources
        .iter()
        .filter(|s| {
            cfg.jails
                .iter()
                .any(|j| j.enabled && j.sources.contains(&s.name))
        })
        .cloned()
        .collect()
}

fn file_spec(name: &str, path: &Path) -> source::file::FileSpec {
    source::file::FileSpec {
        name: Arc::from(name),
        path: path.to_path_buf(),
    }
}

fn journal_spec(name: &str, units: &[String], journalctl: &Path) -> source::journal::JournalSpec {
    source::journal::JournalSpec {
        name: Arc::from(name),
        journalctl: journalctl.to_path_buf(),
        units: units.to_vec(),
    }
}

fn checkpoint_key(s: &SourceConfig) -> String {
    match &s.kind {
        SourceKind::File { path } => source::file::checkpoint_key(&file_spec(&s.name, path)),
        SourceKind::Journal { units, journalctl } => {
            source::journal::checkpoint_key(&journal_spec(&s.name, units, journalctl))
        }
    }
}

/// Where journald keeps its files; if neither exists, a journal source will see nothing.
const JOURNAL_DIRS: &[&str] = &["/run/log/journal", "/var/log/journal"];

fn start_source(
    s: SourceConfig,
    checkpoint: Option<String>,
    tx: mpsc::Sender<SourceEvent>,
    registry: &SourceRegistry,
) -> Running {
    if matches!(s.kind, SourceKind::Journal { .. })
        && !JOURNAL_DIRS.iter().any(|d| Path::new(d).exists())
    {
        tracing::warn!(
            source = %s.name,
            "no journal files ({}): journald does not seem to run here, so this source will see nothing; \
             point a [[source]] at the log file sshd writes instead (e.g. file = \"/var/log/auth.log\")",
            JOURNAL_DIRS.join(", ")
        );
    }
    let (stx, srx) = watch::channel(false);
    let stats = Arc::new(SourceStats::default());
    let (handle, what) = match &s.kind {
        SourceKind::File { path } => (
            source::file::spawn(file_spec(&s.name, path), checkpoint, tx, srx, stats.clone()),
            path.display().to_string(),
        ),
        SourceKind::Journal { units, journalctl } => (
            source::journal::spawn(
                journal_spec(&s.name, units, journalctl),
                checkpoint,
                tx,
                srx,
                stats.clone(),
            ),
            format!("journal {}", units.join(",")),
        ),
    };
    if let Ok(mut r) = registry.lock() {
        r.retain(|(n, _, _)| n != &s.name);
        r.push((s.name.clone(), what, stats));
    }
    Running {
        cfg: s,
        shutdown: stx,
        handle,
    }
}

async fn stop_source(r: Running) {
    let _ = r.shutdown.send(true);
    let mut h = r.handle;
    if tokio::time::timeout(Duration::from_secs(3), &mut h)
        .await
        .is_err()
    {
        tracing::warn!(source = %r.cfg.name, "source did not stop in 3s; aborting it");
        h.abort();
    }
}

/// Keep sources whose definition did not change (no gap, no re-read), stop the rest, start
/// the new ones from their stored checkpoints.
async fn reload_sources(
    running: Vec<Running>,
    cfg: &Config,
    tx: &mpsc::Sender<SourceEvent>,
    cmd: &mpsc::Sender<Command>,
    registry: &SourceRegistry,
) -> Vec<Running> {
    let wanted = wanted_sources(cfg);
    let mut keep = Vec::new();
    for r in running {
        if wanted.contains(&r.cfg) {
            keep.push(r);
        } else {
            if let Ok(mut reg) = registry.lock() {
                reg.retain(|(n, _, _)| n != &r.cfg.name);
            }
            stop_source(r).await;
        }
    }
    for s in wanted {
        if keep.iter().any(|r| r.cfg == s) {
            continue;
        }
        let (otx, orx) = oneshot::channel();
        let cp = if cmd
            .send(Command::Checkpoint(checkpoint_key(&s), otx))
            .await
            .is_ok()
        {
            orx.await.ok().flatten()
        } else {
            None
        };
        keep.push(start_source(s, cp, tx.clone(), registry));
    }
    keep
}
