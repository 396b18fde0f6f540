//! A configured sink with its secrets loaded: one delivery attempt, or attempts with
//! exponential backoff.
//!
//! Secrets are loaded here (when the dispatcher or `alert test` starts) rather than at config
//! validation, because systemd credentials only exist inside the service. A sink that cannot
//! be built (missing secret, bad URL) is reported with its name and the secret's *location*.

use std::fmt;
use std::time::Duration;

use tokio_rustls::TlsConnector;

use super::config::{SinkConfig, SinkKind, SmtpTls};
use super::http::{self, Url};
use super::payload::{self, Context};
use super::policy::Alert;
use super::secret::Secret;
use super::smtp;

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// What happened (never a secret).
    pub reason: String,
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// How long the server asked us to wait (HTTP `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

#[derive(Debug)]
enum Target {
    Http { url: Url, token: Option<Secret> },
    Email { password: Option<Secret> },
}

/// A sink ready to send.
pub struct Sink {
    /// Its config.
    pub cfg: SinkConfig,
    target: Target,
    tls: Option<TlsConnector>,
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.cfg.name)
            .field("kind", &self.cfg.kind)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Sink {
    /// Load the secrets and prepare TLS.
    pub fn build(cfg: &SinkConfig) -> Result<Self, String> {
        let (target, needs_tls) = match cfg.kind {
            SinkKind::Email => {
                let e = cfg.email.as_ref().ok_or("email settings missing")?;
                let password = e.password.as_ref().map(|p| p.load()).transpose()?;
                (Target::Email { password }, e.tls != SmtpTls::None)
            }
            _ => {
                let loc = cfg.url.as_ref().ok_or("no URL configured")?;
                let raw = loc.load()?;
                let url = Url::parse(raw.expose()).map_err(|e| format!("the URL in {loc}: {e}"))?;
                let token = cfg.token.as_ref().map(|t| t.load()).transpose()?;
                let tls = url.tls;
                (Target::Http { url, token }, tls)
            }
        };
        let tls = if needs_tls {
            Some(super::tls::connector(cfg.ca_file.as_deref())?)
        } else {
            None
        };
        Ok(Self {
            cfg: cfg.clone(),
            target,
            tls,
        })
    }

    /// One attempt, bounded by the sink's timeout.
    pub async fn send_once(&self, alert: &Alert, ctx: &Context<'_>) -> Result<(), DeliveryError> {
        let fut = async {
            match &self.target {
                Target::Http { url, token } => {
                    let mut p = payload::http(self.cfg.kind, alert, ctx);
                    if let Some(t) = token {
                        p.headers
                            .push(("Authorization", format!("Bearer {}", t.expose())));
                    }
                    http::post(url, self.tls.as_ref(), p.content_type, &p.headers, &p.body)
                        .await
                        .map(|_| ())
                        .map_err(|e| DeliveryError {
                            reason: e.reason,
                            retryable: e.retryable,
                            retry_after: e.retry_after,
                        })
                }
                Target::Email { password } => {
                    let e = self.cfg.email.as_ref().ok_or(DeliveryError {
                        reason: "email settings missing".into(),
                        retryable: false,
                        retry_after: None,
                    })?;
                    let (subject, body) = payload::email(alert, ctx);
                    smtp::send(e, password.as_ref(), self.tls.as_ref(), &subject, &body)
                        .await
                        .map_err(|e| DeliveryError {
                            reason: e.reason,
                            retryable: e.retryable,
                            retry_after: None,
                        })
                }
            }
        };
        match tokio::time::timeout(self.cfg.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(DeliveryError {
                reason: format!("timed out after {:?}", self.cfg.timeout),
                retryable: true,
                retry_after: None,
            }),
        }
    }

    /// Up to `retries + 1` attempts with exponential backoff; returns the attempts made.
    pub async fn send(&self, alert: &Alert, ctx: &Context<'_>) -> (u32, Result<(), DeliveryError>) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_once(alert, ctx).await {
                Ok(()) => return (attempt, Ok(())),
                Err(e) if e.retryable && attempt <= self.cfg.retries => {
                    // The server's Retry-After wins when it asks for longer than our backoff.
                    let wait =
                        backoff(self.cfg.backoff, attempt).max(e.retry_after.unwrap_or_default());
                    tracing::debug!(sink = %self.cfg.name, attempt, error = %e, ?wait, "alert delivery failed, retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return (attempt, Err(e)),
            }
        }
    }
}

/// The wait after failed attempt `n` (1-based): base, 2 base, 4 base, ... capped.
pub fn backoff(base: Duration, n: u32) -> Duration {
    base.saturating_mul(1u32 << (n - 1).min(16))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::secret::SecretRef;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Duration::from_secs(1);
        let got: Vec<u64> = (1..=4).map(|n| backoff(b, n).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8]);
        assert_eq!(backoff(b, 30), MAX_BACKOFF);
    }

    #[test]
    fn a_built_sink_never_prints_its_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("url");
        let tok = dir.path().join("tok");
        std::fs::write(&url, "http://127.0.0.1:9/topic-SECRETPATH\n").unwrap();
        std::fs::write(&tok, "tk_SECRETTOKEN").unwrap();
        let v: toml::Value = toml::from_str(&format!(
            "[[alert.sink]]\nkind = \"ntfy\"\nurl_file = {:?}\ntoken_file = {:?}\n",
            url.display().to_string(),
            tok.display().to_string()
        ))
        .unwrap();
        let cfg = crate::alert::parse_alert_config(&v["alert"]).unwrap();
        let s = Sink::build(&cfg.sinks[0]).unwrap();
        let shown = format!("{s:?} {cfg:?} {cfg}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("127.0.0.1"), "{shown}");

        let mut bad = cfg.sinks[0].clone();
        bad.url = Some(SecretRef::File(dir.path().join("missing")));
        let e = Sink::build(&bad).unwrap_err();
        assert!(e.contains("missing"), "{e}");
    }
}
