//! The `[alert]` config: parsed from the TOML value of the `alert` key, every error reported
//! at once with its key path (`alert.sink[0].url_file`), unknown keys included.
//!
//! ```toml
//! [alert]
//! min_severity = "medium"   # below this: the digest, not the channel
//! digest = "1h"             # digest interval ("1h", "24h") or "off"
//! group_window = "10m"      # bans from one /16 (v4) or /32 (v6) in this window: one campaign
//! dedup_window = "1h"       # the same alert again within this window is suppressed
//! queue = 1024              # bounded input queue; a full queue drops and counts
//!
//! [[alert.sink]]
//! kind = "webhook"          # webhook | slack | discord | ntfy | email
//! url_file = "/etc/ravelin/secrets/webhook-url"   # or url_credential = "name", url_env = "VAR"
//! # name = "ops"  min_severity = "high"  max_per_hour = 30  timeout = "10s"
//! # retries = 3  backoff = "1s"  ca_file = "/etc/ravelin/ca.pem"  digest = true
//! # token_file / token_credential / token_env: a bearer token (ntfy, webhook)
//!
//! [[alert.sink]]
//! kind = "email"
//! smtp_host = "smtp.example.org"
//! smtp_port = 587           # default: 587 starttls, 465 implicit, 25 none
//! tls = "starttls"          # starttls | implicit | none (none: loopback hosts only)
//! from = "ravelin@example.org"
//! to = ["ops@example.org"]
//! username = "ravelin"
//! password_file = "/etc/ravelin/secrets/smtp"   # or password_credential / password_env
//! ```
//!
//! Secrets are never accepted inline (`url = "..."` is an error that says what to use
//! instead); the config only holds where they live, so printing it cannot leak them.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Value;

use super::Severity;
use super::secret::SecretRef;

/// Validated alert settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    /// Events at or above this go to the channel; the rest to the digest.
    pub min_severity: Severity,
    /// Digest interval; `None`: no digest (events below `min_severity` are only counted).
    pub digest: Option<Duration>,
    /// How long bans from one prefix are gathered into one campaign alert.
    pub group_window: Duration,
    /// How long the same alert is suppressed after it went out.
    pub dedup_window: Duration,
    /// Depth of the input queue (and of each sink's queue).
    pub queue: usize,
    /// Where alerts go.
    pub sinks: Vec<SinkConfig>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            min_severity: Severity::Medium,
            digest: Some(Duration::from_secs(3600)),
            group_window: Duration::from_secs(600),
            dedup_window: Duration::from_secs(3600),
            queue: 1024,
            sinks: Vec::new(),
        }
    }
}

/// Sink types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// A generic JSON webhook (schema in [`super::payload`]).
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// A Discord webhook.
    Discord,
    /// An ntfy topic URL.
    Ntfy,
    /// Email over SMTP.
    Email,
}

impl SinkKind {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Ntfy => "ntfy",
            Self::Email => "email",
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required, never optional).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only allowed for a loopback host (a local relay, tests).
    None,
}

/// Email settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// SMTP server host name or address.
    pub host: String,
    /// SMTP port.
    pub port: u16,
    /// TLS mode.
    pub tls: SmtpTls,
    /// Envelope and header sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// AUTH PLAIN user name (with `password`).
    pub username: Option<String>,
    /// Where the SMTP password lives.
    pub password: Option<SecretRef>,
}

/// One sink.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    /// Name in logs, metrics and `alert test` (default `<kind><index>`, e.g. `webhook0`).
    pub name: String,
    /// What it talks to.
    pub kind: SinkKind,
    /// Where the URL lives (HTTP sinks).
    pub url: Option<SecretRef>,
    /// Where a bearer token lives (optional; ntfy access tokens, webhook auth).
    pub token: Option<SecretRef>,
    /// Only alerts at or above this go to this sink (default: all that reach the channel).
    pub min_severity: Option<Severity>,
    /// Whether the digest goes to this sink.
    pub digest: bool,
    /// At most this many alerts per hour; the rest are suppressed and counted, and the next
    /// alert that goes out says how many were.
    pub max_per_hour: u32,
    /// Timeout of one delivery attempt.
    pub timeout: Duration,
    /// Retries after a failed attempt (so `retries + 1` attempts).
    pub retries: u32,
    /// First retry delay; doubles each retry, capped at 5 minutes.
    pub backoff: Duration,
    /// Extra PEM CA bundle for TLS (default: the system's /etc/ssl/certs).
    pub ca_file: Option<PathBuf>,
    /// Email settings (email sinks).
    pub email: Option<EmailConfig>,
}

type Errors = Vec<(String, String)>;

/// Parse the value of the `alert` key. Every error at once, each with its key path.
pub fn parse_alert_config(v: &Value) -> Result<AlertConfig, Vec<(String, String)>> {
    let mut errs: Errors = Vec::new();
    let mut cfg = AlertConfig::default();
    let Some(t) = v.as_table() else {
        return Err(vec![("alert".into(), "must be a table".into())]);
    };
    let mut r = Reader {
        t,
        path: "alert".into(),
        errs: &mut errs,
        used: BTreeSet::new(),
    };
    if let Some(s) = r.severity("min_severity") {
        cfg.min_severity = s;
    }
    if let Some(s) = r.str("digest") {
        if s == "off" {
            cfg.digest = None;
        } else {
            match parse_duration(&s) {
                Ok(d) if d >= Duration::from_secs(60) => cfg.digest = Some(d),
                Ok(_) => r.err("digest", "must be at least 1m (or \"off\")".into()),
                Err(e) => r.err("digest", e),
            }
        }
    }
    if let Some(d) = r.duration("group_window") {
        cfg.group_window = d;
    }
    if let Some(d) = r.duration("dedup_window") {
        cfg.dedup_window = d;
    }
    if let Some(n) = r.int("queue", 1, 1_000_000) {
        cfg.queue = n as usize;
    }
    let sinks = r.t.get("sink").cloned();
    r.used.insert("sink".into());
    r.unknown();
    match sinks {
        None => {}
        Some(Value::Array(list)) => {
            for (i, s) in list.iter().enumerate() {
                let path = format!("alert.sink[{i}]");
                match s.as_table() {
                    Some(t) => {
                        if let Some(sc) = parse_sink(t, &path, i, &mut errs) {
                            cfg.sinks.push(sc);
                        }
                    }
                    None => errs.push((path, "must be a table ([[alert.sink]])".into())),
                }
            }
        }
        Some(_) => errs.push((
            "alert.sink".into(),
            "must be an array of tables ([[alert.sink]])".into(),
        )),
    }
    let mut names = BTreeSet::new();
    for (i, s) in cfg.sinks.iter().enumerate() {
        if !names.insert(s.name.clone()) {
            errs.push((
                format!("alert.sink[{i}].name"),
                format!("duplicate sink name {:?}", s.name),
            ));
        }
    }
    if errs.is_empty() { Ok(cfg) } else { Err(errs) }
}

fn parse_sink(
    t: &toml::map::Map<String, Value>,
    path: &str,
    index: usize,
    errs: &mut Errors,
) -> Option<SinkConfig> {
    let before = errs.len();
    let mut r = Reader {
        t,
        path: path.into(),
        errs,
        used: BTreeSet::new(),
    };
    let kind = match r.str("kind").as_deref() {
        Some("webhook") => Some(SinkKind::Webhook),
        Some("slack") => Some(SinkKind::Slack),
        Some("discord") => Some(SinkKind::Discord),
        Some("ntfy") => Some(SinkKind::Ntfy),
        Some("email") => Some(SinkKind::Email),
        Some(other) => {
            r.err(
                "kind",
                format!("unknown sink kind {other:?} (use webhook, slack, discord, ntfy or email)"),
            );
            None
        }
        None => {
            if !r.t.contains_key("kind") {
                r.err(
                    "kind",
                    "missing (webhook, slack, discord, ntfy or email)".into(),
                );
            }
            None
        }
    };
    let name = r.str("name");
    if let Some(n) = &name
        && (n.is_empty()
            || n.len() > 64
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        r.err("name", "use 1-64 letters, digits, '-' or '_'".into());
    }
    let mut sc = SinkConfig {
        name: name.unwrap_or_else(|| format!("{}{index}", kind.map_or("sink", |k| k.as_str()))),
        kind: kind.unwrap_or(SinkKind::Webhook),
        url: None,
        token: None,
        min_severity: r.severity("min_severity"),
        digest: r.bool("digest").unwrap_or(true),
        max_per_hour: r.int("max_per_hour", 1, 100_000).unwrap_or(30) as u32,
        timeout: r.duration("timeout").unwrap_or(Duration::from_secs(10)),
        retries: r.int("retries", 0, 20).unwrap_or(3) as u32,
        backoff: r.duration("backoff").unwrap_or(Duration::from_secs(1)),
        ca_file: r.str("ca_file").map(PathBuf::from),
        email: None,
    };
    if sc.timeout.is_zero() {
        r.err("timeout", "must be more than 0".into());
    }
    let url = r.secret("url");
    sc.token = r.secret("token");
    if kind == Some(SinkKind::Email) {
        if url.is_some() {
            r.err("url_file", "email sinks use smtp_host, not a URL".into());
        }
        sc.email = parse_email(&mut r);
    } else if kind.is_some() {
        match url {
            Some(u) => sc.url = Some(u),
            None if r.t.contains_key("url") => {}
            None => r.err(
                "url_file",
                "missing: give the URL's location with url_file, url_credential or url_env".into(),
            ),
        }
    }
    r.unknown();
    (errs.len() == before && kind.is_some()).then_some(sc)
}

fn parse_email(r: &mut Reader<'_, '_>) -> Option<EmailConfig> {
    let host = r.str("smtp_host");
    if host.is_none() && !r.t.contains_key("smtp_host") {
        r.err("smtp_host", "missing (the SMTP server)".into());
    }
    let tls = match r.str("tls").as_deref() {
        None | Some("starttls") => SmtpTls::StartTls,
        Some("implicit") => SmtpTls::Implicit,
        Some("none") => SmtpTls::None,
        Some(o) => {
            r.err(
                "tls",
                format!("unknown TLS mode {o:?} (use starttls, implicit or none)"),
            );
            SmtpTls::StartTls
        }
    };
    if tls == SmtpTls::None
        && let Some(h) = &host
        && !is_loopback_host(h)
    {
        r.err(
            "tls",
            format!("tls = \"none\" is only allowed for a loopback smtp_host, not {h:?} (use starttls or implicit)"),
        );
    }
    let default_port = match tls {
        SmtpTls::StartTls => 587,
        SmtpTls::Implicit => 465,
        SmtpTls::None => 25,
    };
    let port = r.int("smtp_port", 1, 65535).unwrap_or(default_port) as u16;
    let from = r.str("from");
    match &from {
        Some(f) => check_mailbox(r, "from", f),
        None if !r.t.contains_key("from") => r.err("from", "missing (the sender address)".into()),
        None => {}
    }
    let to = match r.t.get("to") {
        None => {
            r.err("to", "missing (a list of recipient addresses)".into());
            Vec::new()
        }
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for v in a {
                match v.as_str() {
                    Some(s) => out.push(s.to_string()),
                    None => r.err("to", "must be a list of strings".into()),
                }
            }
            if out.is_empty() {
                r.err("to", "needs at least one recipient".into());
            }
            out
        }
        Some(_) => {
            r.err("to", "must be a list of strings".into());
            Vec::new()
        }
    };
    r.used.insert("to".into());
    for a in &to {
        check_mailbox(r, "to", a);
    }
    let username = r.str("username");
    let password = r.secret("password");
    if username.is_some() != password.is_some() && !r.t.contains_key("password") {
        r.err(
            "username",
            "username and password_file (or password_credential / password_env) go together".into(),
        );
    }
    Some(EmailConfig {
        host: host?,
        port,
        tls,
        from: from?,
        to,
        username,
        password,
    })
}

/// A bare address: one '@', no spaces, angle brackets or control characters (these end up in
/// SMTP commands and headers).
fn check_mailbox(r: &mut Reader<'_, '_>, key: &str, a: &str) {
    let ok = a.len() <= 254
        && a.matches('@').count() == 1
        && !a.starts_with('@')
        && !a.ends_with('@')
        && a.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"<>,;\"()[]\\".contains(c));
    if !ok {
        r.err(
            key,
            format!("{a:?} is not a plain email address (user@host)"),
        );
    }
}

/// `localhost`, or an address on the loopback.
pub fn is_loopback_host(h: &str) -> bool {
    h == "localhost"
        || h.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Durations as elsewhere in the config ("10s", "1h"), plus milliseconds ("250ms") for
/// backoffs and tests.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Some(ms) = s.trim().strip_suffix("ms")
        && let Ok(n) = ms.parse::<u64>()
    {
        return Ok(Duration::from_millis(n));
    }
    crate::config::parse_duration(s)
}

struct Reader<'a, 'e> {
    t: &'a toml::map::Map<String, Value>,
    path: String,
    errs: &'e mut Errors,
    used: BTreeSet<String>,
}

impl Reader<'_, '_> {
    fn err(&mut self, key: &str, msg: String) {
        self.errs.push((format!("{}.{key}", self.path), msg));
    }

    fn get(&mut self, key: &str) -> Option<&Value> {
        self.used.insert(key.into());
        self.t.get(key)
    }

    fn str(&mut self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.err(key, "must be a string".into());
                None
            }
        }
    }

    fn bool(&mut self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Boolean(b) => Some(*b),
            _ => {
                self.err(key, "must be true or false".into());
                None
            }
        }
    }

    fn int(&mut self, key: &str, min: i64, max: i64) -> Option<i64> {
        match self.get(key)? {
            Value::Integer(n) if (min..=max).contains(n) => Some(*n),
            _ => {
                self.err(key, format!("must be a whole number from {min} to {max}"));
                None
            }
        }
    }

    fn duration(&mut self, key: &str) -> Option<Duration> {
        let s = self.str(key)?;
        match parse_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(key, e);
                None
            }
        }
    }

    fn severity(&mut self, key: &str) -> Option<Severity> {
        let s = self.str(key)?;
        let v = Severity::parse(&s);
        if v.is_none() {
            self.err(
                key,
                format!("unknown severity {s:?} (use info, low, medium, high or critical)"),
            );
        }
        v
    }

    /// `<base>_file`, `<base>_credential` or `<base>_env`: at most one. An inline `<base>` is
    /// an error that says what to do instead.
    fn secret(&mut self, base: &str) -> Option<SecretRef> {
        if self.get(base).is_some() {
            self.err(
                base,
                format!("secrets are not accepted inline: put it in a file and use {base}_file, or use {base}_credential (systemd LoadCredential=) or {base}_env"),
            );
        }
        let mut found = Vec::new();
        if let Some(p) = self.str(&format!("{base}_file")) {
            found.push(SecretRef::File(PathBuf::from(p)));
        }
        if let Some(n) = self.str(&format!("{base}_credential")) {
            if n.is_empty() || n.contains('/') || n == "." || n == ".." {
                self.err(
                    &format!("{base}_credential"),
                    "must be a credential name, not a path".into(),
                );
            }
            found.push(SecretRef::Credential(n));
        }
        if let Some(n) = self.str(&format!("{base}_env")) {
            found.push(SecretRef::Env(n));
        }
        if found.len() > 1 {
            self.err(
                &format!("{base}_file"),
                format!("give only one of {base}_file, {base}_credential, {base}_env"),
            );
        }
        found.into_iter().next()
    }

    fn unknown(&mut self) {
        let extra: Vec<String> = self
            .t
            .keys()
            .filter(|k| !self.used.contains(*k))
            .cloned()
            .collect();
        for k in extra {
            self.err(&k, "unknown key".into());
        }
    }
}

impl fmt::Display for AlertConfig {
    /// One line per sink, for `check-config`: locations of secrets, never their values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "alerts: min severity {}, digest {}, group window {}s, dedup window {}s",
            self.min_severity,
            self.digest
                .map_or("off".to_string(), |d| format!("every {}s", d.as_secs())),
            self.group_window.as_secs(),
            self.dedup_window.as_secs()
        )?;
        for s in &self.sinks {
            write!(f, "\n  sink {} ({})", s.name, s.kind.as_str())?;
            if let Some(u) = &s.url {
                write!(f, ": url from {u}")?;
            }
            if let Some(e) = &s.email {
                write!(
                    f,
                    ": {}:{} {:?} -> {}",
                    e.host,
                    e.port,
                    e.tls,
                    e.to.join(", ")
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AlertConfig, Vec<(String, String)>> {
        let v: Value = toml::from_str(text).unwrap();
        parse_alert_config(v.get("alert").unwrap())
    }

    #[test]
    fn the_issue_sample_works_as_written() {
        let c = parse(
            r#"
[[alert.sink]]
kind = "webhook"          # webhook | slack | discord | ntfy | email
url_file = "/etc/ravelin/secrets/webhook-url"
"#,
        )
        .unwrap();
        assert_eq!(c.sinks.len(), 1);
        assert_eq!(c.sinks[0].name, "webhook0");
        assert_eq!(
            c.sinks[0].url,
            Some(SecretRef::File("/etc/ravelin/secrets/webhook-url".into()))
        );
        assert_eq!(c.min_severity, Severity::Medium);
        assert_eq!(c.digest, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn every_error_is_reported_with_its_key_path() {
        let errs = parse(
            r#"
[alert]
min_severity = "loud"
digest = "often"
colour = "red"

[[alert.sink]]
kind = "webhook"
url = "https://hooks.example/secret"

[[alert.sink]]
kind = "pager"

[[alert.sink]]
kind = "email"
smtp_host = "mail.example.org"
tls = "none"
from = "a b@example.org"
to = []
username = "x"

[[alert.sink]]
kind = "slack"
url_file = "/a"
url_env = "B"
"#,
        )
        .unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
        for want in [
            "alert.min_severity",
            "alert.digest",
            "alert.colour",
            "alert.sink[0].url",
            "alert.sink[1].kind",
            "alert.sink[2].tls",
            "alert.sink[2].from",
            "alert.sink[2].to",
            "alert.sink[2].username",
            "alert.sink[3].url_file",
        ] {
            assert!(keys.contains(&want), "{want} missing from {errs:?}");
        }
        // The inline secret is refused, and the error does not repeat it.
        assert!(errs.iter().all(|(_, m)| !m.contains("hooks.example")));
    }

    #[test]
    fn email_defaults_and_loopback_plaintext() {
        let c = parse(
            r#"
[[alert.sink]]
kind = "email"
smtp_host = "127.0.0.1"
tls = "none"
from = "ravelin@example.org"
to = ["ops@example.org"]
"#,
        )
        .unwrap();
        let e = c.sinks[0].email.as_ref().unwrap();
        assert_eq!((e.port, e.tls), (25, SmtpTls::None));
        let c = parse(
            r#"
[[alert.sink]]
kind = "email"
smtp_host = "smtp.example.org"
from = "ravelin@example.org"
to = "ops@example.org"
username = "ravelin"
password_credential = "smtp-password"
"#,
        )
        .unwrap();
        let e = c.sinks[0].email.as_ref().unwrap();
        assert_eq!((e.port, e.tls), (587, SmtpTls::StartTls));
        assert_eq!(
            e.password,
            Some(SecretRef::Credential("smtp-password".into()))
        );
    }

    #[test]
    fn display_and_debug_show_locations_not_secrets() {
        let c = parse(
            r#"
[[alert.sink]]
kind = "ntfy"
url_env = "NTFY_URL"
token_file = "/run/secrets/ntfy"
"#,
        )
        .unwrap();
        let shown = format!("{c}\n{c:?}");
        assert!(shown.contains("environment variable NTFY_URL"), "{shown}");
    }
}
