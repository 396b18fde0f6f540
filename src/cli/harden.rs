//! `ravelin harden ssh`: write the SSH baseline as a drop-in that sshd reads first.
//!
//! sshd keeps the first value it reads, so the baseline goes into
//! `sshd_config.d/00-ravelin-hardening.conf`, which sorts before cloud-init's
//! `50-cloud-init.conf` and, with Debian's `Include` at the top of `sshd_config`, before the
//! main file's own lines. Before anything is written the change is proven three ways:
//!
//! 1. our reader loads the configuration as if the drop-in existed and checks that every
//!    baseline value is the one in force (an earlier line or a missing `Include` would make
//!    the drop-in dead letter), and lists `Match` blocks that still re-enable passwords;
//! 2. the lockout guard: some account in `AllowUsers` (other than root, whose login the
//!    baseline turns off) must exist and have a non-empty authorized keys file under the
//!    effective `AuthorizedKeysFile`;
//! 3. with `--apply`, the real `sshd -t -f <main config>` validates the result; on failure
//!    the previous drop-in is restored.
//!
//! Without `--apply` it only prints the diff. It never reloads sshd itself: it prints how to.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::audit::exec;
use crate::audit::sshd_config::SshdConfig;

/// Name of the drop-in (sorts first under `sshd_config.d`).
pub const DROPIN: &str = "00-ravelin-hardening.conf";

/// Arguments of `ravelin harden`.
#[derive(Debug, clap::Args)]
pub struct HardenArgs {
    /// What to harden.
    #[command(subcommand)]
    pub what: HardenWhat,
}

/// Hardening targets.
#[derive(Debug, clap::Subcommand)]
pub enum HardenWhat {
    /// sshd: key-only, no root, AllowUsers, MaxAuthTries 3, LoginGraceTime 30, strong crypto.
    Ssh(SshArgs),
}

/// Arguments of `ravelin harden ssh`.
#[derive(Debug, clap::Args)]
pub struct SshArgs {
    /// Write the drop-in (after the checks and `sshd -t`); without it only the diff is shown.
    #[arg(long)]
    pub apply: bool,
    /// The sshd configuration directory (holds `sshd_config` and `sshd_config.d/`).
    #[arg(long, default_value = "/etc/ssh", value_name = "DIR")]
    pub config_dir: PathBuf,
    /// Accounts allowed to log in (comma-separated); at least one must have an authorized key.
    #[arg(long, value_delimiter = ',', value_name = "USER,...")]
    pub allow_users: Vec<String>,
    /// Move sshd to this port (open it in the firewall first).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// Listen only on these addresses (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub listen_address: Vec<IpAddr>,
    /// The sshd binary used for `sshd -t`.
    #[arg(long, default_value = "/usr/sbin/sshd", value_name = "PATH")]
    pub sshd: PathBuf,
    /// The passwd file used by the lockout guard.
    #[arg(long, default_value = "/etc/passwd", value_name = "FILE", hide = true)]
    pub passwd: PathBuf,
}

/// Runs `ravelin harden ...`.
pub fn run(a: &HardenArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match &a.what {
        HardenWhat::Ssh(s) => ssh(s, out),
    }
}

/// The baseline lines, in order: `(keyword, value)`.
pub fn baseline(a: &SshArgs) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = vec![
        ("PasswordAuthentication", "no".into()),
        ("KbdInteractiveAuthentication", "no".into()),
        ("PermitEmptyPasswords", "no".into()),
        ("PermitRootLogin", "no".into()),
        ("PubkeyAuthentication", "yes".into()),
        ("AuthenticationMethods", "publickey".into()),
        ("MaxAuthTries", "3".into()),
        ("LoginGraceTime", "30".into()),
        ("AllowUsers", a.allow_users.join(" ")),
        ("X11Forwarding", "no".into()),
        (
            "KexAlgorithms",
            "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512".into(),
        ),
        (
            "Ciphers",
            "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr".into(),
        ),
        (
            "MACs",
            "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,umac-128-etm@openssh.com".into(),
        ),
    ];
    if let Some(p) = a.port {
        v.push(("Port", p.to_string()));
    }
    for l in &a.listen_address {
        v.push(("ListenAddress", l.to_string()));
    }
    v
}

/// The drop-in text.
pub fn render(a: &SshArgs) -> String {
    let mut s = String::from(
        "# Written by `ravelin harden ssh`. Named 00- so sshd reads it first: sshd keeps the\n# first value it reads, so these lines win over later files and the main sshd_config.\n",
    );
    for (k, v) in baseline(a) {
        s.push_str(&format!("{k} {v}\n"));
    }
    s
}

fn valid_user(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 32
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !u.starts_with('-')
}

fn ssh(a: &SshArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if a.allow_users.is_empty() {
        bail!("--allow-users is required: name the accounts that log in with keys (AllowUsers)");
    }
    if let Some(u) = a.allow_users.iter().find(|u| !valid_user(u)) {
        bail!("--allow-users: {u:?} is not a valid user name");
    }
    if a.port == Some(0) {
        bail!("--port: 0 is not a port");
    }
    let main = a.config_dir.join("sshd_config");
    let dropin = a.config_dir.join("sshd_config.d").join(DROPIN);
    let new = render(a);
    let old = std::fs::read_to_string(&dropin).ok();

    // 1. Would it take effect?
    let cfg = SshdConfig::load_overlay(Path::new("/"), &main, Some((&dropin, &new)))
        .map_err(|e| anyhow::anyhow!("cannot read the sshd configuration: {e}"))?;
    if !cfg.files.iter().any(|f| f == &dropin) {
        bail!(
            "{} does not include {}: add `Include {}/*.conf` as the first line of {} and run again",
            main.display(),
            dropin.display(),
            dropin.parent().unwrap_or(Path::new("/")).display(),
            main.display()
        );
    }
    let mut dead = Vec::new();
    for (k, _) in baseline(a) {
        let key = k.to_ascii_lowercase();
        if SshdConfig::accumulates(&key) {
            continue;
        }
        if let Some(d) = cfg.global(&key) {
            if d.file != dropin {
                dead.push(format!("{k} (set earlier at {})", d.location()));
            }
        }
    }
    if !dead.is_empty() {
        bail!(
            "the drop-in would not take effect for: {}; remove those lines or move the Include above them",
            dead.join(", ")
        );
    }
    // Extra AllowUsers/Port lines elsewhere accumulate: say so.
    for key in ["allowusers", "port", "listenaddress"] {
        for d in cfg.global_all(key) {
            if d.file != dropin {
                writeln!(
                    out,
                    "note: {} at {} also applies ({} accumulates over lines)",
                    d.key,
                    d.location(),
                    d.key
                )?;
            }
        }
    }
    for key in [
        "passwordauthentication",
        "kbdinteractiveauthentication",
        "permitrootlogin",
    ] {
        for (m, d) in cfg.in_matches(key) {
            if !d.value.eq_ignore_ascii_case("no") {
                writeln!(
                    out,
                    "warning: `Match {}` ({}) sets {} {} at {}: matching connections still get it",
                    m.criteria,
                    m.location(),
                    d.key,
                    d.value,
                    d.location()
                )?;
            }
        }
    }

    // 2. Lockout guard.
    let keyfiles = cfg
        .global("authorizedkeysfile")
        .map(|d| d.value.clone())
        .unwrap_or_else(|| ".ssh/authorized_keys .ssh/authorized_keys2".into());
    let passwd = std::fs::read_to_string(&a.passwd)
        .with_context(|| format!("reading {}", a.passwd.display()))?;
    let mut ok_users = Vec::new();
    let mut problems = Vec::new();
    for u in &a.allow_users {
        if u == "root" {
            problems.push("root: PermitRootLogin no".to_string());
            continue;
        }
        let Some((uid, home)) = lookup(&passwd, u) else {
            problems.push(format!("{u}: no such account in {}", a.passwd.display()));
            continue;
        };
        let mut found = None;
        for pat in keyfiles.split_whitespace() {
            let p = expand(pat, u, &uid, &home);
            if has_key(&p) {
                found = Some(p);
                break;
            }
        }
        match found {
            Some(p) => ok_users.push(format!("{u} ({})", p.display())),
            None => problems.push(format!("{u}: no key in {keyfiles}")),
        }
    }
    if ok_users.is_empty() && cfg.global("authorizedkeyscommand").is_none() {
        bail!(
            "refusing: no account in AllowUsers has an authorized key, this would lock everyone out ({})",
            problems.join("; ")
        );
    }
    if ok_users.is_empty() {
        writeln!(
            out,
            "lockout guard: keys come from AuthorizedKeysCommand, which cannot be checked from here: test a login before reloading"
        )?;
    } else {
        writeln!(
            out,
            "lockout guard: key login possible for {}",
            ok_users.join(", ")
        )?;
    }
    for p in &problems {
        writeln!(out, "note: {p}")?;
    }

    // The diff.
    writeln!(out, "--- {}", dropin.display())?;
    writeln!(out, "+++ {} (new)", dropin.display())?;
    let mut changed = false;
    for line in diff(old.as_deref().unwrap_or(""), &new) {
        changed |= !line.starts_with(' ');
        writeln!(out, "{line}")?;
    }
    if !changed {
        writeln!(out, "no change: {} is already up to date", dropin.display())?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.port.is_some() {
        writeln!(
            out,
            "note: open the new port in the firewall before reloading sshd"
        )?;
    }
    if !a.apply {
        writeln!(
            out,
            "dry run: nothing written (add --apply to write and validate)"
        )?;
        return Ok(ExitCode::SUCCESS);
    }

    // 3. Write, validate with the real sshd, roll back on failure.
    let dir = dropin.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomic(&dropin, &new)?;
    let main_s = main.display().to_string();
    let args = ["-t", "-f", main_s.as_str()];
    let shown = exec::display(&a.sshd, &args);
    let verdict = exec::run(&a.sshd, &args, Duration::from_secs(10));
    let failure = match &verdict {
        Ok(o) if o.success() => None,
        Ok(o) => Some(o.stderr.trim().to_string()),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = failure {
        match &old {
            Some(t) => write_atomic(&dropin, t)?,
            None => std::fs::remove_file(&dropin)
                .with_context(|| format!("removing {}", dropin.display()))?,
        }
        bail!("`{shown}` rejected the configuration, previous state restored: {why}");
    }
    writeln!(out, "wrote {}; `{shown}` accepts it", dropin.display())?;
    writeln!(
        out,
        "reload sshd to apply (keep this session open and test a new login first): systemctl reload ssh, or kill -HUP the sshd listener"
    )?;
    Ok(ExitCode::SUCCESS)
}

fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("conf.ravelin-tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn lookup(passwd: &str, user: &str) -> Option<(String, PathBuf)> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[0] == user).then(|| (f[2].to_string(), PathBuf::from(f[5])))
    })
}

/// Expands `AuthorizedKeysFile` tokens (`%h`, `%u`, `%U`, `%%`); relative paths are under
/// the home directory.
pub fn expand(pat: &str, user: &str, uid: &str, home: &Path) -> PathBuf {
    let mut s = String::new();
    let mut it = pat.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            s.push(c);
            continue;
        }
        match it.next() {
            Some('h') => s.push_str(&home.display().to_string()),
            Some('u') => s.push_str(user),
            Some('U') => s.push_str(uid),
            Some('%') => s.push('%'),
            Some(o) => {
                s.push('%');
                s.push(o);
            }
            None => s.push('%'),
        }
    }
    if s.starts_with('/') {
        PathBuf::from(s)
    } else {
        home.join(s)
    }
}

/// A non-empty authorized keys file: some line that is neither blank nor a comment.
fn has_key(p: &Path) -> bool {
    std::fs::read_to_string(p)
        .map(|t| {
            t.lines()
                .map(str::trim)
                .any(|l| !l.is_empty() && !l.starts_with('#'))
        })
        .unwrap_or(false)
}

/// A minimal line diff (LCS; drop-ins are a few dozen lines): ` `, `-`, `+` prefixes.
pub fn diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut l = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            l[i][j] = if a[i] == b[j] {
                l[i + 1][j + 1] + 1
            } else {
                l[i + 1][j].max(l[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!(" {}", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || l[i][j + 1] >= l[i + 1][j]) {
            out.push(format!("+{}", b[j]));
            j += 1;
        } else {
            out.push(format!("-{}", a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_lines() {
        let d = diff("a\nb\nc\n", "a\nx\nc\nd\n");
        assert_eq!(d, [" a", "+x", "-b", " c", "+d"]);
        assert!(diff("", "").is_empty());
    }

    #[test]
    fn authorized_keys_paths_expand() {
        let h = Path::new("/home/ann");
        let cases = [
            (".ssh/authorized_keys", "/home/ann/.ssh/authorized_keys"),
            ("/etc/ssh/keys/%u", "/etc/ssh/keys/ann"),
            ("%h/k_%U", "/home/ann/k_1000"),
            ("/x/%%u", "/x/%u"),
        ];
        for (p, want) in cases {
            assert_eq!(expand(p, "ann", "1000", h), PathBuf::from(want), "{p}");
        }
    }

    #[test]
    fn user_names_cannot_inject_config_lines() {
        for (u, ok) in [
            ("ann", true),
            ("a.b-c_d", true),
            ("a\nPermitRootLogin yes", false),
            ("", false),
            ("-x", false),
            ("a b", false),
        ] {
            assert_eq!(valid_user(u), ok, "{u:?}");
        }
    }
}
