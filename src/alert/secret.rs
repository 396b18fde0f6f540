//! Secrets: where they come from, and a type that cannot leak them by accident.
//!
//! A webhook URL is as good as a password (whoever has it can post to the channel), so every
//! secret is named in the config by *where* it lives, never inline: a file (`*_file`), a
//! systemd credential (`*_credential`, read from `$CREDENTIALS_DIRECTORY/<name>`, the way
//! `LoadCredential=` hands secrets to a service without a plaintext copy in /etc), or an
//! environment variable (`*_env`). Secrets are read when the dispatcher starts (credentials
//! only exist inside the service), and [`Secret`] prints as `<redacted>` in `Debug`.

use std::fmt;
use std::path::PathBuf;

/// Where a secret is read from. Printing it shows the location, which is not secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// A file; surrounding whitespace (the trailing newline) is trimmed.
    File(PathBuf),
    /// A systemd credential name, read from `$CREDENTIALS_DIRECTORY/<name>`.
    Credential(String),
    /// An environment variable.
    Env(String),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "file {}", p.display()),
            Self::Credential(n) => write!(f, "systemd credential {n}"),
            Self::Env(n) => write!(f, "environment variable {n}"),
        }
    }
}

/// The largest secret read (bytes): a URL or a password, not a file to slurp by mistake.
const MAX_SECRET: u64 = 8192;

impl SecretRef {
    /// Read the secret. The error names the location, never the value.
    pub fn load(&self) -> Result<Secret, String> {
        let raw = match self {
            Self::File(p) => read_small(p)?,
            Self::Credential(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                    format!(
                        "systemd credential {name}: $CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit, or a *_file key)"
                    )
                })?;
                read_small(&PathBuf::from(dir).join(name))?
            }
            Self::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?,
        };
        let v = raw.trim();
        if v.is_empty() {
            return Err(format!("{self} is empty"));
        }
        Ok(Secret(v.to_string()))
    }
}

fn read_small(p: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    let mut s = String::new();
    f.take(MAX_SECRET)
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    Ok(s)
}

/// A secret value. `Debug` prints `<redacted>`; there is deliberately no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value (tests and `alert test` with explicit values).
    pub fn new(v: impl Into<String>) -> Self {
        Self(v.into())
    }

    /// The value. Call sites are few and none of them log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_load_from_file_credential_and_env_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("url");
        std::fs::write(&f, "https://hooks.example/T0/SECRET\n").unwrap();
        let s = SecretRef::File(f.clone()).load().unwrap();
        assert_eq!(s.expose(), "https://hooks.example/T0/SECRET");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert!(!format!("{:?}", SecretRef::File(f)).contains("SECRET"));

        let err = SecretRef::Env("RAVELIN_TEST_SURELY_UNSET_VAR".into())
            .load()
            .unwrap_err();
        assert!(err.contains("is not set"), "{err}");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let err = SecretRef::File(dir.path().join("empty"))
            .load()
            .unwrap_err();
        assert!(err.contains("empty"), "{err}");
    }
}
