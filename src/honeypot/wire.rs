//! The connection's byte stream, watched and bounded.
//!
//! russh does not expose the client's KEXINIT, and reports the client's version string only
//! after authentication, so [`Watched`] keeps a copy of the first bytes the client sends (its
//! version line and its KEXINIT, both in clear text before the key exchange) and
//! [`ClientHello::parse`] reads the version and the HASSH fingerprint from them. The same
//! wrapper enforces the per-session byte budget and lets the supervisor cut a session off
//! (timeouts) by failing its reads and writes, which ends russh's session task.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How many leading client bytes are kept for parsing the hello.
pub const CAPTURE: usize = 16 * 1024;

/// State shared between the stream wrapper, the handler and the supervisor.
#[derive(Debug, Default)]
pub struct Tap {
    captured: Mutex<Vec<u8>>,
    /// Bytes read from and written to the client.
    pub bytes: AtomicU64,
    killed: AtomicBool,
    /// The last read and write wakers, so a kill also ends a session stuck writing to a client
    /// that never reads.
    wakers: Mutex<[Option<Waker>; 2]>,
}

impl Tap {
    /// The captured leading bytes.
    pub fn captured(&self) -> Vec<u8> {
        self.captured.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn register(&self, slot: usize, cx: &Context<'_>) {
        if let Ok(mut w) = self.wakers.lock() {
            w[slot] = Some(cx.waker().clone());
        }
    }

    /// End the session: pending and future reads and writes fail.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        if let Ok(mut w) = self.wakers.lock() {
            for w in w.iter_mut().filter_map(Option::take) {
                w.wake();
            }
        }
    }
}

/// A stream that records its first bytes, counts traffic against a budget and can be killed.
pub struct Watched<S> {
    inner: S,
    tap: Arc<Tap>,
    max_bytes: u64,
}

impl<S> Watched<S> {
    /// Wrap `inner`; the session ends once `max_bytes` have passed in either direction.
    pub fn new(inner: S, tap: Arc<Tap>, max_bytes: u64) -> Self {
        Self {
            inner,
            tap,
            max_bytes,
        }
    }

    fn check(&self) -> std::io::Result<()> {
        if self.tap.killed.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("session ended by the decoy"));
        }
        if self.tap.bytes.load(Ordering::Relaxed) >= self.max_bytes {
            return Err(std::io::Error::other("session byte limit reached"));
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        // Register before checking, so a kill in between still wakes this task.
        this.tap.register(0, cx);
        this.check()?;
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let new = &buf.filled()[before..];
            this.tap
                .bytes
                .fetch_add(new.len() as u64, Ordering::Relaxed);
            if let Ok(mut c) = this.tap.captured.lock()
                && c.len() < CAPTURE
            {
                let room = CAPTURE - c.len();
                c.extend_from_slice(&new[..new.len().min(room)]);
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        // A short write keeps one large packet from overshooting the budget; the next call
        // fails once it is spent.
        let room = this
            .max_bytes
            .saturating_sub(this.tap.bytes.load(Ordering::Relaxed));
        if room == 0 {
            return Poll::Ready(Err(std::io::Error::other("session byte limit reached")));
        }
        let data = &data[..data.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if r.is_pending() {
            this.tap.register(1, cx);
            this.check()?;
        }
        if let Poll::Ready(Ok(n)) = r {
            this.tap.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// What the client said before the key exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The client's identification line, e.g. `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3`.
    pub version: Option<String>,
    /// The client's KEXINIT name-lists, if a whole KEXINIT was captured.
    pub kex: Option<KexInit>,
}

/// The algorithm lists of a client KEXINIT (client-to-server directions, as HASSH uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KexInit {
    /// Key-exchange algorithms.
    pub kex: String,
    /// Host key algorithms.
    pub host_key: String,
    /// Ciphers, client to server.
    pub enc_cs: String,
    /// MACs, client to server.
    pub mac_cs: String,
    /// Compression, client to server.
    pub comp_cs: String,
    /// Languages, client to server.
    pub lang_cs: String,
}

impl KexInit {
    /// HASSH's input string: `kex;enc;mac;comp`.
    pub fn hassh_algorithms(&self) -> String {
        format!(
            "{};{};{};{}",
            self.kex, self.enc_cs, self.mac_cs, self.comp_cs
        )
    }

    /// The HASSH fingerprint: MD5 of [`Self::hassh_algorithms`], lowercase hex.
    pub fn hassh(&self) -> String {
        format!("{:x}", md5::compute(self.hassh_algorithms()))
    }
}

impl ClientHello {
    /// Parse the captured leading bytes. Tolerates anything: missing or partial parts are
    /// `None`.
    pub fn parse(bytes: &[u8]) -> Self {
        // RFC 4253 4.2: lines before the identification are allowed (servers only, but be
        // lenient); the identification starts with `SSH-` and ends with CR LF (or LF).
        let mut pos = 0;
        let mut version = None;
        while pos < bytes.len() {
            let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let line = &bytes[pos..pos + nl];
            pos += nl + 1;
            if line.starts_with(b"SSH-") {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let line = &line[..line.len().min(255)];
                version = Some(String::from_utf8_lossy(line).into_owned());
                break;
            }
        }
        let kex = version.as_ref().and_then(|_| parse_kexinit(&bytes[pos..]));
        Self { version, kex }
    }
}

fn parse_kexinit(b: &[u8]) -> Option<KexInit> {
    let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let packet = b.get(4..4 + len)?;
    let pad = *packet.first()? as usize;
    let payload = packet.get(1..len.checked_sub(pad)?)?;
    if *payload.first()? != 20 {
        return None;
    }
    let mut rest = payload.get(17..)?; // message type + 16-byte cookie
    let mut lists = Vec::with_capacity(10);
    for _ in 0..10 {
        let n = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let s = rest.get(4..4 + n)?;
        lists.push(String::from_utf8_lossy(s).into_owned());
        rest = &rest[4 + n..];
    }
    let mut it = lists.into_iter();
    let kex = it.next()?;
    let host_key = it.next()?;
    let enc_cs = it.next()?;
    let _enc_sc = it.next()?;
    let mac_cs = it.next()?;
    let _mac_sc = it.next()?;
    let comp_cs = it.next()?;
    let _comp_sc = it.next()?;
    let lang_cs = it.next()?;
    Some(KexInit {
        kex,
        host_key,
        enc_cs,
        mac_cs,
        comp_cs,
        lang_cs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kexinit(lists: &[&str]) -> Vec<u8> {
        let mut payload = vec![20u8];
        payload.extend_from_slice(&[0xAA; 16]);
        for l in lists {
            payload.extend_from_slice(&(l.len() as u32).to_be_bytes());
            payload.extend_from_slice(l.as_bytes());
        }
        payload.push(0); // first_kex_packet_follows
        payload.extend_from_slice(&[0; 4]); // reserved
        let pad = 8 - (payload.len() + 5) % 8 + 4;
        let mut pkt = Vec::new();
        pkt.extend_from_slice(&((payload.len() + pad + 1) as u32).to_be_bytes());
        pkt.push(pad as u8);
        pkt.extend_from_slice(&payload);
        pkt.extend(std::iter::repeat_n(0u8, pad));
        pkt
    }

    #[test]
    fn parses_version_and_hassh() {
        let mut bytes = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n".to_vec();
        bytes.extend(kexinit(&[
            "curve25519-sha256,ext-info-c",
            "ssh-ed25519",
            "chacha20-poly1305@openssh.com",
            "chacha20-poly1305@openssh.com",
            "hmac-sha2-256",
            "hmac-sha2-256",
            "none,zlib@openssh.com",
            "none,zlib@openssh.com",
            "",
            "",
        ]));
        let h = ClientHello::parse(&bytes);
        assert_eq!(
            h.version.as_deref(),
            Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3")
        );
        let k = h.kex.unwrap();
        assert_eq!(
            k.hassh_algorithms(),
            "curve25519-sha256,ext-info-c;chacha20-poly1305@openssh.com;hmac-sha2-256;none,zlib@openssh.com"
        );
        assert_eq!(
            k.hassh(),
            format!("{:x}", md5::compute(k.hassh_algorithms()))
        );
        assert_eq!(k.hassh().len(), 32);
    }

    #[test]
    fn garbage_and_truncation_never_panic() {
        assert_eq!(ClientHello::parse(b""), ClientHello::default());
        assert_eq!(ClientHello::parse(b"GET / HTTP/1.1\r\n").version, None);
        let mut bytes = b"SSH-2.0-x\r\n".to_vec();
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 3, 20]);
        let h = ClientHello::parse(&bytes);
        assert_eq!(h.version.as_deref(), Some("SSH-2.0-x"));
        assert!(h.kex.is_none());
        for cut in 0..60 {
            let mut b = b"SSH-2.0-x\n".to_vec();
            b.extend(kexinit(&["a", "b", "c", "d", "e", "f", "g", "h", "", ""]));
            b.truncate(cut);
            let _ = ClientHello::parse(&b);
        }
    }
}
