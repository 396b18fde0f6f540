//! SSH: the effective sshd configuration, in every context a connection can get.
//!
//! Two sources, both reported as evidence:
//!
//! - ravelin's own reader of the files ([`SshdConfig`]): which `file:line` set each value,
//!   including drop-ins read before the main file and every `Match` block (each treated as a
//!   context of its own, since we cannot know which connections it matches);
//! - on a live system, `sshd -T -C user=..,host=..,addr=..,lport=..` for several users
//!   (root, the `AllowUsers` names, local login users, a user that does not exist) and
//!   addresses (public, private, loopback, IPv6): sshd's own answer, Match blocks applied.
//!
//! The verdict is the worst value seen anywhere: one context that accepts passwords is a
//! failure, with the context and the line that caused it in the reason.

use std::collections::HashMap;

use super::{Group, Meta};
use crate::audit::exec;
use crate::audit::sshd_config::SshdConfig;
use crate::audit::{CheckResult, Ctx, Evidence, Severity, Status};

/// Password authentication off.
pub static PASSWORD: Meta = Meta {
    id: "ssh.password-auth",
    title: "SSH password authentication off in every context",
    severity: Severity::High,
    remediation: "set `PasswordAuthentication no` in a drop-in read first (ravelin harden ssh) and remove `yes` from Match blocks and cloud-init drop-ins",
};
/// Keyboard-interactive authentication off.
pub static KBD: Meta = Meta {
    id: "ssh.kbd-interactive",
    title: "SSH keyboard-interactive authentication off in every context",
    severity: Severity::High,
    remediation: "set `KbdInteractiveAuthentication no` (ravelin harden ssh)",
};
/// Root login off.
pub static ROOT: Meta = Meta {
    id: "ssh.root-login",
    title: "SSH root login off",
    severity: Severity::High,
    remediation: "set `PermitRootLogin no` and log in as a named user with sudo",
};
/// AllowUsers or AllowGroups set.
pub static ALLOW: Meta = Meta {
    id: "ssh.allow-users",
    title: "SSH logins restricted by AllowUsers/AllowGroups",
    severity: Severity::Medium,
    remediation: "set `AllowUsers` to the accounts that need SSH (ravelin harden ssh --allow-users)",
};
/// MaxAuthTries <= 3.
pub static TRIES: Meta = Meta {
    id: "ssh.max-auth-tries",
    title: "SSH MaxAuthTries at most 3",
    severity: Severity::Medium,
    remediation: "set `MaxAuthTries 3`",
};
/// LoginGraceTime <= 30 s.
pub static GRACE: Meta = Meta {
    id: "ssh.login-grace-time",
    title: "SSH LoginGraceTime at most 30 s",
    severity: Severity::Low,
    remediation: "set `LoginGraceTime 30`",
};
/// PermitEmptyPasswords no.
pub static EMPTY: Meta = Meta {
    id: "ssh.empty-passwords",
    title: "SSH refuses empty passwords",
    severity: Severity::Critical,
    remediation: "set `PermitEmptyPasswords no`",
};
/// No weak key exchange.
pub static KEX: Meta = Meta {
    id: "ssh.weak-kex",
    title: "SSH offers no weak key exchange",
    severity: Severity::Medium,
    remediation: "set `KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512`",
};
/// No weak ciphers.
pub static CIPHERS: Meta = Meta {
    id: "ssh.weak-ciphers",
    title: "SSH offers no weak ciphers",
    severity: Severity::Medium,
    remediation: "set `Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr`",
};
/// No weak MACs.
pub static MACS: Meta = Meta {
    id: "ssh.weak-macs",
    title: "SSH offers no weak MACs",
    severity: Severity::Medium,
    remediation: "set `MACs hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,umac-128-etm@openssh.com`",
};

/// The SSH group.
pub const GROUP: Group = Group {
    name: "ssh",
    checks: &[
        &PASSWORD, &KBD, &ROOT, &ALLOW, &TRIES, &GRACE, &EMPTY, &KEX, &CIPHERS, &MACS,
    ],
    run,
};

/// OpenSSH 9.2 (Debian 12) built-in defaults, used when nothing sets the keyword.
const DEFAULT_KEX: &str = "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256";
const DEFAULT_CIPHERS: &str = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com";
const DEFAULT_MACS: &str = "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1";

/// Algorithm name prefixes considered weak (SHA-1 or 1024-bit groups, CBC/RC4/3DES, MD5,
/// 64-bit tags), after ssh-audit's and Mozilla's guidance.
const WEAK_KEX: &[&str] = &[
    "diffie-hellman-group1-sha1",
    "diffie-hellman-group14-sha1",
    "diffie-hellman-group-exchange-sha1",
    "gss-",
];
const WEAK_CIPHERS: &[&str] = &[
    "3des-",
    "aes128-cbc",
    "aes192-cbc",
    "aes256-cbc",
    "arcfour",
    "blowfish-",
    "cast128-",
    "rijndael-cbc",
];
const WEAK_MACS: &[&str] = &["hmac-md5", "hmac-sha1", "umac-64", "hmac-ripemd160"];

/// How a value measures up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Meets the baseline.
    Good,
    /// Weaker than the baseline.
    Weak,
    /// Violates it.
    Bad,
}

/// One `sshd -T` answer: the command shown as evidence, and keyword -> values.
pub type Answer = (String, HashMap<String, Vec<String>>);

/// One context's view of a keyword.
#[derive(Debug, Clone)]
struct Item {
    context: String,
    value: String,
    verdict: Verdict,
    evidence: Evidence,
}

/// The sources: parsed files and, on a live system, `sshd -T` per connection context.
pub struct Sources {
    /// The files as read (None when the main file is unreadable).
    pub parsed: Option<SshdConfig>,
    /// `sshd -T` answers: (command, key -> values).
    pub live: Vec<Answer>,
    /// Why live evidence is missing or partial.
    pub notes: Vec<String>,
    main: String,
}

impl Sources {
    /// Reads the files and, when live, asks sshd.
    pub fn gather(ctx: &Ctx) -> Self {
        let main = ctx.sshd_config.display().to_string();
        let mut notes = Vec::new();
        let mut missing = None;
        let parsed = match SshdConfig::load(&ctx.root, &ctx.sshd_config) {
            Ok(c) => {
                notes.extend(c.problems.iter().cloned());
                Some(c)
            }
            Err(e) => {
                missing = Some(e);
                None
            }
        };
        let mut live = Vec::new();
        if ctx.live {
            if ctx.sshd.is_file() {
                let (answers, errs) = ask_sshd(ctx, parsed.as_ref());
                live = answers;
                notes.extend(errs);
            } else {
                notes.push(format!(
                    "{} not found: only the files were read",
                    ctx.sshd.display()
                ));
            }
        }
        if let (Some(e), false) = (&missing, live.is_empty()) {
            notes.push(format!("could not read {e}"));
        }
        Sources {
            parsed,
            live,
            notes,
            main,
        }
    }
}

fn run(ctx: &Ctx) -> Vec<CheckResult> {
    let src = Sources::gather(ctx);
    evaluate(&src)
}

/// Applies every SSH check to gathered sources (pure; unit-tested on fixtures).
pub fn evaluate(src: &Sources) -> Vec<CheckResult> {
    if src.parsed.is_none() && src.live.is_empty() {
        let mut why = format!("no sshd configuration at {} (sshd not installed)", src.main);
        if !src.notes.is_empty() {
            why = format!("{why}; {}", src.notes.join("; "));
        }
        return GROUP.checks.iter().map(|m| m.na(why.clone())).collect();
    }
    let yes_bad = |v: &str| {
        if v.eq_ignore_ascii_case("no") {
            Verdict::Good
        } else {
            Verdict::Bad
        }
    };
    let root = |v: &str| match v.to_ascii_lowercase().as_str() {
        "no" => Verdict::Good,
        "prohibit-password" | "without-password" | "forced-commands-only" => Verdict::Weak,
        _ => Verdict::Bad,
    };
    let tries = |v: &str| match v.parse::<u32>() {
        Ok(n) if n <= 3 => Verdict::Good,
        _ => Verdict::Bad,
    };
    let grace = |v: &str| match parse_time(v) {
        Some(n) if n > 0 && n <= 30 => Verdict::Good,
        _ => Verdict::Bad,
    };
    let kex = |v: &str| weak(v, DEFAULT_KEX, WEAK_KEX);
    let ciphers = |v: &str| weak(v, DEFAULT_CIPHERS, WEAK_CIPHERS);
    let macs = |v: &str| weak(v, DEFAULT_MACS, WEAK_MACS);
    let mut out = vec![
        judge(
            &PASSWORD,
            src,
            "passwordauthentication",
            "PasswordAuthentication",
            "yes",
            &yes_bad,
        ),
        judge(
            &KBD,
            src,
            "kbdinteractiveauthentication",
            "KbdInteractiveAuthentication",
            "yes",
            &yes_bad,
        ),
        judge(
            &ROOT,
            src,
            "permitrootlogin",
            "PermitRootLogin",
            "prohibit-password",
            &root,
        ),
        allow_users(src),
        judge(&TRIES, src, "maxauthtries", "MaxAuthTries", "6", &tries),
        judge(
            &GRACE,
            src,
            "logingracetime",
            "LoginGraceTime",
            "120",
            &grace,
        ),
        judge(
            &EMPTY,
            src,
            "permitemptypasswords",
            "PermitEmptyPasswords",
            "no",
            &|v| {
                if v.eq_ignore_ascii_case("yes") {
                    Verdict::Bad
                } else {
                    Verdict::Good
                }
            },
        ),
        judge(
            &KEX,
            src,
            "kexalgorithms",
            "KexAlgorithms",
            DEFAULT_KEX,
            &kex,
        ),
        judge(
            &CIPHERS,
            src,
            "ciphers",
            "Ciphers",
            DEFAULT_CIPHERS,
            &ciphers,
        ),
        judge(&MACS, src, "macs", "MACs", DEFAULT_MACS, &macs),
    ];
    if !src.notes.is_empty() {
        for r in &mut out {
            r.evidence.push(Evidence {
                source: "note".into(),
                value: Some(src.notes.join("; ")),
                location: None,
            });
        }
    }
    out
}

/// `30`, `30s`, `2m`, `1m30s`, `1h` -> seconds.
pub fn parse_time(v: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut num = String::new();
    for c in v.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let mult = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    if !num.is_empty() {
        total = total.checked_add(num.parse().ok()?)?;
    }
    Some(total)
}

/// The algorithm list sshd would offer for `value` (`+`, `-`, `^` relative to `default`).
pub fn resolve_algos(value: &str, default: &str) -> Vec<String> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_ascii_lowercase)
            .collect()
    };
    let d = split(default);
    if let Some(add) = value.strip_prefix('+') {
        let mut v = d;
        v.extend(split(add));
        v
    } else if let Some(add) = value.strip_prefix('^') {
        let mut v = split(add);
        v.extend(d);
        v
    } else if let Some(rm) = value.strip_prefix('-') {
        let rm = split(rm);
        d.into_iter()
            .filter(|a| {
                !rm.iter()
                    .any(|p| crate::audit::sshd_config::wildmatch(p.as_bytes(), a.as_bytes()))
            })
            .collect()
    } else {
        split(value)
    }
}

fn weak_names(value: &str, default: &str, weak: &[&str]) -> Vec<String> {
    resolve_algos(value, default)
        .into_iter()
        .filter(|a| weak.iter().any(|w| a.starts_with(w)))
        .collect()
}

fn weak(value: &str, default: &str, list: &[&str]) -> Verdict {
    if weak_names(value, default, list).is_empty() {
        Verdict::Good
    } else {
        Verdict::Bad
    }
}

fn items(
    src: &Sources,
    key: &str,
    label: &str,
    default: &str,
    judge: &dyn Fn(&str) -> Verdict,
) -> Vec<Item> {
    let mut v = Vec::new();
    if let Some(c) = &src.parsed {
        let (value, loc) = match c.global(key) {
            Some(d) => (d.value.clone(), Some(d.location())),
            None => (default.to_string(), None),
        };
        let context = match &loc {
            Some(l) if !l.starts_with(&format!("{}:", src.main)) => format!(
                "globally, set at {l} (read before the rest of {}; sshd keeps the first value)",
                src.main
            ),
            Some(l) => format!("globally, set at {l}"),
            None => "globally, by default (not set)".into(),
        };
        let shown = if loc.is_some() {
            format!("{label} {value}")
        } else {
            format!("{label} {value} (not set: sshd's built-in default)")
        };
        let mut ev = Evidence::new(format!("read {} and its includes", src.main), shown);
        if let Some(l) = loc {
            ev = ev.at(l);
        }
        v.push(Item {
            context,
            verdict: judge(&value),
            value,
            evidence: ev,
        });
        for (m, d) in c.in_matches(key) {
            v.push(Item {
                context: format!(
                    "in `Match {}` ({}), set at {}",
                    m.criteria,
                    m.location(),
                    d.location()
                ),
                verdict: judge(&d.value),
                value: d.value.clone(),
                evidence: Evidence::new(
                    format!(
                        "read {} (Match {} at {})",
                        src.main,
                        m.criteria,
                        m.location()
                    ),
                    format!("{label} {}", d.value),
                )
                .at(d.location()),
            });
        }
    }
    for (cmd, vals) in &src.live {
        let Some(value) = vals.get(key).and_then(|x| x.first()) else {
            continue;
        };
        let spec = cmd.rsplit(' ').next().unwrap_or_default();
        v.push(Item {
            context: format!("for a connection {spec} (sshd -T)"),
            verdict: judge(value),
            value: value.clone(),
            evidence: Evidence::new(cmd.clone(), format!("{key} {value}")),
        });
    }
    v
}

fn judge(
    meta: &'static Meta,
    src: &Sources,
    key: &str,
    label: &str,
    default: &str,
    judge: &dyn Fn(&str) -> Verdict,
) -> CheckResult {
    let items = items(src, key, label, default, judge);
    let worst = items
        .iter()
        .map(|i| i.verdict)
        .max()
        .unwrap_or(Verdict::Good);
    let status = match worst {
        Verdict::Good => Status::Pass,
        Verdict::Weak => Status::Warn,
        Verdict::Bad => Status::Fail,
    };
    let reason = if worst == Verdict::Good {
        let contexts = items.len();
        match key {
            "kexalgorithms" | "ciphers" | "macs" => {
                format!("no weak {label} offered in any of {contexts} contexts checked")
            }
            _ => {
                let value = items.first().map(|i| i.value.as_str()).unwrap_or(default);
                format!("{label} {value} in every context checked ({contexts})")
            }
        }
    } else {
        let bad: Vec<String> = items
            .iter()
            .filter(|i| i.verdict == worst)
            .take(3)
            .map(|i| {
                let detail = match key {
                    "kexalgorithms" => weak_list(&i.value, DEFAULT_KEX, WEAK_KEX),
                    "ciphers" => weak_list(&i.value, DEFAULT_CIPHERS, WEAK_CIPHERS),
                    "macs" => weak_list(&i.value, DEFAULT_MACS, WEAK_MACS),
                    _ => format!("{label} {}", i.value),
                };
                format!("{detail} {}", i.context)
            })
            .collect();
        let more = items.iter().filter(|i| i.verdict == worst).count();
        let more = if more > 3 {
            format!(" (and {} more contexts)", more - 3)
        } else {
            String::new()
        };
        format!("{}{more}", bad.join("; "))
    };
    // Evidence: the offending items first.
    let mut ev: Vec<(Verdict, Evidence)> =
        items.into_iter().map(|i| (i.verdict, i.evidence)).collect();
    ev.sort_by_key(|e| std::cmp::Reverse(e.0));
    meta.result(status, reason, ev.into_iter().map(|(_, e)| e).collect())
}

fn weak_list(value: &str, default: &str, weak: &[&str]) -> String {
    format!("weak: {}", weak_names(value, default, weak).join(","))
}

fn allow_users(src: &Sources) -> CheckResult {
    let mut ev = Vec::new();
    let mut set = false;
    if let Some(c) = &src.parsed {
        for key in ["allowusers", "allowgroups"] {
            for d in c.global_all(key) {
                set = true;
                ev.push(
                    Evidence::new(
                        format!("read {} and its includes", src.main),
                        format!("{key} {}", d.value),
                    )
                    .at(d.location()),
                );
            }
        }
    }
    let mut live_missing = Vec::new();
    for (cmd, vals) in &src.live {
        let users = vals.get("allowusers").cloned().unwrap_or_default();
        let groups = vals.get("allowgroups").cloned().unwrap_or_default();
        if users.is_empty() && groups.is_empty() {
            live_missing.push(cmd.clone());
        } else {
            set = true;
            ev.push(Evidence::new(
                cmd.clone(),
                format!(
                    "allowusers {} allowgroups {}",
                    users.join(" "),
                    groups.join(" ")
                ),
            ));
        }
    }
    if set && live_missing.is_empty() {
        ALLOW.result(
            Status::Pass,
            "SSH logins are limited to named users or groups",
            ev,
        )
    } else {
        for c in live_missing {
            ev.push(Evidence::new(c, "no allowusers, no allowgroups"));
        }
        ALLOW.result(
            Status::Fail,
            "neither AllowUsers nor AllowGroups is set: every account with a password or key may log in",
            ev,
        )
    }
}

/// Connection contexts for `sshd -T -C`: root and the AllowUsers names and local login
/// users from a public address, root from private, loopback and IPv6, and a user that does
/// not exist.
fn contexts(ctx: &Ctx, parsed: Option<&SshdConfig>) -> Vec<String> {
    let mut users: Vec<String> = vec!["root".into()];
    if let Some(c) = parsed {
        for d in c.global_all("allowusers") {
            for u in d.value.split_whitespace() {
                let name = u.split('@').next().unwrap_or(u);
                if !name.contains(['*', '?', '!']) && !users.iter().any(|x| x == name) {
                    users.push(name.to_string());
                }
            }
        }
    }
    if let Ok(passwd) = std::fs::read_to_string(ctx.path("/etc/passwd")) {
        for l in passwd.lines() {
            let f: Vec<&str> = l.split(':').collect();
            let (Some(name), Some(uid), Some(shell)) = (f.first(), f.get(2), f.get(6)) else {
                continue;
            };
            let uid: u32 = uid.parse().unwrap_or(0);
            if (1000..60000).contains(&uid)
                && !shell.ends_with("nologin")
                && !shell.ends_with("false")
                && !users.iter().any(|x| x == name)
                && users.len() < 6
            {
                users.push((*name).to_string());
            }
        }
    }
    users.push("ravelin-audit-nobody".into());
    let port = parsed
        .and_then(|c| c.global("port"))
        .and_then(|d| d.value.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "22".into());
    let mut out: Vec<String> = users
        .iter()
        .map(|u| format!("user={u},host=client.example,addr=203.0.113.10,lport={port}"))
        .collect();
    for addr in ["127.0.0.1", "10.1.2.3", "2001:db8::10"] {
        out.push(format!(
            "user=root,host=client.example,addr={addr},lport={port}"
        ));
    }
    out
}

fn ask_sshd(ctx: &Ctx, parsed: Option<&SshdConfig>) -> (Vec<Answer>, Vec<String>) {
    let specs = contexts(ctx, parsed);
    let cfg = ctx.sshd_config.display().to_string();
    let answers: Vec<Result<Answer, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = specs
            .iter()
            .map(|spec| {
                let cfg = cfg.clone();
                s.spawn(move || {
                    let args = ["-T", "-f", cfg.as_str(), "-C", spec.as_str()];
                    let shown = exec::display(&ctx.sshd, &args);
                    match exec::run(&ctx.sshd, &args, ctx.timeout) {
                        Ok(o) if o.success() => Ok((shown, parse_dump(&o.stdout))),
                        Ok(o) => Err(o.stderr.lines().next().unwrap_or("no message").to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("sshd -T thread failed".into()))
            })
            .collect()
    });
    let mut ok = Vec::new();
    // The same failure for every context is reported once, with a count.
    let mut errs: Vec<(String, usize)> = Vec::new();
    for a in answers {
        match a {
            Ok(x) => ok.push(x),
            Err(e) => match errs.iter_mut().find(|(m, _)| *m == e) {
                Some((_, n)) => *n += 1,
                None => errs.push((e, 1)),
            },
        }
    }
    let errs = errs
        .into_iter()
        .map(|(e, n)| format!("sshd -T failed for {n} of {} contexts: {e}", specs.len()))
        .collect();
    (ok, errs)
}

/// `sshd -T` output: `key value...` lines into key -> values (repeated keys accumulate).
pub fn parse_dump(text: &str) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for l in text.lines() {
        let mut it = l.splitn(2, ' ');
        if let (Some(k), Some(v)) = (it.next(), it.next()) {
            m.entry(k.to_ascii_lowercase())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_like_sshd() {
        for (s, want) in [
            ("30", Some(30)),
            ("30s", Some(30)),
            ("2m", Some(120)),
            ("1m30s", Some(90)),
            ("0", Some(0)),
            ("x", None),
        ] {
            assert_eq!(parse_time(s), want, "{s}");
        }
    }

    #[test]
    fn algorithm_lists_resolve_against_defaults() {
        let cases = [
            ("aes256-ctr", WEAK_CIPHERS, DEFAULT_CIPHERS, Verdict::Good),
            ("+aes256-cbc", WEAK_CIPHERS, DEFAULT_CIPHERS, Verdict::Bad),
            ("^3des-cbc", WEAK_CIPHERS, DEFAULT_CIPHERS, Verdict::Bad),
            (
                "-hmac-sha1*,umac-64*",
                WEAK_MACS,
                DEFAULT_MACS,
                Verdict::Good,
            ),
            (DEFAULT_MACS, WEAK_MACS, DEFAULT_MACS, Verdict::Bad),
            (DEFAULT_KEX, WEAK_KEX, DEFAULT_KEX, Verdict::Good),
            (
                "+diffie-hellman-group1-sha1",
                WEAK_KEX,
                DEFAULT_KEX,
                Verdict::Bad,
            ),
        ];
        for (value, list, default, want) in cases {
            assert_eq!(weak(value, default, list), want, "{value}");
        }
    }
}
