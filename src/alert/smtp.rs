//! A small SMTP submission client: EHLO, STARTTLS (or implicit TLS), AUTH PLAIN, one message.
//!
//! Written here rather than pulling lettre because alerts send one plain-text message to a
//! fixed list, and the TLS side is already shared with the HTTP sinks. STARTTLS is required
//! when configured (never silently skipped: a server that does not offer it fails the send),
//! AUTH is only ever sent over TLS unless the host is loopback, and every server reply is read
//! with a line and count bound. Addresses were validated by the config; subject and body come
//! from cleaned text, and the body is dot-stuffed.

use std::time::SystemTime;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::config::{EmailConfig, SmtpTls, is_loopback_host};
use super::secret::Secret;

/// Longest reply line read.
const MAX_LINE: u64 = 2048;
/// Most lines in one (multi-line) reply.
const MAX_LINES: usize = 64;

/// Why a send failed; `retryable` for connection problems and 4xx replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpError {
    /// What happened.
    pub reason: String,
    /// Worth retrying.
    pub retryable: bool,
}

impl std::fmt::Display for SmtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

fn io_err(step: &str) -> impl Fn(std::io::Error) -> SmtpError + '_ {
    move |e| SmtpError {
        reason: format!("smtp {step}: {e}"),
        retryable: true,
    }
}

/// Send one message.
pub async fn send(
    cfg: &EmailConfig,
    password: Option<&Secret>,
    tls: Option<&TlsConnector>,
    subject: &str,
    body: &str,
) -> Result<(), SmtpError> {
    let tcp = TcpStream::connect((cfg.host.as_str(), cfg.port))
        .await
        .map_err(io_err("connect"))?;
    let need_tls = || SmtpError {
        reason: "TLS is not available (TLS setup failed)".into(),
        retryable: false,
    };
    match cfg.tls {
        SmtpTls::Implicit => {
            let conn = tls.ok_or_else(need_tls)?;
            let s = handshake(conn, &cfg.host, tcp).await?;
            let mut c = Conn::new(s);
            c.expect(220, "greeting").await?;
            c.ehlo().await?;
            c.deliver(cfg, password, true, subject, body).await
        }
        SmtpTls::None => {
            let mut c = Conn::new(tcp);
            c.expect(220, "greeting").await?;
            c.ehlo().await?;
            c.deliver(cfg, password, false, subject, body).await
        }
        SmtpTls::StartTls => {
            let conn = tls.ok_or_else(need_tls)?;
            let mut c = Conn::new(tcp);
            c.expect(220, "greeting").await?;
            let caps = c.ehlo().await?;
            if !caps.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS")) {
                return Err(SmtpError {
                    reason: "the server does not offer STARTTLS (refusing to send in the clear; use tls = \"implicit\" or another server)".into(),
                    retryable: false,
                });
            }
            c.cmd("STARTTLS", 220, "STARTTLS").await?;
            let tcp = c.r.into_inner();
            let s = handshake(conn, &cfg.host, tcp).await?;
            let mut c = Conn::new(s);
            c.ehlo().await?;
            c.deliver(cfg, password, true, subject, body).await
        }
    }
}

async fn handshake(
    conn: &TlsConnector,
    host: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, SmtpError> {
    let name = super::tls::server_name(host).map_err(|reason| SmtpError {
        reason,
        retryable: false,
    })?;
    conn.connect(name, tcp)
        .await
        .map_err(io_err("TLS handshake"))
}

struct Conn<S> {
    r: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(s: S) -> Self {
        Self {
            r: BufReader::new(s),
        }
    }

    /// Read one reply: (code, text lines).
    async fn reply(&mut self, step: &str) -> Result<(u16, Vec<String>), SmtpError> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            (&mut self.r)
                .take(MAX_LINE)
                .read_line(&mut line)
                .await
                .map_err(io_err(step))?;
            if line.is_empty() {
                return Err(SmtpError {
                    reason: format!("smtp {step}: the server closed the connection"),
                    retryable: true,
                });
            }
            let l = line.trim_end();
            let code: u16 = l.get(..3).and_then(|c| c.parse().ok()).ok_or(SmtpError {
                reason: format!("smtp {step}: not an SMTP reply"),
                retryable: false,
            })?;
            lines.push(l.get(4..).unwrap_or("").to_string());
            if l.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, lines));
            }
            if lines.len() >= MAX_LINES {
                return Err(SmtpError {
                    reason: format!("smtp {step}: reply too long"),
                    retryable: false,
                });
            }
        }
    }

    async fn expect(&mut self, want: u16, step: &str) -> Result<Vec<String>, SmtpError> {
        let (code, lines) = self.reply(step).await?;
        if code != want {
            let text = super::payload::header_safe(&lines.join(" "));
            return Err(SmtpError {
                reason: format!("smtp {step}: server answered {code} {text}"),
                retryable: (400..500).contains(&code),
            });
        }
        Ok(lines)
    }

    async fn write(&mut self, data: &[u8], step: &str) -> Result<(), SmtpError> {
        let s = self.r.get_mut();
        s.write_all(data).await.map_err(io_err(step))?;
        s.flush().await.map_err(io_err(step))
    }

    async fn cmd(&mut self, line: &str, want: u16, step: &str) -> Result<Vec<String>, SmtpError> {
        self.write(format!("{line}\r\n").as_bytes(), step).await?;
        self.expect(want, step).await
    }

    async fn ehlo(&mut self) -> Result<Vec<String>, SmtpError> {
        let me = Some(super::dispatch::hostname())
            .filter(|h| {
                !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            })
            .unwrap_or_else(|| "localhost".into());
        self.cmd(&format!("EHLO {me}"), 250, "EHLO").await
    }

    async fn deliver(
        &mut self,
        cfg: &EmailConfig,
        password: Option<&Secret>,
        encrypted: bool,
        subject: &str,
        body: &str,
    ) -> Result<(), SmtpError> {
        if let (Some(user), Some(pw)) = (&cfg.username, password) {
            if !encrypted && !is_loopback_host(&cfg.host) {
                return Err(SmtpError {
                    reason: "refusing to send the SMTP password without TLS".into(),
                    retryable: false,
                });
            }
            let token = base64(format!("\0{user}\0{}", pw.expose()).as_bytes());
            // The command carries the password: send it, but never echo it in an error.
            self.write(format!("AUTH PLAIN {token}\r\n").as_bytes(), "AUTH")
                .await?;
            self.expect(235, "AUTH").await?;
        }
        self.cmd(&format!("MAIL FROM:<{}>", cfg.from), 250, "MAIL FROM")
            .await?;
        for to in &cfg.to {
            self.cmd(&format!("RCPT TO:<{to}>"), 250, "RCPT TO").await?;
        }
        self.cmd("DATA", 354, "DATA").await?;
        let msg = message(cfg, subject, body, SystemTime::now());
        self.write(msg.as_bytes(), "DATA").await?;
        self.expect(250, "end of DATA").await?;
        let _ = self.cmd("QUIT", 221, "QUIT").await;
        Ok(())
    }
}

/// The message with headers, CRLF line ends, dot-stuffing and the final ".".
fn message(cfg: &EmailConfig, subject: &str, body: &str, now: SystemTime) -> String {
    let date = chrono::DateTime::<chrono::Utc>::from(now).to_rfc2822();
    let id = format!(
        "<{}.{}@ravelin>",
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
        std::process::id()
    );
    let mut m = format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {date}\r\nMessage-ID: {id}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nAuto-Submitted: auto-generated\r\n\r\n",
        cfg.from,
        cfg.to.join(", "),
        super::payload::header_safe(subject)
    );
    for line in body.lines() {
        if line.starts_with('.') {
            m.push('.');
        }
        m.push_str(line);
        m.push_str("\r\n");
    }
    m.push_str(".\r\n");
    m
}

/// Standard base64 (RFC 4648, padded), unwrapped.
pub(crate) fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn message_is_dot_stuffed_with_crlf() {
        let cfg = EmailConfig {
            host: "127.0.0.1".into(),
            port: 25,
            tls: SmtpTls::None,
            from: "r@example.org".into(),
            to: vec!["a@example.org".into(), "b@example.org".into()],
            username: None,
            password: None,
        };
        let m = message(
            &cfg,
            "hi\r\nBcc: x",
            "line\n.hidden\nend",
            SystemTime::now(),
        );
        assert!(m.contains("Subject: hi??Bcc: x\r\n"), "{m}");
        assert!(m.contains("To: a@example.org, b@example.org\r\n"));
        assert!(m.ends_with("\r\nline\r\n..hidden\r\nend\r\n.\r\n"), "{m}");
    }
}
