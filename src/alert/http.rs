//! A tiny HTTP/1.1 client: one `POST` per connection, over plain TCP or rustls.
//!
//! Why not reqwest: alerts need one request shape, and a full client (hyper, h2, a connection
//! pool, a DNS resolver) would be most of this crate's compile time for it. Bounded by
//! construction: the response head is read up to 8 KiB and only the status line is used; the
//! caller wraps the whole exchange in its timeout. Errors never contain the URL (it is a
//! secret): they say what failed and where (scheme and host).

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The longest response head read.
const MAX_HEAD: u64 = 8192;

/// A parsed `http://` or `https://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Url {
    /// `true` for https.
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl std::fmt::Debug for Url {
    /// The path (tokens live there) is redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}:{}/<redacted>",
            if self.tls { "https" } else { "http" },
            self.host,
            self.port
        )
    }
}

impl Url {
    /// Parse; the error does not repeat the URL.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("the URL must start with http:// or https://".into());
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if authority.contains('@') {
            return Err("user:password@ in the URL is not supported (use token_file)".into());
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let end = r.find(']').ok_or("unclosed [ in the URL's host")?;
            let port = r[end + 1..].strip_prefix(':');
            (r[..end].to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| "bad port in the URL".to_string())?,
            None if tls => 443,
            None => 80,
        };
        if host.is_empty() || path.chars().any(|c| c.is_control() || c == ' ') {
            return Err("the URL has no host, or spaces or control characters".into());
        }
        Ok(Self {
            tls,
            host,
            port,
            path: path.fragment_free(),
        })
    }

    /// `scheme://host:port`, safe to show.
    pub fn origin(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.tls { "https" } else { "http" },
            self.host,
            self.port
        )
    }
}

trait FragmentFree {
    fn fragment_free(self) -> String;
}

impl FragmentFree for String {
    fn fragment_free(mut self) -> String {
        if let Some(i) = self.find('#') {
            self.truncate(i);
        }
        self
    }
}

/// Why a POST failed, and whether retrying may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// What happened (no URL inside).
    pub reason: String,
    /// Connection errors, 429 and 5xx are worth retrying; other 4xx are not.
    pub retryable: bool,
    /// The server's `Retry-After` (seconds form), capped at [`MAX_RETRY_AFTER`].
    pub retry_after: Option<std::time::Duration>,
}

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

fn retry(reason: String) -> HttpError {
    HttpError {
        reason,
        retryable: true,
        retry_after: None,
    }
}

fn permanent(reason: String) -> HttpError {
    HttpError {
        reason,
        retryable: false,
        retry_after: None,
    }
}

/// POST `body` to `url`; Ok(status) for 2xx.
pub async fn post(
    url: &Url,
    tls: Option<&TlsConnector>,
    content_type: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<u16, HttpError> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| retry(format!("connect to {}: {e}", url.origin())))?;
    let _ = tcp.set_nodelay(true);
    if url.tls {
        let conn =
            tls.ok_or_else(|| permanent("https is not available (TLS setup failed)".into()))?;
        let name = super::tls::server_name(&url.host).map_err(permanent)?;
        let s = conn
            .connect(name, tcp)
            .await
            .map_err(|e| retry(format!("TLS handshake with {}: {e}", url.origin())))?;
        exchange(s, url, content_type, headers, body).await
    } else {
        exchange(tcp, url, content_type, headers, body).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    url: &Url,
    content_type: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<u16, HttpError> {
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let default_port = if url.tls { 443 } else { 80 };
    let host = if url.port == default_port {
        host
    } else {
        format!("{host}:{}", url.port)
    };
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ravelin/{}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        url.path,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {}\r\n", super::payload::header_safe(v)));
    }
    req.push_str("\r\n");
    let io = |e: std::io::Error| retry(format!("talking to {}: {e}", url.origin()));
    s.write_all(req.as_bytes()).await.map_err(io)?;
    s.write_all(body).await.map_err(io)?;
    s.flush().await.map_err(io)?;
    let mut r = BufReader::new(s.take(MAX_HEAD));
    let mut line = String::new();
    r.read_line(&mut line).await.map_err(io)?;
    let status: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|l| l.get(2..5))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| retry(format!("{} sent no HTTP status line", url.origin())))?;
    if (200..=299).contains(&status) {
        return Ok(status);
    }
    if status != 429 && !(500..=599).contains(&status) {
        return Err(permanent(format!(
            "{} answered {status} (not retried)",
            url.origin()
        )));
    }
    // Rate limited or unavailable: honour Retry-After (seconds) if the head carries one.
    let mut retry_after = None;
    loop {
        line.clear();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("retry-after")
            && let Ok(secs) = v.trim().parse::<u64>()
        {
            retry_after = Some(std::time::Duration::from_secs(secs).min(MAX_RETRY_AFTER));
        }
    }
    Err(HttpError {
        reason: format!("{} answered {status}", url.origin()),
        retryable: true,
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://hooks.slack.com/services/T0/B0/XYZ").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (true, "hooks.slack.com", 443)
        );
        assert_eq!(u.path, "/services/T0/B0/XYZ");
        assert!(!format!("{u:?}").contains("XYZ"));
        let u = Url::parse("http://[::1]:8080?topic=x#frag").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8080, "/?topic=x")
        );
        let u = Url::parse("http://127.0.0.1:9/a").unwrap();
        assert_eq!(u.origin(), "http://127.0.0.1:9");
        for bad in [
            "ftp://x/",
            "http://",
            "http://u:p@h/",
            "http://h:99999/",
            "http://h/a b",
        ] {
            let e = Url::parse(bad).unwrap_err();
            assert!(!e.contains(bad), "{e}");
        }
    }

    async fn answer(head: &'static str) -> Result<u16, HttpError> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/x", l.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(head.as_bytes()).await;
        });
        post(&url, None, "text/plain", &[], b"hi").await
    }

    #[tokio::test]
    async fn statuses_decide_retries_and_retry_after_is_honoured() {
        assert_eq!(answer("HTTP/1.1 204 No Content\r\n\r\n").await, Ok(204));
        let e = answer("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n\r\n")
            .await
            .unwrap_err();
        assert!(e.retryable);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(7)));
        let e = answer("HTTP/1.1 503 Busy\r\nRetry-After: 99999\r\n\r\n")
            .await
            .unwrap_err();
        assert_eq!(e.retry_after, Some(MAX_RETRY_AFTER));
        let e = answer("HTTP/1.1 404 Not Found\r\n\r\n").await.unwrap_err();
        assert!(!e.retryable && e.reason.contains("404"), "{e}");
        let e = answer("garbage\r\n").await.unwrap_err();
        assert!(e.retryable, "{e}");
    }
}
