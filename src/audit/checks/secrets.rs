//! Secrets on disk: readable private keys, SSH keys without a passphrase, `.env` files and
//! cloud credentials in home and service directories.
//!
//! Values are never printed, logged or kept: a file is read only far enough to classify it
//! (a PEM header, the OpenSSH key's cipher name, the names of `KEY=` lines) and the report
//! names the path and the kind. The walk is bounded (depth, entries, file size) and does not
//! follow symlinks, since home directories are user-controlled.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{Group, Meta, mode_string};
use crate::audit::{CheckResult, Ctx, Evidence, Severity, Status};

/// Private keys readable by others.
pub static KEY_PERMS: Meta = Meta {
    id: "secrets.private-key-perms",
    title: "Private keys not readable by group or others",
    severity: Severity::High,
    remediation: "chmod 0600 the key file (and rotate the key if others could read it)",
};
/// SSH keys without a passphrase.
pub static KEY_PASSPHRASE: Meta = Meta {
    id: "secrets.ssh-key-passphrase",
    title: "User SSH private keys are passphrase-protected",
    severity: Severity::Medium,
    remediation: "ssh-keygen -p -f KEY to add a passphrase, or move the key off the server (use agent forwarding or a jump host)",
};
/// Tokens in .env files and cloud credentials.
pub static ENV_FILES: Meta = Meta {
    id: "secrets.env-files",
    title: "No plaintext tokens in .env files or cloud credential files",
    severity: Severity::Medium,
    remediation: "move the secrets to a secret store or a root-only credentials file loaded by the service (systemd LoadCredential=), and rotate them",
};

/// Secrets group.
pub const GROUP: Group = Group {
    name: "secrets",
    checks: &[&KEY_PERMS, &KEY_PASSPHRASE, &ENV_FILES],
    run,
};

/// Entries visited at most per audit.
const MAX_ENTRIES: usize = 20_000;
/// Deepest directory level under each base.
const MAX_DEPTH: usize = 4;
/// Largest file classified.
const MAX_FILE: u64 = 64 * 1024;

/// What a private key file is, as far as the audit needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Encrypted with a passphrase.
    Encrypted,
    /// Not encrypted.
    Plain,
    /// A private key whose encryption could not be determined.
    Unknown,
}

/// Classifies file contents as a private key (None if it is not one). Reads only headers
/// and, for OpenSSH keys, the cipher name.
pub fn classify_key(text: &str) -> Option<KeyKind> {
    let begin = text.find("-----BEGIN ")?;
    let header_end = text[begin..]
        .find("-----\n")
        .or_else(|| text[begin..].find("-----\r"))?;
    let header = &text[begin..begin + header_end];
    if !header.ends_with("PRIVATE KEY") {
        return None;
    }
    if header.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Some(KeyKind::Encrypted);
    }
    if header.contains("OPENSSH PRIVATE KEY") {
        let body: String = text[begin + header_end..]
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let bytes = base64_decode(body.get(..body.len().min(256)).unwrap_or(""))?;
        let magic = b"openssh-key-v1\0";
        if !bytes.starts_with(magic) || bytes.len() < magic.len() + 4 {
            return Some(KeyKind::Unknown);
        }
        let n = u32::from_be_bytes(bytes[15..19].try_into().ok()?) as usize;
        let cipher = bytes.get(19..19 + n)?;
        return Some(if cipher == b"none" {
            KeyKind::Plain
        } else {
            KeyKind::Encrypted
        });
    }
    Some(KeyKind::Plain)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        if chunk.len() < 4 || chunk.contains(&b'=') {
            let v: Vec<u32> = chunk
                .iter()
                .take_while(|&&c| c != b'=')
                .map(|&c| val(c))
                .collect::<Option<_>>()?;
            let mut acc = 0u32;
            for (i, x) in v.iter().enumerate() {
                acc |= x << (18 - 6 * i);
            }
            for i in 0..v.len().saturating_sub(1) {
                out.push((acc >> (16 - 8 * i)) as u8);
            }
            break;
        }
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
    }
    Some(out)
}

/// Kinds of secrets named by the keys of a dotenv file (`API_TOKEN=...` -> "token").
/// Keys with an empty value or a `${VAR}` reference do not count.
pub fn env_secret_kinds(text: &str) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    for l in text.lines() {
        let l = l.trim().trim_start_matches("export ").trim();
        if l.starts_with('#') {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches(['"', '\'']);
        if v.is_empty() || v.starts_with("${") {
            continue;
        }
        let k = k.trim().to_ascii_uppercase();
        let kind = if k.contains("TOKEN") {
            "token"
        } else if k.contains("PASSWORD") || k.contains("PASSWD") || k.ends_with("_PASS") {
            "password"
        } else if k.contains("SECRET") {
            "secret"
        } else if k.contains("API_KEY") || k.contains("APIKEY") || k.contains("ACCESS_KEY") {
            "api key"
        } else if k.contains("PRIVATE_KEY") {
            "private key"
        } else if k.ends_with("DATABASE_URL") && v.contains('@') {
            "database url with credentials"
        } else {
            continue;
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds
}

/// Well-known credential files relative to a home directory.
const CLOUD_FILES: &[(&str, &str)] = &[
    (".aws/credentials", "AWS credentials"),
    (
        ".config/gcloud/application_default_credentials.json",
        "Google Cloud credentials",
    ),
    (".azure/accessTokens.json", "Azure tokens"),
    (".docker/config.json", "registry credentials"),
    (".git-credentials", "git credentials"),
    (".netrc", "netrc passwords"),
    (".pgpass", "PostgreSQL passwords"),
];

struct Walk<'a> {
    ctx: &'a Ctx,
    seen: usize,
    truncated: bool,
}

impl Walk<'_> {
    /// Files under `base` (audited path), depth-bounded, symlinks not followed.
    fn files(&mut self, base: &Path, depth: usize, out: &mut Vec<(PathBuf, fs::Metadata)>) {
        let Ok(rd) = fs::read_dir(self.ctx.path(base)) else {
            return;
        };
        for e in rd.flatten() {
            self.seen += 1;
            if self.seen > MAX_ENTRIES {
                self.truncated = true;
                return;
            }
            let Ok(md) = e.metadata() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            let p = base.join(&name);
            if md.is_dir() {
                if depth < MAX_DEPTH
                    && !["node_modules", ".git", ".cache", "proc"].contains(&name.as_str())
                {
                    self.files(&p, depth + 1, out);
                }
            } else if md.is_file() {
                out.push((p, md));
            }
        }
    }
}

fn read_head(p: &Path) -> Option<String> {
    use std::os::unix::fs::OpenOptionsExt;
    // The walk saw a regular file; a user may swap it for a symlink or a FIFO meanwhile:
    // neither is followed nor waited on.
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut buf = Vec::new();
    f.take(MAX_FILE).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn homes(ctx: &Ctx) -> Vec<PathBuf> {
    let mut h = vec![PathBuf::from("/root")];
    if let Ok(rd) = fs::read_dir(ctx.path("/home")) {
        let mut v: Vec<PathBuf> = rd
            .flatten()
            .map(|e| PathBuf::from("/home").join(e.file_name()))
            .collect();
        v.sort();
        h.extend(v);
    }
    h
}

fn run(ctx: &Ctx) -> Vec<CheckResult> {
    let mut walk = Walk {
        ctx,
        seen: 0,
        truncated: false,
    };
    let homes = homes(ctx);
    let mut files = Vec::new();
    for base in homes
        .iter()
        .cloned()
        .chain(["/srv", "/opt", "/var/www"].map(PathBuf::from))
    {
        walk.files(&base, 0, &mut files);
    }
    let mut system_keys = Vec::new();
    for d in ["/etc/ssh", "/etc/ssl/private"] {
        let mut w = Walk {
            ctx,
            seen: 0,
            truncated: false,
        };
        w.files(Path::new(d), MAX_DEPTH, &mut system_keys);
    }
    let mut perms = Vec::new();
    let mut plain = Vec::new();
    let mut keys_seen = 0;
    let in_ssh_dir = |p: &Path| p.components().any(|c| c.as_os_str() == ".ssh");
    for (p, md, user_key) in files
        .iter()
        .map(|(p, m)| (p, m, true))
        .chain(system_keys.iter().map(|(p, m)| (p, m, false)))
    {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let candidate = in_ssh_dir(p)
            || !user_key
            || name.ends_with(".key")
            || name.ends_with(".pem")
            || name.starts_with("id_");
        if !candidate || name.ends_with(".pub") || md.len() > MAX_FILE {
            continue;
        }
        let Some(kind) = read_head(&ctx.path(p)).as_deref().and_then(classify_key) else {
            continue;
        };
        keys_seen += 1;
        let mode = md.mode() & 0o777;
        // Debian's /etc/ssl/private is 0710 root:ssl-cert with keys 0640 for the group that
        // TLS daemons run in: there only world access is wrong.
        let shared_group = p.starts_with("/etc/ssl/private");
        let mask = if shared_group { 0o004 } else { 0o044 };
        if mode & mask != 0 {
            perms.push(
                Evidence::new(format!("stat {}", p.display()), mode_string(md))
                    .at(p.display().to_string()),
            );
        }
        if user_key && in_ssh_dir(p) && kind == KeyKind::Plain {
            plain.push(
                Evidence::new(
                    format!("read the key header of {}", p.display()),
                    "OpenSSH/PEM private key, cipher none",
                )
                .at(p.display().to_string()),
            );
        }
    }
    let note = |mut ev: Vec<Evidence>| {
        if walk.truncated {
            ev.push(Evidence::new(
                "note",
                format!("walk stopped after {MAX_ENTRIES} entries"),
            ));
        }
        ev
    };
    let key_perms = if perms.is_empty() {
        KEY_PERMS.result(
            Status::Pass,
            format!("{keys_seen} private keys found, none readable by group or others"),
            note(vec![]),
        )
    } else {
        KEY_PERMS.result(
            Status::Fail,
            format!("{} private key(s) readable by group or others", perms.len()),
            note(perms),
        )
    };
    let pass = if plain.is_empty() {
        KEY_PASSPHRASE.result(
            Status::Pass,
            "no user SSH private key without a passphrase",
            note(vec![]),
        )
    } else {
        KEY_PASSPHRASE.result(
            Status::Fail,
            format!(
                "{} user SSH private key(s) without a passphrase",
                plain.len()
            ),
            note(plain),
        )
    };
    // .env files and cloud credentials.
    let mut env = Vec::new();
    for (p, md) in &files {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let is_env = name == ".env"
            || (name.starts_with(".env.")
                && !name.ends_with(".example")
                && !name.ends_with(".sample")
                && !name.ends_with(".template"));
        if !is_env || md.len() > MAX_FILE {
            continue;
        }
        let kinds = read_head(&ctx.path(p))
            .map(|t| env_secret_kinds(&t))
            .unwrap_or_default();
        if !kinds.is_empty() {
            env.push(
                Evidence::new(
                    format!("read key names in {}", p.display()),
                    kinds.join(", "),
                )
                .at(p.display().to_string()),
            );
        }
    }
    for h in &homes {
        for (rel, kind) in CLOUD_FILES {
            let p = h.join(rel);
            if let Ok(md) = fs::metadata(ctx.path(&p)) {
                if md.is_file() && md.len() > 0 {
                    env.push(
                        Evidence::new(format!("stat {}", p.display()), *kind)
                            .at(p.display().to_string()),
                    );
                }
            }
        }
    }
    let envr = if env.is_empty() {
        ENV_FILES.result(
            Status::Pass,
            "no .env file with tokens and no cloud credential file in home or service directories",
            note(vec![]),
        )
    } else {
        ENV_FILES.result(
            Status::Fail,
            format!(
                "{} file(s) hold long-lived plaintext secrets (paths and kinds only)",
                env.len()
            ),
            note(env),
        )
    };
    vec![key_perms, pass, envr]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_from_headers_only() {
        // An unencrypted ed25519 key header (openssh-key-v1, cipher "none"), body truncated.
        let plain = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n";
        // Cipher "aes256-ctr".
        let enc = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABA\n-----END OPENSSH PRIVATE KEY-----\n";
        let cases = [
            (plain, Some(KeyKind::Plain)),
            (enc, Some(KeyKind::Encrypted)),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMII\n",
                Some(KeyKind::Encrypted),
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n",
                Some(KeyKind::Encrypted),
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n",
                Some(KeyKind::Plain),
            ),
            ("-----BEGIN CERTIFICATE-----\nMII\n", None),
            ("ssh-ed25519 AAAA user@host\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(classify_key(text), want, "{text}");
        }
    }

    #[test]
    fn env_kinds_come_from_key_names() {
        let cases: &[(&str, &[&str])] = &[
            ("API_TOKEN=abc\n", &["token"]),
            (
                "export DB_PASSWORD='x'\nAWS_SECRET_ACCESS_KEY=y\n",
                &["password", "secret"],
            ),
            ("API_TOKEN=\nDEBUG=1\n# SECRET=x\n", &[]),
            ("TOKEN=${FROM_ENV}\n", &[]),
            (
                "DATABASE_URL=postgres://u:p@h/db\n",
                &["database url with credentials"],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(env_secret_kinds(text), *want, "{text}");
        }
    }
}
