//! The control socket: a Unix stream socket (mode 0600 in a 0700 directory) speaking one JSON
//! object per line. The daemon checks the peer's credentials (SO_PEERCRED) and serves only
//! root and its own user. The CLI is the client; `--json` output is the `data` part verbatim.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// Largest request line accepted (a request is tiny; anything bigger is garbage).
const MAX_REQUEST: usize = 64 * 1024;

/// A request from the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Daemon, sources, jails, counters.
    Status,
    /// Active bans.
    Bans,
    /// Jails with their settings and state.
    Jails,
    /// Prometheus text exposition (the data is a string).
    Metrics,
    /// Ban a target by hand.
    Ban {
        /// Address or CIDR.
        target: String,
        /// Length in seconds; `None` with `permanent = false` means the default (1h).
        seconds: Option<u64>,
        /// Never expires.
        #[serde(default)]
        permanent: bool,
        /// Stored with the ban.
        #[serde(default)]
        reason: String,
    },
    /// Prove the layers are effective: a synthetic ban through decide, store and the kernel.
    Selftest,
    /// What is known about one address.
    Explain {
        /// The address.
        target: String,
    },
    /// Lift a ban.
    Unban {
        /// Address or CIDR.
        target: String,
    },
}

/// A reply: `{"ok": true, "data": ...}` or `{"ok": false, "error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    /// Did it work?
    pub ok: bool,
    /// The payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// What went wrong, in words that say what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    /// Success.
    pub fn ok(data: serde_json::Value) -> Self {
        Self {
            ok: true,
            data: Some(data),
            error: None,
        }
    }
    /// Failure.
    pub fn err(msg: impl Into<String>) -> Self {
        Self {
            ok: false,
            data: None,
            error: Some(msg.into()),
        }
    }
}

/// A request on its way to the pipeline worker, with the channel for its reply.
pub type Envelope = (Request, oneshot::Sender<Reply>);

/// Bind the socket: make its directory (0700), refuse if another daemon answers on it, remove
/// a stale file, bind, chmod 0600. Done first at start, before the store or the firewall is
/// touched, so a second daemon on the same config changes nothing. Blocking (std) so it can
/// run before the runtime exists; [`serve`] takes it over.
pub fn bind(path: &Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| anyhow::anyhow!("cannot restrict {} to 0700: {e}", dir.display()))?;
    }
    if path.exists() {
        if StdUnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another ravelin daemon is already listening on {}; stop it first",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .map_err(|e| anyhow::anyhow!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    let l = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| anyhow::anyhow!("cannot bind control socket {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Accept connections forever, forwarding requests to the worker.
pub async fn serve(listener: std::os::unix::net::UnixListener, to_worker: mpsc::Sender<Envelope>) {
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot serve the control socket");
            return;
        }
    };
    let me = nix::unistd::geteuid().as_raw();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let allowed = match stream.peer_cred() {
            Ok(c) => c.uid() == 0 || c.uid() == me,
            Err(_) => false,
        };
        let tx = to_worker.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, allowed, tx).await {
                tracing::debug!(error = %e, "control connection ended with an error");
            }
        });
    }
}

async fn handle(
    stream: UnixStream,
    allowed: bool,
    tx: mpsc::Sender<Envelope>,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(r).take(MAX_REQUEST as u64);
    let mut line = String::new();
    let reply = if !allowed {
        Reply::err("permission denied: only root or the daemon's user may use the control socket")
    } else {
        match tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await {
            Err(_) => Reply::err("timed out waiting for a request"),
            Ok(Err(e)) => Reply::err(format!("cannot read request: {e}")),
            Ok(Ok(_)) => match serde_json::from_str::<Request>(line.trim()) {
                Err(e) => Reply::err(format!("bad request: {e}")),
                Ok(req) => {
                    let (otx, orx) = oneshot::channel();
                    if tx.send((req, otx)).await.is_err() {
                        Reply::err("the daemon is shutting down")
                    } else {
                        orx.await
                            .unwrap_or_else(|_| Reply::err("the daemon dropped the request"))
                    }
                }
            },
        }
    };
    let mut out = serde_json::to_vec(&reply).unwrap_or_default();
    out.push(b'\n');
    w.write_all(&out).await?;
    w.shutdown().await
}

use tokio::io::AsyncReadExt as _;

/// Client side (blocking): send one request, read one reply.
pub fn call(socket: &Path, req: &Request) -> anyhow::Result<Reply> {
    call_with_timeout(socket, req, Duration::from_secs(60))
}

/// [`call`] with a bound on the wait for the reply.
pub fn call_with_timeout(socket: &Path, req: &Request, timeout: Duration) -> anyhow::Result<Reply> {
    let mut s = StdUnixStream::connect(socket).map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the daemon at {} ({e}); is `ravelin run` running with this config? (pass the same --config)",
            socket.display()
        )
    })?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut body = serde_json::to_vec(req)?;
    body.push(b'\n');
    s.write_all(&body)?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    serde_json::from_str(line.trim())
        .map_err(|e| anyhow::anyhow!("unreadable reply from the daemon: {e}"))
}

/// The socket path for a config (kept as a function so tests and the CLI agree).
pub fn socket_path(cfg: &crate::config::Config) -> PathBuf {
    cfg.control_socket.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_wire_form() {
        let r = Request::Ban {
            target: "203.0.113.7".into(),
            seconds: Some(3600),
            permanent: false,
            reason: "x".into(),
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"cmd":"ban","target":"203.0.113.7","seconds":3600,"permanent":false,"reason":"x"}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"status"}"#).unwrap(),
            Request::Status
        );
        assert!(
            serde_json::from_str::<Request>(r#"{"cmd":"unban","target":"1.2.3.4","x":1}"#).is_err()
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"rm -rf"}"#).is_err());
    }
}
