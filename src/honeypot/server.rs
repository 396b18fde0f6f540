//! Accept loop, per-session supervision and the russh handler.
//!
//! Each accepted connection becomes one task: the supervisor below starts russh on a
//! [`Watched`] stream and enforces the auth deadline and the total lifetime by killing that
//! stream; russh's own inactivity timeout closes idle sessions; the byte budget is enforced in
//! the stream itself. Limits on sessions (global and per address) are checked at accept, before
//! any cryptography is spent.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet, SshId};
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

use super::auth::AuthPolicy;
use super::events::{self, DecoyEvent, EventSink};
use super::profile::HostProfile;
use super::shell::{self, Shell};
use super::wire::{ClientHello, Tap, Watched};
use super::{DecoyConfig, Limits};
use crate::clock::{Clock, SystemClock};
use crate::event::normalize_addr;
use crate::source::SourceEvent;

/// Longest user name or password recorded (characters); longer ones are cut.
const MAX_FIELD: usize = 256;
/// How often the decoy reports its own counters.
const STATS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// Channels one session may open.
const MAX_CHANNELS: usize = 8;

/// What every session shares.
struct Shared {
    config: Arc<russh::server::Config>,
    policy: AuthPolicy,
    profile: HostProfile,
    limits: Limits,
    sink: EventSink,
    recorder: Option<super::record::Recorder>,
}

/// Who may start a session: the global cap and the cap per source address.
struct Admission {
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    per_addr: Mutex<HashMap<IpAddr, usize>>,
    max_per_addr: usize,
}

impl Admission {
    /// Start a session for `stream`, or close it (by dropping it) when a cap is reached.
    fn admit(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            tracing::debug!("decoy: session cap reached, closing {peer}");
            return;
        };
        let addr = normalize_addr(peer.ip());
        {
            let mut m = self.per_addr.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(addr).or_insert(0);
            if *n >= self.max_per_addr {
                tracing::debug!("decoy: {addr} has {n} sessions open, closing {peer}");
                return;
            }
            *n += 1;
        }
        let this = self.clone();
        tokio::spawn(async move {
            session(this.shared.clone(), stream, peer).await;
            let mut m = this.per_addr.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = m.get_mut(&addr) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&addr);
                }
            }
            drop(permit);
        });
    }
}

/// Run the decoy on `listener` until `shutdown` completes.
///
/// Host keys and the per-install secret are loaded from (or created in) `cfg.state_dir`;
/// events go to `cfg.events_file` and, if given, to `observations` as
/// [`SourceEvent::Observation`]s.
pub async fn serve(
    listeners: Vec<TcpListener>,
    cfg: DecoyConfig,
    observations: Option<mpsc::Sender<SourceEvent>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        cfg.banner.starts_with("SSH-2.0-")
            && cfg.banner.len() <= 253
            && !cfg.banner.contains(['\r', '\n']),
        "banner must start with SSH-2.0-, fit in 253 characters and hold no line break"
    );
    let identity = super::keys::load_or_create(&cfg.state_dir)?;
    let mut profile = HostProfile::from_seed(identity.profile_seed());
    if let Some(h) = &cfg.hostname {
        profile.hostname = h.clone();
    }
    // `ssh -V` in the shell must name what the banner names.
    profile.ssh_version = cfg.banner.trim_start_matches("SSH-2.0-").to_string();
    let sensor = cfg
        .sensor
        .clone()
        .unwrap_or_else(|| profile.hostname.clone());
    let (sink, writer) = match cfg.events_fd {
        Some(fd) => events::start_fd_writer(fd, sensor, observations)?,
        None => events::start_writer(&cfg.events_file, sensor, observations)
            .with_context(|| format!("opening events file {}", cfg.events_file.display()))?,
    };
    let recorder = match &cfg.recordings {
        None => None,
        Some(rc) => {
            let (r, _task) = super::record::Recorder::start(rc.clone())
                .await
                .with_context(|| format!("recordings directory {}", rc.dir.display()))?;
            Some(r)
        }
    };
    let shared = Arc::new(Shared {
        config: Arc::new(russh_config(&cfg, identity.host_keys)),
        policy: AuthPolicy::new(identity.secret)
            .with_fraction(cfg.accept_fraction)
            .with_also(cfg.accept_also.clone()),
        profile,
        limits: cfg.limits.clone(),
        sink,
        recorder,
    });
    let slots = Arc::new(Semaphore::new(cfg.limits.max_sessions));
    // The decoy's own counters, as an event every STATS_EVERY (the daemon turns it into
    // metrics and keeps it out of the Cowrie file).
    let stats_task = cfg.report_stats.then(|| {
        let shared = shared.clone();
        let slots = slots.clone();
        let max = cfg.limits.max_sessions;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STATS_EVERY);
            loop {
                tick.tick().await;
                let e = &shared.sink.stats;
                let mut f = json!({
                    "sessions_open": max.saturating_sub(slots.available_permits()),
                    "events_dropped": e.dropped.load(Ordering::Relaxed),
                    "observations_dropped": e.observations_dropped.load(Ordering::Relaxed),
                    "event_write_errors": e.write_errors.load(Ordering::Relaxed),
                });
                if let Some(r) = &shared.recorder {
                    let s = &r.stats;
                    f["recordings_lines"] = json!(s.written.load(Ordering::Relaxed));
                    f["recordings_dropped"] = json!(s.dropped.load(Ordering::Relaxed));
                    f["recordings_truncated"] = json!(s.truncated.load(Ordering::Relaxed));
                    f["recordings_rotated_out"] = json!(s.rotated_out.load(Ordering::Relaxed));
                    f["recordings_write_errors"] = json!(s.write_errors.load(Ordering::Relaxed));
                }
                let none = SocketAddr::from(([0, 0, 0, 0], 0));
                shared.sink.emit(DecoyEvent {
                    eventid: events::STATS_EVENT,
                    time: SystemClock.now(),
                    src: none,
                    dst: none,
                    session: Arc::from("000000000000"),
                    fields: match f {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    },
                });
            }
        })
    });
    anyhow::ensure!(
        !listeners.is_empty(),
        "the decoy needs at least one listening socket"
    );
    // One accept task per listening socket. Each admits and starts its sessions itself, so a
    // new session is queued on the worker that accepted it instead of crossing threads twice
    // through a central loop.
    let admission = Arc::new(Admission {
        shared: shared.clone(),
        slots: slots.clone(),
        per_addr: Mutex::default(),
        max_per_addr: cfg.limits.max_per_addr,
    });
    let mut acceptors = Vec::new();
    for listener in listeners {
        tracing::info!(
            "decoy listening on {}",
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        let admission = admission.clone();
        acceptors.push(tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        // russh sets TCP_NODELAY only in its own accept loop; without it
                        // every session stalls ~40 ms on Nagle against delayed ACKs.
                        let _ = stream.set_nodelay(true);
                        admission.admit(stream, peer);
                    }
                    Err(e) => {
                        // EMFILE and friends: back off a little instead of spinning.
                        tracing::warn!("decoy accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    shutdown.await;
    for a in acceptors {
        a.abort();
    }
    if let Some(t) = stats_task {
        t.abort();
    }
    drop(admission);
    drop(shared);
    // Sessions still running hold the sink; the writer ends when the last one finishes.
    drop(writer);
    Ok(())
}

/// russh's configuration: the banner, our keys, and algorithm lists in OpenSSH 9.2's order
/// restricted to what russh implements (no post-quantum ML-KEM, which 9.2 did not have).
fn russh_config(cfg: &DecoyConfig, keys: Vec<russh::keys::PrivateKey>) -> russh::server::Config {
    use russh::{cipher, compression, kex, mac};
    const KEX: &[kex::Name] = &[
        kex::CURVE25519,
        kex::CURVE25519_PRE_RFC_8731,
        kex::ECDH_SHA2_NISTP256,
        kex::ECDH_SHA2_NISTP384,
        kex::ECDH_SHA2_NISTP521,
        kex::DH_GEX_SHA256,
        kex::DH_G16_SHA512,
        kex::DH_G18_SHA512,
        kex::DH_G14_SHA256,
        kex::EXTENSION_SUPPORT_AS_SERVER,
        kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
    ];
    const CIPHERS: &[cipher::Name] = &[
        cipher::CHACHA20_POLY1305,
        cipher::AES_128_CTR,
        cipher::AES_192_CTR,
        cipher::AES_256_CTR,
        cipher::AES_128_GCM,
        cipher::AES_256_GCM,
    ];
    const MACS: &[mac::Name] = &[
        mac::HMAC_SHA256_ETM,
        mac::HMAC_SHA512_ETM,
        mac::HMAC_SHA1_ETM,
        mac::HMAC_SHA256,
        mac::HMAC_SHA512,
        mac::HMAC_SHA1,
    ];
    // OpenSSH offers delayed compression only (`zlib@openssh.com`, after auth).
    const COMPRESSION: &[compression::Name] = &[compression::NONE, compression::ZLIB_LEGACY];
    russh::server::Config {
        server_id: SshId::Standard(Cow::Owned(cfg.banner.clone())),
        methods: methods(),
        auth_rejection_time: std::time::Duration::from_secs(1),
        auth_rejection_time_initial: Some(std::time::Duration::ZERO),
        keys,
        max_auth_attempts: cfg.limits.max_auth_tries,
        inactivity_timeout: Some(cfg.limits.idle_timeout),
        preferred: russh::Preferred {
            kex: Cow::Borrowed(KEX),
            cipher: Cow::Borrowed(CIPHERS),
            mac: Cow::Borrowed(MACS),
            compression: Cow::Borrowed(COMPRESSION),
            // Debian's sshd loads its host keys RSA, ECDSA, Ed25519 and offers them in that
            // order, with RSA only as rsa-sha2-* (never SHA-1 `ssh-rsa`, gone since 8.8).
            key: Cow::Owned(vec![
                russh::keys::Algorithm::Rsa {
                    hash: Some(russh::keys::HashAlg::Sha512),
                },
                russh::keys::Algorithm::Rsa {
                    hash: Some(russh::keys::HashAlg::Sha256),
                },
                russh::keys::Algorithm::Ecdsa {
                    curve: russh::keys::EcdsaCurve::NistP256,
                },
                russh::keys::Algorithm::Ed25519,
            ]),
            ..Default::default()
        },
        nodelay: true,
        ..Default::default()
    }
}

/// The methods offered, as Debian's sshd offers them (keyboard-interactive is off there).
fn methods() -> MethodSet {
    let mut m = MethodSet::empty();
    m.push(MethodKind::PublicKey);
    m.push(MethodKind::Password);
    m
}

/// A refusal that keeps offering both methods, as sshd does (russh would otherwise drop the
/// method that just failed, and `Permission denied (publickey)` after a wrong password is a
/// tell).
fn deny() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(methods()),
        partial_success: false,
    }
}

/// Per-connection facts the handler and the supervisor both use.
struct Conn {
    id: Arc<str>,
    src: SocketAddr,
    dst: SocketAddr,
    sink: EventSink,
    tap: Arc<Tap>,
    hello_sent: AtomicBool,
    authed: AtomicBool,
    /// Stages reached (bit i: `events::STAGES[i]`).
    stages: std::sync::atomic::AtomicU8,
}

impl Conn {
    /// Record that the session reached `stage` (once per stage and session).
    fn reach(&self, stage: &'static str) {
        let Some(i) = events::STAGES.iter().position(|s| *s == stage) else {
            return;
        };
        let bit = 1u8 << i;
        if self.stages.fetch_or(bit, Ordering::SeqCst) & bit == 0 {
            self.emit(
                events::STAGE_EVENT,
                json!({"stage": stage, "message": format!("session reached stage {stage}")}),
            );
        }
    }

    fn emit(&self, eventid: &'static str, fields: Value) {
        self.sink.emit(DecoyEvent {
            eventid,
            time: SystemClock.now(),
            src: self.src,
            dst: self.dst,
            session: self.id.clone(),
            fields: match fields {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        });
    }

    /// Emit `cowrie.client.version` and `cowrie.client.kex` once, from the captured hello.
    fn hello(&self) {
        if self.hello_sent.swap(true, Ordering::SeqCst) {
            return;
        }
        let hello = ClientHello::parse(&self.tap.captured());
        if let Some(v) = &hello.version {
            self.emit(
                "cowrie.client.version",
                json!({"version": v, "message": format!("Remote SSH version: {v}")}),
            );
        }
        if let Some(k) = &hello.kex {
            let list = |s: &str| -> Vec<String> {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            let hassh = k.hassh();
            self.emit(
                "cowrie.client.kex",
                json!({
                    "hassh": hassh,
                    "hasshAlgorithms": k.hassh_algorithms(),
                    "kexAlgs": list(&k.kex),
                    "keyAlgs": list(&k.host_key),
                    "encCS": list(&k.enc_cs),
                    "macCS": list(&k.mac_cs),
                    "compCS": list(&k.comp_cs),
                    "langCS": list(&k.lang_cs),
                    "message": format!("SSH client hassh fingerprint: {hassh}"),
                }),
            );
        }
    }
}

/// Run one session to its end, then record `cowrie.session.closed`.
async fn session(shared: Arc<Shared>, stream: TcpStream, src: SocketAddr) {
    let start = Instant::now();
    let dst = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let tap = Arc::new(Tap::default());
    let conn = Arc::new(Conn {
        id: events::new_session_id(),
        src,
        dst,
        sink: shared.sink.clone(),
        tap: tap.clone(),
        hello_sent: AtomicBool::new(false),
        authed: AtomicBool::new(false),
        stages: std::sync::atomic::AtomicU8::new(0),
    });
    let (sip, sport) = (normalize_addr(src.ip()), src.port());
    let (dip, dport) = (normalize_addr(dst.ip()), dst.port());
    conn.emit(
        "cowrie.session.connect",
        json!({"message": format!("New connection: {sip}:{sport} ({dip}:{dport}) [session: {}]", conn.id)}),
    );
    let handler = Decoy {
        conn: conn.clone(),
        shared: shared.clone(),
        user: String::new(),
        attempts: 0,
        channels: HashMap::new(),
    };
    let limits = &shared.limits;
    let stream = Watched::new(stream, tap.clone(), limits.max_bytes);
    let auth_deadline = tokio::time::sleep(limits.auth_timeout);
    let total = tokio::time::sleep(limits.session_timeout);
    tokio::pin!(auth_deadline, total);
    let started = tokio::select! {
        r = russh::server::run_stream(shared.config.clone(), stream, handler) => r.ok(),
        () = &mut auth_deadline => None,
    };
    if let Some(mut running) = started {
        let mut auth_checked = false;
        // Idle: no byte in either direction for `idle_timeout`. Checked here from the tap's
        // counter rather than left to russh, whose inactivity timer is reset by the server's
        // own loop iterations.
        let mut tick = tokio::time::interval((limits.idle_timeout / 4).clamp(
            std::time::Duration::from_millis(10),
            std::time::Duration::from_secs(1),
        ));
        let mut last_bytes = 0;
        let mut last_change = Instant::now();
        loop {
            tokio::select! {
                _ = &mut running => break,
                _ = tick.tick() => {
                    let now_bytes = tap.bytes.load(Ordering::Relaxed);
                    if now_bytes != last_bytes {
                        last_bytes = now_bytes;
                        last_change = Instant::now();
                    } else if last_change.elapsed() >= limits.idle_timeout {
                        tap.kill();
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut running).await;
                        break;
                    }
                }
                () = &mut auth_deadline, if !auth_checked => {
                    auth_checked = true;
                    if !conn.authed.load(Ordering::SeqCst) {
                        tap.kill();
                    }
                }
                () = &mut total => {
                    tap.kill();
                    // The killed stream ends russh's task promptly; do not wait forever.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut running).await;
                    break;
                }
            }
        }
    }
    conn.hello();
    let secs = start.elapsed().as_secs_f64();
    conn.emit(
        "cowrie.session.closed",
        json!({
            "duration": (secs * 10.0).round() / 10.0,
            "duration_ms": start.elapsed().as_millis() as u64,
            "message": format!("Connection lost after {secs:.1} seconds"),
        }),
    );
}

/// Per-channel shell state.
struct ChannelState {
    shell: Shell,
    pty: bool,
    interactive: bool,
    line: Vec<u8>,
    /// Bytes left to skip of an escape sequence (arrow keys and the like).
    esc: u8,
    /// The previous byte was CR (so a following LF is the same line end).
    last_cr: bool,
    /// Terminal type and size from the pty request (for the recording's header).
    term: String,
    size: (u32, u32),
    /// The asciinema recording of this channel, once it runs a shell or a command.
    rec: Option<super::record::Recording>,
}

/// The russh handler: one per connection.
struct Decoy {
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    user: String,
    attempts: usize,
    channels: HashMap<ChannelId, ChannelState>,
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_FIELD).collect()
}

impl Decoy {
    /// Record and run one command line on `channel`; returns the shell's output.
    fn command(&mut self, channel: ChannelId, line: &str) -> Option<shell::Output> {
        let st = self.channels.get_mut(&channel)?;
        let line = line.trim();
        if line.is_empty() {
            return Some(shell::Output::default());
        }
        let input: String = line.chars().take(shell::MAX_LINE).collect();
        self.conn.emit(
            "cowrie.command.input",
            json!({"input": input, "message": format!("CMD: {input}")}),
        );
        st.shell.set_now(SystemClock.now());
        let out = st.shell.run(line);
        for stage in out.stages.iter() {
            self.conn.reach(stage.as_str());
        }
        for d in &out.downloads {
            let url = clip(&d.url);
            // Cowrie's event and fields; nothing was fetched, so there is no `shasum`.
            self.conn.emit(
                "cowrie.session.file_download",
                json!({
                    "url": url,
                    "outfile": d.outfile.as_deref().map(clip),
                    "destfile": d.outfile.as_deref().map(clip),
                    "tool": d.tool,
                    "message": format!("Download attempt of {url} recorded (not fetched)"),
                }),
            );
        }
        for name in &out.not_found {
            let name = clip(name);
            self.conn.emit(
                "cowrie.command.failed",
                json!({"input": input, "message": format!("Command not found: {name}")}),
            );
        }
        Some(out)
    }

    /// Send output on `channel`, recording it too.
    fn send(
        &self,
        session: &mut Session,
        channel: ChannelId,
        data: Vec<u8>,
    ) -> Result<(), russh::Error> {
        if let Some(r) = self.channels.get(&channel).and_then(|s| s.rec.as_ref()) {
            r.output(&data);
        }
        session.data(channel, data)
    }

    /// Start recording `channel` (shell or exec), if recordings are on.
    fn start_recording(&mut self, channel: ChannelId) {
        let Some(rec) = &self.shared.recorder else {
            return;
        };
        let id = self.conn.id.clone();
        if let Some(st) = self.channels.get_mut(&channel)
            && st.rec.is_none()
        {
            let (w, h) = st.size;
            st.rec = rec.open_term(&id, w, h, &st.term, SystemClock.now()).ok();
        }
    }

    fn new_shell(&self) -> Shell {
        Shell::new(self.shared.profile.clone(), &self.user, SystemClock.now())
    }

    fn motd(&self) -> String {
        let p = &self.shared.profile;
        format!(
            "Linux {} {} {} x86_64\r\n\r\nThe programs included with the Debian GNU/Linux system are free software;\r\nthe exact distribution terms for each program are described in the\r\nindividual files in /usr/share/doc/*/copyright.\r\n\r\nDebian GNU/Linux comes with ABSOLUTELY NO WARRANTY, to the extent\r\npermitted by applicable law.\r\n",
            p.hostname, p.kernel_release, p.kernel_version
        )
    }
}

/// Output for a terminal: LF becomes CR LF when a pty was requested.
fn term(s: &str, pty: bool) -> Vec<u8> {
    if pty {
        s.replace('\n', "\r\n").into_bytes()
    } else {
        s.as_bytes().to_vec()
    }
}

fn end_channel(session: &mut Session, channel: ChannelId, status: i32) -> Result<(), russh::Error> {
    session.exit_status_request(channel, status.clamp(0, 255) as u32)?;
    session.eof(channel)?;
    session.close(channel)
}

impl russh::server::Handler for Decoy {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        self.conn.hello();
        Ok(deny())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        self.conn.hello();
        self.attempts += 1;
        self.conn.reach("spray");
        let ok = self.shared.policy.accepts(user, password);
        let (u, p) = (clip(user), clip(password));
        if ok {
            self.user = u.clone();
            self.conn.emit(
                "cowrie.login.success",
                json!({"username": u, "password": p, "message": format!("login attempt [{u}/{p}] succeeded")}),
            );
            Ok(Auth::Accept)
        } else {
            self.conn.emit(
                "cowrie.login.failed",
                json!({"username": u, "password": p, "message": format!("login attempt [{u}/{p}] failed")}),
            );
            Ok(deny())
        }
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        key: &russh::keys::PublicKey,
    ) -> Result<Auth, Self::Error> {
        self.conn.hello();
        let blob = key.to_bytes().unwrap_or_default();
        let md5 = md5::compute(&blob)
            .0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let u = clip(user);
        let kind = key.algorithm().to_string();
        self.conn.emit(
            "cowrie.client.fingerprint",
            json!({
                "username": u,
                "fingerprint": md5,
                "fingerprint_sha256": key.fingerprint(Default::default()).to_string(),
                "key": key.to_openssh().unwrap_or_default(),
                "type": kind,
                "message": format!("public key attempt for user {u} of type {kind} with fingerprint {md5}"),
            }),
        );
        // Keys are recorded, never accepted: only passwords open the decoy.
        Ok(deny())
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        self.conn.authed.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channels.len() >= MAX_CHANNELS {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        self.channels.insert(
            channel.id(),
            ChannelState {
                shell: self.new_shell(),
                pty: false,
                interactive: false,
                line: Vec::new(),
                esc: 0,
                last_cr: false,
                term: super::record::DEFAULT_TERM.into(),
                size: (80, 24),
                rec: None,
            },
        );
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let host = clip(host_to_connect);
        self.conn.reach("tunnel");
        self.conn.emit(
            "cowrie.direct-tcpip.request",
            json!({
                "dst_ip": host,
                "dst_port": port_to_connect,
                "src_ip": clip(originator_address),
                "src_port": originator_port,
                "message": format!("direct-tcp connection request to {host}:{port_to_connect} from {}:{originator_port}", clip(originator_address)),
            }),
        );
        // Recorded and refused: the decoy never connects anywhere.
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(st) = self.channels.get_mut(&channel) {
            st.pty = true;
            st.term = clip(term).chars().take(64).collect();
            st.size = (col_width.clamp(1, 1000), row_height.clamp(1, 1000));
        }
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        self.start_recording(channel);
        let motd = self.motd();
        let Some(st) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        st.interactive = true;
        let pty = st.pty;
        let mut out = if pty { motd.into_bytes() } else { Vec::new() };
        if pty {
            out.extend(st.shell.prompt().into_bytes());
        }
        if !out.is_empty() {
            self.send(session, channel, out)?;
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        self.start_recording(channel);
        let cut = &data[..data.len().min(shell::MAX_LINE)];
        let line = String::from_utf8_lossy(cut).into_owned();
        let Some(out) = self.command(channel, &line) else {
            return Ok(());
        };
        let pty = self.channels.get(&channel).is_some_and(|s| s.pty);
        if !out.out.is_empty() {
            self.send(session, channel, term(&out.out, pty))?;
        }
        if !out.err.is_empty() {
            let err = term(&out.err, pty);
            if let Some(r) = self.channels.get(&channel).and_then(|s| s.rec.as_ref()) {
                r.output(&err);
            }
            session.extended_data(channel, 1, err)?;
        }
        end_channel(session, channel, out.status)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let mut lines = Vec::new();
        let mut echo = Vec::new();
        let mut close = false;
        {
            let Some(st) = self.channels.get_mut(&channel) else {
                return Ok(());
            };
            if !st.interactive {
                return Ok(());
            }
            if let Some(r) = &st.rec {
                r.input(data);
            }
            for &b in data {
                if st.esc > 0 {
                    st.esc -= 1;
                    // `ESC [ A`: skip the bracket and the final byte.
                    continue;
                }
                let after_cr = std::mem::replace(&mut st.last_cr, b == b'\r');
                match b {
                    b'\r' | b'\n' => {
                        if b == b'\n' && after_cr {
                            continue;
                        }
                        if st.pty {
                            echo.extend_from_slice(b"\r\n");
                        }
                        lines.push(
                            String::from_utf8_lossy(&std::mem::take(&mut st.line)).into_owned(),
                        );
                    }
                    0x7f | 0x08 => {
                        if st.line.pop().is_some() && st.pty {
                            echo.extend_from_slice(b"\x08 \x08");
                        }
                    }
                    0x03 => {
                        st.line.clear();
                        if st.pty {
                            echo.extend_from_slice(b"^C\r\n");
                            echo.extend(st.shell.prompt().into_bytes());
                        }
                    }
                    0x04 => {
                        if st.line.is_empty() {
                            close = true;
                            break;
                        }
                    }
                    0x1b => st.esc = 2,
                    _ if b < 0x20 && b != b'\t' => {}
                    _ => {
                        if st.line.len() < shell::MAX_LINE {
                            st.line.push(b);
                            if st.pty {
                                echo.push(b);
                            }
                        }
                    }
                }
            }
        }
        if !echo.is_empty() {
            self.send(session, channel, echo)?;
        }
        for line in lines {
            let Some(out) = self.command(channel, &line) else {
                break;
            };
            let Some(st) = self.channels.get(&channel) else {
                break;
            };
            let mut buf = term(&out.out, st.pty);
            buf.extend(term(&out.err, st.pty));
            if out.exit {
                if st.pty {
                    buf.extend_from_slice(b"logout\r\n");
                }
                if !buf.is_empty() {
                    self.send(session, channel, buf)?;
                }
                self.channels.remove(&channel);
                return end_channel(session, channel, out.status);
            }
            if st.pty {
                buf.extend(st.shell.prompt().into_bytes());
            }
            if !buf.is_empty() {
                self.send(session, channel, buf)?;
            }
        }
        if close {
            if self.channels.get(&channel).is_some_and(|s| s.pty) {
                self.send(session, channel, b"logout\r\n".to_vec())?;
            }
            self.channels.remove(&channel);
            return end_channel(session, channel, 0);
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // A piped shell (`echo cmd | ssh host`): run what is left, then end as bash would.
        let rest = self
            .channels
            .get_mut(&channel)
            .filter(|s| s.interactive)
            .map(|s| String::from_utf8_lossy(&std::mem::take(&mut s.line)).into_owned());
        if let Some(rest) = rest {
            let mut status = 0;
            if let Some(out) = self.command(channel, &rest) {
                status = out.status;
                if !out.out.is_empty() {
                    self.send(session, channel, out.out.into_bytes())?;
                }
            }
            self.channels.remove(&channel);
            return end_channel(session, channel, status);
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::*;
    use crate::honeypot::DEFAULT_BANNER;

    /// The daemon-facing API: `serve` with an observation channel, driven by the real ssh
    /// client; a refused login arrives as `decoy.login.failed` for 127.0.0.1.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serve_sends_observations_to_the_daemon_channel() {
        if std::process::Command::new("ssh")
            .arg("-V")
            .output()
            .is_err()
        {
            eprintln!("SKIP: needs the OpenSSH client");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cfg = DecoyConfig {
            banner: DEFAULT_BANNER.into(),
            state_dir: dir.path().join("state"),
            events_file: dir.path().join("events.json"),
            events_fd: None,
            report_stats: false,
            recordings: None,
            accept_fraction: 0.25,
            accept_also: Vec::new(),
            sensor: None,
            hostname: None,
            limits: Limits::default(),
        };
        let (tx, mut rx) = mpsc::channel(64);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(vec![listener], cfg, Some(tx), async {
            let _ = stop_rx.await;
        }));
        let askpass = dir.path().join("askpass");
        std::fs::write(&askpass, "#!/bin/sh\necho 'Xk9-not-a-plausible-password'\n").unwrap();
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
        let status = tokio::process::Command::new("ssh")
            .args(["-p", &port.to_string(), "-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
            .args([
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
            ])
            .args(["-o", "NumberOfPasswordPrompts=1", "root@127.0.0.1", "id"])
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .unwrap();
        assert_eq!(status.code(), Some(255));
        let mut rules = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(ev) = rx.recv().await {
                if let SourceEvent::Observation(o) = ev {
                    rules.push(o.rule.to_string());
                    if &*o.rule == "decoy.login.failed" {
                        return Some(o);
                    }
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("a decoy.login.failed observation");
        assert_eq!(found.addr.to_string(), "127.0.0.1");
        assert_eq!(found.user.as_deref(), Some("root"));
        assert_eq!(&*found.source, "decoy");
        assert_eq!(
            rules,
            ["decoy.connect", "decoy.stage.spray", "decoy.login.failed"]
        );
        let _ = stop_tx.send(());
        server.await.unwrap().unwrap();
    }
}
