//! What each sink receives. Pure: an [`Alert`] in, bytes and headers out.
//!
//! ## The generic webhook schema (version 1)
//!
//! `POST` with `Content-Type: application/json`:
//!
//! ```json
//! {
//!   "schema": "ravelin.alert.v1",
//!   "host": "web1",                      // the machine that sent it
//!   "shape": "single",                   // single | campaign | digest | test
//!   "kind": "ban",                       // ban | unban | spike | health | decoy | audit | null
//!   "severity": "medium",                // info | low | medium | high | critical
//!   "time": "2026-11-21T08:01:02Z",      // RFC 3339, UTC
//!   "title": "banned 203.0.113.7/32 (jail sshd, threshold)",
//!   "text": "...",                       // plain text, may span lines
//!   "count": 1,                          // events this alert stands for
//!   "target": "203.0.113.7/32",          // single bans only, else null
//!   "jail": "sshd",                      // single bans only, else null
//!   "detector": "threshold",             // single bans only, else null
//!   "prefix": null,                      // campaigns: the grouped prefix
//!   "suppressed_before": 0               // alerts this sink's rate limit dropped before this one
//! }
//! ```
//!
//! Chat payloads escape what the chat would interpret: Slack's `<`, `>`, `&` (so a user name
//! like `<!channel>` cannot ping everyone), and Discord mentions are disabled outright.

use serde_json::json;

use super::Severity;
use super::config::SinkKind;
use super::policy::{Alert, fmt_time};

/// Discord rejects content over 2000 characters.
const DISCORD_MAX: usize = 1900;
/// Slack truncates very long texts; keep well under its limit.
const SLACK_MAX: usize = 3500;

/// A rendered HTTP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPayload {
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Extra headers (ntfy's Title, Priority, Tags).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Everything a sink needs besides the alert.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// This machine's name.
    pub host: &'a str,
    /// How many alerts the sink's rate limit dropped since the last one went out.
    pub suppressed_before: u64,
}

fn rfc3339(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn headline(a: &Alert, ctx: &Context<'_>) -> String {
    format!(
        "[{}] {}: {}",
        a.severity.as_str().to_uppercase(),
        ctx.host,
        a.title
    )
}

fn body_text(a: &Alert, ctx: &Context<'_>) -> String {
    let mut t = a.text.clone();
    if ctx.suppressed_before > 0 {
        t.push_str(&format!(
            "\n({} earlier alerts were dropped by this channel's rate limit)",
            ctx.suppressed_before
        ));
    }
    t
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut o: String = s.chars().take(max).collect();
    o.push('…');
    o
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// ntfy priorities: 1 (min) .. 5 (urgent).
fn ntfy_priority(s: Severity) -> u8 {
    match s {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

/// Render for an HTTP sink (`kind` must not be email).
pub fn http(kind: SinkKind, a: &Alert, ctx: &Context<'_>) -> HttpPayload {
    let json_body = |v: serde_json::Value| HttpPayload {
        content_type: "application/json",
        headers: Vec::new(),
        body: serde_json::to_vec(&v).unwrap_or_default(),
    };
    match kind {
        SinkKind::Slack => json_body(json!({
            "text": cut(
                &format!("*{}*\n{}", slack_escape(&headline(a, ctx)), slack_escape(&body_text(a, ctx))),
                SLACK_MAX
            ),
        })),
        SinkKind::Discord => json_body(json!({
            "content": cut(&format!("**{}**\n{}", headline(a, ctx), body_text(a, ctx)), DISCORD_MAX),
            "allowed_mentions": { "parse": [] },
        })),
        SinkKind::Ntfy => {
            let mut tags = vec!["ravelin".to_string(), a.shape.as_str().to_string()];
            if let Some(k) = a.kind {
                tags.push(k.as_str().into());
            }
            HttpPayload {
                content_type: "text/plain; charset=utf-8",
                headers: vec![
                    // Header values must stay on one line; titles are built from cleaned text.
                    ("Title", header_safe(&format!("{}: {}", ctx.host, a.title))),
                    ("Priority", ntfy_priority(a.severity).to_string()),
                    ("Tags", tags.join(",")),
                ],
                body: body_text(a, ctx).into_bytes(),
            }
        }
        SinkKind::Webhook | SinkKind::Email => json_body(json!({
            "schema": "ravelin.alert.v1",
            "host": ctx.host,
            "shape": a.shape.as_str(),
            "kind": a.kind.map(|k| k.as_str()),
            "severity": a.severity.as_str(),
            "time": rfc3339(a.time),
            "title": a.title,
            "text": a.text,
            "count": a.count,
            "target": a.ban.as_ref().map(|b| b.target.to_string()),
            "jail": a.ban.as_ref().map(|b| b.jail.to_string()),
            "detector": a.ban.as_ref().filter(|b| !b.detector.is_empty()).map(|b| b.detector.to_string()),
            "prefix": a.prefix.map(|p| p.to_string()),
            "suppressed_before": ctx.suppressed_before,
        })),
    }
}

/// Printable ASCII only, one line, bounded (for HTTP and mail headers).
pub fn header_safe(s: &str) -> String {
    let o: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect();
    o
}

/// An email: subject and plain-text body.
pub fn email(a: &Alert, ctx: &Context<'_>) -> (String, String) {
    let subject = header_safe(&format!("[ravelin] {}", headline(a, ctx)));
    let mut body = body_text(a, ctx);
    body.push_str(&format!(
        "\n\n--\nhost {}, severity {}, {}, {}\n",
        ctx.host,
        a.severity,
        a.shape.as_str(),
        fmt_time(a.time)
    ));
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertEvent, policy::Policy};
    use std::time::SystemTime;

    fn ban_alert(user: &str) -> Alert {
        let now = SystemTime::now();
        let ev = AlertEvent::ban(
            now,
            "203.0.113.7/32".parse().unwrap(),
            "sshd".into(),
            "threshold",
            &format!("5 failures, last user {user}"),
        );
        Policy::new(&Default::default(), now)
            .push(&ev, now)
            .remove(0)
    }

    const CTX: Context<'static> = Context {
        host: "web1",
        suppressed_before: 0,
    };

    #[test]
    fn webhook_schema() {
        let p = http(SinkKind::Webhook, &ban_alert("root"), &CTX);
        let v: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(v["schema"], "ravelin.alert.v1");
        assert_eq!(v["kind"], "ban");
        assert_eq!(v["target"], "203.0.113.7/32");
        assert_eq!(v["jail"], "sshd");
        assert_eq!(v["detector"], "threshold");
        assert_eq!(v["host"], "web1");
    }

    #[test]
    fn chat_payloads_cannot_ping_everyone() {
        let a = ban_alert("<!channel> @everyone");
        let s = http(SinkKind::Slack, &a, &CTX);
        let v: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
        let text = v["text"].as_str().unwrap();
        assert!(
            text.contains("&lt;!channel&gt;") && !text.contains("<!channel>"),
            "{text}"
        );
        let d = http(SinkKind::Discord, &a, &CTX);
        let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
    }

    #[test]
    fn ntfy_headers_and_email_subject_are_single_lines() {
        let a = ban_alert("x");
        let n = http(SinkKind::Ntfy, &a, &CTX);
        assert!(n.headers.contains(&("Priority", "3".into())));
        assert!(n.headers.contains(&("Tags", "ravelin,single,ban".into())));
        let (subject, body) = email(&a, &CTX);
        assert!(subject.starts_with("[ravelin] [MEDIUM] web1: banned 203.0.113.7/32"));
        assert!(!subject.contains('\n') && body.contains("5 failures"));
    }
}
