//! The hand-written walk over the parsed TOML table that collects every error with its key
//! path. Each section is read with a [`Section`] that remembers which keys were consumed, so
//! unknown keys (typos) are reported too, like `deny_unknown_fields` but all at once.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use toml::{Table, Value};

use super::{
    Backend, Config, EnforceConfig, EnumerationConfig, JailConfig, PrefixConfig, RecidiveConfig,
    SourceConfig, SourceKind, StoreConfig, TrustConfig, WindowConfig, parse_duration,
};
use crate::event::BanLength;

type Errors = Vec<(String, String)>;

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/ravelin")
}
fn default_control_socket() -> PathBuf {
    PathBuf::from("/run/ravelin/ravelin.sock")
}
fn default_table() -> String {
    "ravelin".into()
}
fn default_retention() -> Duration {
    Duration::from_secs(90 * 86_400)
}
const DEFAULT_MAX_RETRY: u32 = 5;
const DEFAULT_FIND_TIME: Duration = Duration::from_secs(600);
const DEFAULT_BAN_TIME: Duration = Duration::from_secs(600);
const DEFAULT_FACTOR: f64 = 2.0;
const DEFAULT_BAN_MAX: Duration = Duration::from_secs(30 * 86_400);
const DEFAULT_MAX_TRACKED: usize = 1_000_000;
/// Ten bans within the retention window (90 days by default) make the next one permanent.
const DEFAULT_PERMANENT_AFTER: u32 = 10;

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.type_str().to_string(),
    }
}

/// Low-and-slow defaults: a score of 10 in a day, 20 in a week. A legitimate user's failures
/// are cleared by their next successful login, so only sources that never log in accumulate.
fn default_windows() -> Vec<WindowConfig> {
    vec![
        WindowConfig {
            threshold: 10.0,
            window: Duration::from_secs(86_400),
        },
        WindowConfig {
            threshold: 20.0,
            window: Duration::from_secs(7 * 86_400),
        },
    ]
}

/// Rotating botnets: 6 distinct failing addresses of one /24 or /64 within 6 hours.
fn default_prefix() -> PrefixConfig {
    PrefixConfig {
        min_addresses: 6,
        window: Duration::from_secs(6 * 3600),
        v4_len: 24,
        v6_len: 64,
    }
}

/// Enumeration: 6 distinct user names from one address within a day.
fn default_enumeration() -> EnumerationConfig {
    EnumerationConfig {
        min_users: 6,
        window: Duration::from_secs(86_400),
        per_prefix: false,
    }
}

/// The sshd jail as the built-in default has it.
pub(super) fn default_jail(name: &str, sources: Vec<String>) -> JailConfig {
    JailConfig {
        name: name.into(),
        enabled: true,
        sources,
        rules: vec!["sshd".into()],
        max_retry: NonZeroU32::new(DEFAULT_MAX_RETRY).expect("non-zero"),
        find_time: DEFAULT_FIND_TIME,
        ban_time: BanLength::For(DEFAULT_BAN_TIME),
        ban_time_factor: DEFAULT_FACTOR,
        ban_time_max: DEFAULT_BAN_MAX,
        max_tracked: DEFAULT_MAX_TRACKED,
        kinds: Vec::new(),
        weights: Vec::new(),
        windows: default_windows(),
        prefix: Some(default_prefix()),
        enumeration: Some(default_enumeration()),
    }
}

/// A table being read, with its key path and the keys consumed so far.
struct Section<'a> {
    path: String,
    table: &'a Table,
    used: HashSet<&'static str>,
}

impl<'a> Section<'a> {
    fn new(path: impl Into<String>, table: &'a Table) -> Self {
        Self {
            path: path.into(),
            table,
            used: HashSet::new(),
        }
    }

    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    fn get(&mut self, k: &'static str) -> Option<&'a Value> {
        self.used.insert(k);
        self.table.get(k)
    }

    fn string(&mut self, k: &'static str, errs: &mut Errors) -> Option<String> {
        match self.get(k)? {
            Value::String(s) => Some(s.clone()),
            other => {
                errs.push((
                    self.key(k),
                    format!("expected a string, found {}", other.type_str()),
                ));
                None
            }
        }
    }

    fn path(&mut self, k: &'static str, errs: &mut Errors) -> Option<PathBuf> {
        let s = self.string(k, errs)?;
        if s.is_empty() || s.contains('\0') {
            errs.push((self.key(k), "expected a non-empty path".into()));
            return None;
        }
        Some(PathBuf::from(s))
    }

    fn strings(&mut self, k: &'static str, errs: &mut Errors) -> Option<Vec<String>> {
        let key = self.key(k);
        match self.get(k)? {
            Value::Array(items) => {
                let mut out = Vec::new();
                for (i, v) in items.iter().enumerate() {
                    match v {
                        Value::String(s) => out.push(s.clone()),
                        other => errs.push((
                            format!("{key}[{i}]"),
                            format!("expected a string, found {}", other.type_str()),
                        )),
                    }
                }
                Some(out)
            }
            other => {
                errs.push((
                    key,
                    format!("expected an array of strings, found {}", other.type_str()),
                ));
                None
            }
        }
    }

    fn duration(&mut self, k: &'static str, errs: &mut Errors) -> Option<Duration> {
        let key = self.key(k);
        match self.get(k)? {
            Value::String(s) => parse_duration(s).map_err(|e| errs.push((key, e))).ok(),
            Value::Integer(n) if *n >= 0 => Some(Duration::from_secs(*n as u64)),
            other => {
                errs.push((
                    key,
                    format!(
                        "expected a duration like \"10m\", found {}",
                        other.type_str()
                    ),
                ));
                None
            }
        }
    }

    fn integer(&mut self, k: &'static str, min: i64, max: i64, errs: &mut Errors) -> Option<i64> {
        let key = self.key(k);
        match self.get(k)? {
            Value::Integer(n) if (min..=max).contains(n) => Some(*n),
            Value::Integer(n) => {
                errs.push((key, format!("{n} is out of range ({min}..={max})")));
                None
            }
            other => {
                errs.push((
                    key,
                    format!("expected an integer, found {}", other.type_str()),
                ));
                None
            }
        }
    }

    fn float(&mut self, k: &'static str, errs: &mut Errors) -> Option<f64> {
        let key = self.key(k);
        match self.get(k)? {
            Value::Integer(n) => Some(*n as f64),
            Value::Float(f) => Some(*f),
            other => {
                errs.push((
                    key,
                    format!("expected a number, found {}", other.type_str()),
                ));
                None
            }
        }
    }

    fn boolean(&mut self, k: &'static str, errs: &mut Errors) -> Option<bool> {
        let key = self.key(k);
        match self.get(k)? {
            Value::Boolean(b) => Some(*b),
            other => {
                errs.push((
                    key,
                    format!("expected true or false, found {}", other.type_str()),
                ));
                None
            }
        }
    }

    fn table(&mut self, k: &'static str, errs: &mut Errors) -> Option<Section<'a>> {
        let key = self.key(k);
        match self.get(k)? {
            Value::Table(t) => Some(Section::new(key, t)),
            other => {
                errs.push((
                    key,
                    format!("expected a table ([{k}]), found {}", other.type_str()),
                ));
                None
            }
        }
    }

    fn array_of_tables(&mut self, k: &'static str, errs: &mut Errors) -> Vec<Section<'a>> {
        let key = self.key(k);
        match self.get(k) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, v) in items.iter().enumerate() {
                    match v {
                        Value::Table(t) => out.push(Section::new(format!("{key}[{i}]"), t)),
                        other => errs.push((
                            format!("{key}[{i}]"),
                            format!("expected a table ([[{k}]]), found {}", other.type_str()),
                        )),
                    }
                }
                out
            }
            Some(other) => {
                errs.push((
                    key,
                    format!(
                        "expected an array of tables ([[{k}]]), found {}",
                        other.type_str()
                    ),
                ));
                Vec::new()
            }
        }
    }

    /// Report keys nobody read.
    fn finish(self, errs: &mut Errors) {
        let mut unknown: Vec<&String> = self
            .table
            .keys()
            .filter(|k| !self.used.contains(k.as_str()))
            .collect();
        unknown.sort();
        for k in unknown {
            let mut known: Vec<&str> = self.used.iter().copied().collect();
            known.sort_unstable();
            errs.push((
                self.key(k),
                format!("unknown key (known here: {})", known.join(", ")),
            ));
        }
    }
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(crate::event::host_net)
        .map_err(|_| {
            format!("{s:?} is not an IP address or CIDR (e.g. \"192.0.2.10\", \"2001:db8::/48\")")
        })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Parse and validate. Returns every error found.
pub(super) fn parse(text: &str) -> Result<Config, Errors> {
    let table: Table = match text.parse::<Table>() {
        Ok(t) => t,
        Err(e) => {
            let msg = e.to_string().trim().replace('\n', "\n    ");
            return Err(vec![(String::new(), format!("TOML syntax: {msg}"))]);
        }
    };
    let mut errs = Errors::new();
    let mut root = Section::new("", &table);

    let state_dir = root
        .path("state_dir", &mut errs)
        .unwrap_or_else(default_state_dir);
    let control_socket = root
        .path("control_socket", &mut errs)
        .unwrap_or_else(default_control_socket);

    let mut allow = Vec::new();
    if let Some(mut s) = root.table("allow", &mut errs) {
        if let Some(list) = s.strings("addresses", &mut errs) {
            for (i, a) in list.iter().enumerate() {
                match parse_net(a) {
                    Ok(n) => allow.push(n),
                    Err(e) => errs.push((format!("allow.addresses[{i}]"), e)),
                }
            }
        }
        s.finish(&mut errs);
    }

    let mut enforce = EnforceConfig {
        backend: Backend::Nftables,
        table: default_table(),
        nft: PathBuf::from("nft"),
    };
    if let Some(mut s) = root.table("enforce", &mut errs) {
        if let Some(b) = s.string("backend", &mut errs) {
            match b.as_str() {
                "nftables" => enforce.backend = Backend::Nftables,
                "log" => enforce.backend = Backend::Log,
                other => errs.push((
                    "enforce.backend".into(),
                    format!("unknown backend {other:?} (use \"nftables\" or \"log\")"),
                )),
            }
        }
        if let Some(t) = s.string("table", &mut errs) {
            if valid_name(&t) {
                enforce.table = t;
            } else {
                errs.push((
                    "enforce.table".into(),
                    format!(
                        "{t:?} is not a valid table name (letters, digits, - and _, at most 64)"
                    ),
                ));
            }
        }
        if let Some(p) = s.path("nft", &mut errs) {
            enforce.nft = p;
        }
        s.finish(&mut errs);
    }

    let mut store = StoreConfig {
        retention: default_retention(),
    };
    if let Some(mut s) = root.table("store", &mut errs) {
        if let Some(d) = s.duration("retention", &mut errs) {
            if d < Duration::from_secs(86_400) {
                errs.push((
                    "store.retention".into(),
                    "must be at least 1d (escalation looks back over it)".into(),
                ));
            } else {
                store.retention = d;
            }
        }
        s.finish(&mut errs);
    }

    let mut sources: Vec<SourceConfig> = Vec::new();
    for mut s in root.array_of_tables("source", &mut errs) {
        let name = s.string("name", &mut errs);
        let file = s.path("file", &mut errs);
        let units = s.strings("journal_units", &mut errs);
        let journalctl = s.path("journalctl", &mut errs);
        let path = s.path.clone();
        let kind = match (file, units) {
            (Some(path), None) => {
                if journalctl.is_some() {
                    errs.push((
                        format!("{}.journalctl", s.path),
                        "only applies to a journal source".into(),
                    ));
                }
                Some(SourceKind::File { path })
            }
            (None, Some(units)) => Some(SourceKind::Journal {
                units,
                journalctl: journalctl.unwrap_or_else(|| PathBuf::from("journalctl")),
            }),
            (Some(_), Some(_)) => {
                errs.push((
                    path.clone(),
                    "set either `file` or `journal_units`, not both".into(),
                ));
                None
            }
            (None, None) => {
                errs.push((
                    path.clone(),
                    "missing `file = \"/path/to/log\"` or `journal_units = [\"ssh.service\"]`"
                        .into(),
                ));
                None
            }
        };
        match name {
            None => errs.push((
                format!("{path}.name"),
                "missing (every source needs a unique name)".into(),
            )),
            Some(n) if !valid_name(&n) => errs.push((
                format!("{path}.name"),
                format!("{n:?} is not a valid name (letters, digits, - and _)"),
            )),
            Some(n) if sources.iter().any(|x| x.name == n) => errs.push((
                format!("{path}.name"),
                format!("duplicate source name {n:?}"),
            )),
            Some(n) => {
                if let Some(kind) = kind {
                    sources.push(SourceConfig { name: n, kind });
                }
            }
        }
        s.finish(&mut errs);
    }

    let mut jails: Vec<JailConfig> = Vec::new();
    for mut s in root.array_of_tables("jail", &mut errs) {
        let path = s.path.clone();
        let name = s.string("name", &mut errs);
        let mut j = default_jail(name.as_deref().unwrap_or(""), Vec::new());
        if let Some(b) = s.boolean("enabled", &mut errs) {
            j.enabled = b;
        }
        if let Some(kinds) = s.strings("kinds", &mut errs) {
            for (i, k) in kinds.iter().enumerate() {
                if k.is_empty()
                    || k.len() > 64
                    || !k
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    errs.push((
                        format!("{path}.kinds[{i}]"),
                        format!("{k:?} is not a valid kind (e.g. \"scan\", \"decoy.login\")"),
                    ));
                }
            }
            j.kinds = kinds;
            if !s.table.contains_key("rules") {
                j.rules.clear();
            }
        }
        match s.strings("sources", &mut errs) {
            Some(list) if list.is_empty() => errs.push((
                format!("{path}.sources"),
                "must name at least one source".into(),
            )),
            Some(list) => {
                for (i, src) in list.iter().enumerate() {
                    if !sources.iter().any(|x| &x.name == src)
                        && !errs.iter().any(|(p, _)| p.starts_with("source["))
                    {
                        let known: Vec<&str> = sources.iter().map(|x| x.name.as_str()).collect();
                        errs.push((
                            format!("{path}.sources[{i}]"),
                            format!(
                                "no [[source]] named {src:?} (defined: {})",
                                if known.is_empty() {
                                    "none".into()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        ));
                    }
                }
                j.sources = list;
            }
            None => {
                if !s.table.contains_key("sources") && j.kinds.is_empty() {
                    errs.push((
                        format!("{path}.sources"),
                        "missing (e.g. sources = [\"auth\"])".into(),
                    ));
                }
            }
        }
        if let Some(rules) = s.strings("rules", &mut errs) {
            for (i, r) in rules.iter().enumerate() {
                if !crate::matcher::known_rule_sets().contains(&r.as_str()) {
                    errs.push((
                        format!("{path}.rules[{i}]"),
                        format!(
                            "unknown rule set {r:?} (built-in: {})",
                            crate::matcher::known_rule_sets().join(", ")
                        ),
                    ));
                }
            }
            if rules.is_empty() {
                errs.push((
                    format!("{path}.rules"),
                    "must name at least one rule set".into(),
                ));
            }
            j.rules = rules;
        }
        if let Some(n) = s.integer("max_retry", 1, 100_000, &mut errs) {
            j.max_retry = NonZeroU32::new(n as u32).expect("range checked");
        }
        if let Some(d) = s.duration("find_time", &mut errs) {
            if d.is_zero() {
                errs.push((format!("{path}.find_time"), "must be longer than 0s".into()));
            } else {
                j.find_time = d;
            }
        }
        let ban_key = format!("{path}.ban_time");
        match s.get("ban_time") {
            Some(Value::String(t)) if t == "permanent" => j.ban_time = BanLength::Permanent,
            Some(_) => {
                if let Some(d) = s.duration("ban_time", &mut errs) {
                    if d.is_zero() {
                        errs.push((ban_key, "must be longer than 0s (or \"permanent\")".into()));
                    } else {
                        j.ban_time = BanLength::For(d);
                    }
                }
            }
            None => {}
        }
        if let Some(f) = s.float("ban_time_factor", &mut errs) {
            if !(1.0..=1000.0).contains(&f) {
                errs.push((
                    format!("{path}.ban_time_factor"),
                    format!("{f} is out of range (1 to 1000; 1 disables escalation)"),
                ));
            } else {
                j.ban_time_factor = f;
            }
        }
        if let Some(d) = s.duration("ban_time_max", &mut errs) {
            j.ban_time_max = d;
        }
        // Ends beyond a century are not a length but a typo for "permanent" (and would not fit
        // a kernel timeout or the clock).
        let century = Duration::from_secs(100 * 365 * 86_400);
        if let BanLength::For(b) = j.ban_time {
            if b > century {
                errs.push((
                    format!("{path}.ban_time"),
                    "longer than 100 years: use \"permanent\"".into(),
                ));
            }
        }
        if j.ban_time_max > century {
            errs.push((
                format!("{path}.ban_time_max"),
                "longer than 100 years: use ban_time = \"permanent\" for bans that never end"
                    .into(),
            ));
        }
        if let (BanLength::For(b), m) = (j.ban_time, j.ban_time_max) {
            if m < b {
                errs.push((
                    format!("{path}.ban_time_max"),
                    format!(
                        "is shorter than ban_time ({} < {})",
                        super::format_duration(m),
                        super::format_duration(b)
                    ),
                ));
            }
        }
        if let Some(n) = s.integer("max_tracked", 1_000, 100_000_000, &mut errs) {
            j.max_tracked = n as usize;
        }
        if j.rules.is_empty()
            && j.kinds.is_empty()
            && !errs
                .iter()
                .any(|(p, _)| p.starts_with(&format!("{path}.rules")))
        {
            errs.push((
                format!("{path}.rules"),
                "a jail needs `rules` (text sources) or `kinds` (structured observations)".into(),
            ));
        }
        // Every key of [jail.weights] is a rule id, so there is no unknown-key check here.
        if let Some(w) = s.table("weights", &mut errs) {
            let mut keys: Vec<&String> = w.table.keys().collect();
            keys.sort();
            for k in keys {
                match &w.table[k] {
                    Value::Integer(n) if (0..=100).contains(n) => {
                        j.weights.push((k.clone(), *n as f32))
                    }
                    Value::Float(f) if (0.0..=100.0).contains(f) => {
                        j.weights.push((k.clone(), *f as f32))
                    }
                    other => errs.push((
                        format!("{path}.weights.{k}"),
                        format!("expected a weight from 0 to 100, found {}", show(other)),
                    )),
                }
            }
        }
        match s.get("window") {
            None => {}
            Some(Value::Array(a)) if a.is_empty() => j.windows.clear(),
            Some(_) => {
                j.windows.clear();
                for mut w in s.array_of_tables("window", &mut errs) {
                    let wp = w.path.clone();
                    let threshold = w.float("threshold", &mut errs);
                    let window = w.duration("window", &mut errs);
                    match (threshold, window) {
                        (Some(t), Some(d)) if t > 0.0 && t <= 500.0 && !d.is_zero() => {
                            j.windows.push(WindowConfig {
                                threshold: t as f32,
                                window: d,
                            })
                        }
                        (Some(_), Some(_)) => errs.push((
                            wp.clone(),
                            "threshold must be from above 0 to 500, and window above 0s".into(),
                        )),
                        _ => errs.push((
                            wp.clone(),
                            "needs `threshold` (a score) and `window` (e.g. \"24h\")".into(),
                        )),
                    }
                    w.finish(&mut errs);
                }
            }
        }
        match s.get("prefix") {
            None => {}
            Some(Value::Boolean(false)) => j.prefix = None,
            Some(_) => {
                if let Some(mut p) = s.table("prefix", &mut errs) {
                    let mut c = default_prefix();
                    if let Some(n) = p.integer("min_addresses", 2, 65_536, &mut errs) {
                        c.min_addresses = n as u32;
                    }
                    if let Some(d) = p.duration("window", &mut errs) {
                        c.window = d;
                    }
                    if let Some(n) = p.integer("ipv4_len", 8, 31, &mut errs) {
                        c.v4_len = n as u8;
                    }
                    if let Some(n) = p.integer("ipv6_len", 16, 127, &mut errs) {
                        c.v6_len = n as u8;
                    }
                    p.finish(&mut errs);
                    j.prefix = Some(c);
                }
            }
        }
        match s.get("enumeration") {
            None => {}
            Some(Value::Boolean(false)) => j.enumeration = None,
            Some(_) => {
                if let Some(mut p) = s.table("enumeration", &mut errs) {
                    let mut c = default_enumeration();
                    if let Some(n) = p.integer("min_users", 2, 65_536, &mut errs) {
                        c.min_users = n as u32;
                    }
                    if let Some(d) = p.duration("window", &mut errs) {
                        c.window = d;
                    }
                    if let Some(b) = p.boolean("per_prefix", &mut errs) {
                        c.per_prefix = b;
                    }
                    p.finish(&mut errs);
                    j.enumeration = Some(c);
                }
            }
        }
        match name {
            None => errs.push((
                format!("{path}.name"),
                "missing (every jail needs a unique name)".into(),
            )),
            Some(n) if !valid_name(&n) => errs.push((
                format!("{path}.name"),
                format!("{n:?} is not a valid name (letters, digits, - and _)"),
            )),
            Some(n) if n == "manual" => errs.push((
                format!("{path}.name"),
                "\"manual\" is reserved for bans made with `ravelin ban`".into(),
            )),
            Some(n) if jails.iter().any(|x| x.name == n) => {
                errs.push((format!("{path}.name"), format!("duplicate jail name {n:?}")))
            }
            Some(_) => jails.push(j),
        }
        s.finish(&mut errs);
    }

    let mut recidive = RecidiveConfig {
        permanent_after: Some(DEFAULT_PERMANENT_AFTER),
    };
    if let Some(mut s) = root.table("recidive", &mut errs) {
        if let Some(n) = s.integer("permanent_after", 0, 1_000_000, &mut errs) {
            recidive.permanent_after = if n == 0 { None } else { Some(n as u32) };
        }
        s.finish(&mut errs);
    }
    let mut trust = TrustConfig {
        key_login_ttl: None,
    };
    if let Some(mut s) = root.table("trust", &mut errs) {
        if let Some(d) = s.duration("key_login_ttl", &mut errs) {
            trust.key_login_ttl = if d.is_zero() { None } else { Some(d) };
        }
        s.finish(&mut errs);
    }
    let mut metrics: Option<std::net::SocketAddr> =
        Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9847)));
    if let Some(mut s) = root.table("metrics", &mut errs) {
        if let Some(l) = s.string("listen", &mut errs) {
            match l.parse::<std::net::SocketAddr>() {
                Ok(a) => metrics = Some(a),
                Err(_) => errs.push((
                    "metrics.listen".into(),
                    format!("{l:?} is not an address:port (e.g. \"127.0.0.1:9847\")"),
                )),
            }
        }
        if s.boolean("enabled", &mut errs) == Some(false) {
            metrics = None;
        }
        s.finish(&mut errs);
    }
    let mut alert = crate::alert::AlertConfig::default();
    if let Some(v) = root.get("alert") {
        match crate::alert::parse_alert_config(v) {
            Ok(a) => alert = a,
            Err(e) => errs.extend(e),
        }
    }
    let mut firewall = None;
    if let Some(v) = root.get("firewall") {
        match crate::firewall::parse_policy(v) {
            Ok(p) => firewall = Some(p),
            Err(e) => errs.extend(e),
        }
    }
    // `[audit]` waivers are used by `ravelin audit`; validated here so check-config sees them.
    let mut audit_every = Duration::from_secs(6 * 3600);
    if let Some(a) = root.get("audit") {
        if let Err(e) = crate::audit::waiver::check_waivers(text) {
            errs.extend(e);
        }
        match a.get("every") {
            None => {}
            Some(Value::String(s)) => match parse_duration(s) {
                Ok(d) if d >= Duration::from_secs(1) => audit_every = d,
                Ok(_) => errs.push(("audit.every".into(), "must be at least 1s".into())),
                Err(e) => errs.push(("audit.every".into(), e)),
            },
            Some(_) => errs.push((
                "audit.every".into(),
                "expected a duration like \"6h\"".into(),
            )),
        }
    }
    let honeypot = match root.table("honeypot", &mut errs) {
        Some(s) => parse_honeypot(s, &state_dir, &mut errs),
        None => None,
    };
    // The decoy's telemetry becomes bans through two built-in jails, unless the file has its
    // own jails for `decoy.*` kinds: one for login attempts (N within W), one that bans at
    // once a session that reached one of the configured stages.
    if let Some(h) = &honeypot
        && !jails
            .iter()
            .any(|j| j.kinds.iter().any(|k| k.starts_with("decoy")))
    {
        let mut j = default_jail("decoy", Vec::new());
        j.rules.clear();
        j.kinds = vec!["decoy.login".into()];
        j.max_retry = h.ban_logins;
        j.find_time = h.ban_within;
        j.ban_time = h.ban_time;
        j.windows.clear();
        j.enumeration = None;
        jails.push(j);
        if !h.ban_stages.is_empty() {
            let mut j = default_jail("decoy-intrusion", Vec::new());
            j.rules.clear();
            j.kinds = h
                .ban_stages
                .iter()
                .map(|s| format!("decoy.stage.{s}"))
                .collect();
            j.max_retry = NonZeroU32::new(1).expect("non-zero");
            j.ban_time = h.stage_ban_time;
            j.windows.clear();
            j.prefix = None;
            j.enumeration = None;
            jails.push(j);
        }
    }
    // Scans caught by the kernel become bans through a jail that takes kind `scan`; if the
    // policy enables scan detection and no jail takes it, a built-in one does (ban on the first
    // observation, 1h, escalating like any other).
    if firewall.is_some()
        && !jails
            .iter()
            .any(|j| j.kinds.iter().any(|k| k == "scan") || j.name == "portscan")
    {
        let mut j = default_jail("portscan", Vec::new());
        j.rules.clear();
        j.kinds = vec!["scan".into()];
        j.max_retry = NonZeroU32::new(1).expect("non-zero");
        j.ban_time = BanLength::For(Duration::from_secs(3600));
        j.windows.clear();
        j.prefix = None;
        j.enumeration = None;
        jails.push(j);
    }
    root.finish(&mut errs);

    if errs.is_empty() {
        Ok(Config {
            origin: None,
            state_dir,
            control_socket,
            allow,
            enforce,
            store,
            sources,
            jails,
            recidive,
            trust,
            metrics,
            firewall,
            alert,
            honeypot,
            audit_every,
        })
    } else {
        Err(errs)
    }
}

/// `[honeypot]` and `[honeypot.ban]`.
fn parse_honeypot(
    mut s: Section<'_>,
    state_dir: &std::path::Path,
    errs: &mut Errors,
) -> Option<super::HoneypotConfig> {
    use crate::honeypot::Limits;
    use crate::honeypot::sandbox::SandboxMode;
    let d = Limits::default();
    let mut ok = true;
    let mut listen = Vec::new();
    match s.strings("listen", errs) {
        Some(l) if l.is_empty() => {
            errs.push((
                "honeypot.listen".into(),
                "needs at least one address".into(),
            ));
            ok = false;
        }
        Some(l) => {
            for (i, a) in l.iter().enumerate() {
                match a.parse::<std::net::SocketAddr>() {
                    Ok(a) => listen.push(a),
                    Err(_) => {
                        errs.push((
                            format!("honeypot.listen[{i}]"),
                            format!(
                                "{a:?} is not an address:port (e.g. \"0.0.0.0:22\", \"[::]:22\")"
                            ),
                        ));
                        ok = false;
                    }
                }
            }
        }
        None => {
            errs.push((
                "honeypot.listen".into(),
                "missing: where the decoy listens, e.g. listen = [\"0.0.0.0:22\", \"[::]:22\"]"
                    .into(),
            ));
            ok = false;
        }
    }
    let events_file = s
        .path("events_file", errs)
        .unwrap_or_else(|| PathBuf::from("/var/log/ravelin/decoy.json"));
    let data_dir = s
        .path("data_dir", errs)
        .unwrap_or_else(|| state_dir.join("decoy"));
    let user = s.string("user", errs).unwrap_or_else(|| "nobody".into());
    if user == "root" || user == "0" {
        errs.push((
            "honeypot.user".into(),
            "the decoy talks to attackers: run it as an unprivileged user (default \"nobody\", \
             or a dedicated system user)"
                .into(),
        ));
        ok = false;
    }
    let mut sandbox = SandboxMode::Required;
    if let Some(m) = s.string("sandbox", errs) {
        match SandboxMode::parse(&m) {
            Some(m) => sandbox = m,
            None => {
                errs.push((
                    "honeypot.sandbox".into(),
                    format!("{m:?}: expected \"required\", \"best-effort\" or \"off\""),
                ));
                ok = false;
            }
        }
    }
    let banner = s
        .string("banner", errs)
        .unwrap_or_else(|| crate::honeypot::DEFAULT_BANNER.into());
    if !banner.starts_with("SSH-2.0-") || banner.len() > 253 || banner.contains(['\r', '\n']) {
        errs.push((
            "honeypot.banner".into(),
            "must start with \"SSH-2.0-\", fit in 253 characters and hold no line break".into(),
        ));
        ok = false;
    }
    let hostname = s.string("hostname", errs);
    let sensor = s.string("sensor", errs);
    let count = |s: &mut Section<'_>, k: &'static str, def: usize, errs: &mut Errors| {
        s.integer(k, 1, 1_000_000, errs).map_or(def, |n| n as usize)
    };
    let limits = Limits {
        max_sessions: count(&mut s, "max_sessions", d.max_sessions, errs),
        max_per_addr: count(&mut s, "max_per_addr", d.max_per_addr, errs),
        max_auth_tries: count(&mut s, "max_auth_tries", d.max_auth_tries, errs),
        auth_timeout: s.duration("auth_timeout", errs).unwrap_or(d.auth_timeout),
        idle_timeout: s.duration("idle_timeout", errs).unwrap_or(d.idle_timeout),
        session_timeout: s
            .duration("session_timeout", errs)
            .unwrap_or(d.session_timeout),
        max_bytes: s
            .integer("max_bytes", 1024, 1 << 40, errs)
            .map_or(d.max_bytes, |n| n as u64),
    };
    let mut accept_fraction = 0.25;
    if let Some(f) = s.float("accept_fraction", errs) {
        if (0.0..=1.0).contains(&f) {
            accept_fraction = f;
        } else {
            errs.push((
                "honeypot.accept_fraction".into(),
                format!("{f} is not between 0 (accept nothing) and 1"),
            ));
        }
    }
    let mut accept_also = Vec::new();
    for (i, p) in s
        .strings("accept_also", errs)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match p.split_once(':') {
            Some((u, pw)) if !u.is_empty() => accept_also.push((u.to_string(), pw.to_string())),
            _ => errs.push((
                format!("honeypot.accept_also[{i}]"),
                "expected \"user:password\"".into(),
            )),
        }
    }
    let recordings = s.boolean("recordings", errs).unwrap_or(true);
    let mib = 1024 * 1024;
    let recordings_quota = s
        .integer("recordings_quota_mb", 1, 1 << 20, errs)
        .map_or(512 * mib, |n| n as u64 * mib);
    let recording_max = s
        .integer("recording_max_mb", 1, 1 << 20, errs)
        .map_or(8 * mib, |n| n as u64 * mib);
    let mut ban_logins = NonZeroU32::new(5).expect("non-zero");
    let mut ban_within = Duration::from_secs(3600);
    let mut ban_time = BanLength::For(Duration::from_secs(3600));
    let mut ban_stages = vec!["persistence".to_string(), "download".to_string()];
    let mut stage_ban_time = BanLength::For(Duration::from_secs(7 * 86400));
    if let Some(mut b) = s.table("ban", errs) {
        if let Some(n) = b.integer("logins", 1, 1_000_000, errs) {
            ban_logins = NonZeroU32::new(n as u32).expect("at least 1");
        }
        if let Some(w) = b.duration("within", errs) {
            ban_within = w;
        }
        for (k, slot) in [
            ("ban_time", &mut ban_time),
            ("stage_ban_time", &mut stage_ban_time),
        ] {
            match b.get(k) {
                Some(Value::String(t)) if t == "permanent" => *slot = BanLength::Permanent,
                Some(_) => {
                    if let Some(d) = b.duration(k, errs) {
                        if d.is_zero() || d > Duration::from_secs(100 * 365 * 86400) {
                            errs.push((
                                format!("honeypot.ban.{k}"),
                                "must be between 1s and 100 years (or \"permanent\")".into(),
                            ));
                        } else {
                            *slot = BanLength::For(d);
                        }
                    }
                }
                None => {}
            }
        }
        if let Some(st) = b.strings("stages", errs) {
            const KNOWN: &[&str] = crate::honeypot::events::STAGES;
            for (i, x) in st.iter().enumerate() {
                if !KNOWN.contains(&x.as_str()) {
                    errs.push((
                        format!("honeypot.ban.stages[{i}]"),
                        format!("{x:?} is not a stage (one of {})", KNOWN.join(", ")),
                    ));
                }
            }
            ban_stages = st;
        }
        b.finish(errs);
    }
    s.finish(errs);
    ok.then_some(super::HoneypotConfig {
        listen,
        events_file,
        data_dir,
        user,
        sandbox,
        banner,
        hostname,
        sensor,
        limits,
        accept_fraction,
        accept_also,
        recordings,
        recordings_quota,
        recording_max,
        ban_logins,
        ban_within,
        ban_time,
        ban_stages,
        stage_ban_time,
    })
}
