//! The smallest HTTP server that serves `GET /metrics`: one request per connection, the
//! request head capped at 8 KiB and 5 s, at most 16 connections at once. Anything else gets
//! 404/405/400; nothing here can grow with what a client sends.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::daemon::control::{Envelope, Request};

const MAX_HEAD: usize = 8 * 1024;
const MAX_CONNECTIONS: usize = 16;

/// Serve until the listener fails.
pub async fn serve(listener: TcpListener, to_worker: mpsc::Sender<Envelope>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            drop(stream); // over the cap: refuse rather than queue
            continue;
        };
        let tx = to_worker.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle(stream, tx)).await;
            drop(permit);
        });
    }
}

async fn handle(mut s: TcpStream, tx: mpsc::Sender<Envelope>) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if head.len() > MAX_HEAD {
            return respond(
                &mut s,
                "400 Bad Request",
                "text/plain",
                "request too large\n",
            )
            .await;
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return respond(&mut s, "405 Method Not Allowed", "text/plain", "only GET\n").await;
    }
    if path != "/metrics" && !path.starts_with("/metrics?") {
        return respond(&mut s, "404 Not Found", "text/plain", "see /metrics\n").await;
    }
    let (otx, orx) = oneshot::channel();
    if tx.send((Request::Metrics, otx)).await.is_err() {
        return respond(
            &mut s,
            "503 Service Unavailable",
            "text/plain",
            "shutting down\n",
        )
        .await;
    }
    match orx.await {
        Ok(reply) if reply.ok => {
            let body = reply
                .data
                .as_ref()
                .and_then(|d| d.as_str())
                .unwrap_or("")
                .to_string();
            respond(
                &mut s,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await
        }
        _ => {
            respond(
                &mut s,
                "500 Internal Server Error",
                "text/plain",
                "no metrics\n",
            )
            .await
        }
    }
}

async fn respond(s: &mut TcpStream, status: &str, ctype: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.shutdown().await
}
