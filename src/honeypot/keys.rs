//! Host keys and the per-install secret, generated on first start and kept in the state
//! directory (files 0600, directory 0700), so the decoy's identity is stable across restarts
//! like a real sshd's and different on every install.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::Context;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, EcdsaCurve, PrivateKey};

/// The host keys, in the order the server offers them, and the per-install secret.
pub struct Identity {
    /// ed25519 first (what current clients pick), then ECDSA P-256, then RSA 3072, the three
    /// a Debian sshd generates.
    pub host_keys: Vec<PrivateKey>,
    /// Keys the auth policy and the host profile; never leaves the state directory.
    pub secret: [u8; 32],
}

impl Identity {
    /// A seed for the host profile derived from the secret (stable per install).
    pub fn profile_seed(&self) -> u64 {
        u64::from_le_bytes(self.secret[..8].try_into().unwrap_or([0; 8]))
    }
}

/// Load the identity from `dir`, creating whatever is missing.
pub fn load_or_create(dir: &Path) -> anyhow::Result<Identity> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating state directory {}", dir.display()))?;
    let mut host_keys = Vec::new();
    for (file, alg) in [
        ("ssh_host_ed25519_key", Algorithm::Ed25519),
        (
            "ssh_host_ecdsa_key",
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
        ),
    ] {
        host_keys.push(host_key(&dir.join(file), alg)?);
    }
    host_keys.push(host_key(
        &dir.join("ssh_host_rsa_key"),
        Algorithm::Rsa { hash: None },
    )?);
    let secret_path = dir.join("decoy.secret");
    let secret = match std::fs::read(&secret_path) {
        Ok(b) if b.len() == 32 => b.try_into().unwrap_or([0; 32]),
        Ok(_) => anyhow::bail!(
            "{} is not 32 bytes; delete it to generate a new one",
            secret_path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s: [u8; 32] = rand::random();
            write_private(&secret_path, &s)?;
            s
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", secret_path.display())),
    };
    Ok(Identity { host_keys, secret })
}

fn host_key(path: &Path, alg: Algorithm) -> anyhow::Result<PrivateKey> {
    match std::fs::read(path) {
        Ok(pem) => PrivateKey::from_openssh(&pem)
            .with_context(|| format!("parsing host key {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = match alg {
                // 3072 bits, as ssh-keygen makes for a Debian host (the library default is
                // 4096, which a real sshd would not have).
                Algorithm::Rsa { .. } => {
                    let kp =
                        russh::keys::ssh_key::private::RsaKeypair::random(&mut rand::rng(), 3072)
                            .context("generating RSA host key")?;
                    PrivateKey::new(kp.into(), "").context("RSA host key")?
                }
                _ => PrivateKey::random(&mut rand::rng(), alg.clone())
                    .with_context(|| format!("generating {alg} host key"))?,
            };
            let pem = key
                .to_openssh(LineEnding::LF)
                .context("encoding host key")?;
            write_private(path, pem.as_bytes())?;
            tracing::info!(
                "decoy: generated host key {} ({})",
                path.display(),
                key.fingerprint(Default::default())
            );
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading host key {}", path.display())),
    }
}

/// Write a new file readable by its owner only (fails if it already exists).
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_created_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("decoy");
        let a = load_or_create(&state).unwrap();
        let b = load_or_create(&state).unwrap();
        assert_eq!(a.secret, b.secret);
        assert_eq!(a.host_keys.len(), 3);
        for (x, y) in a.host_keys.iter().zip(&b.host_keys) {
            assert_eq!(x.public_key(), y.public_key());
        }
        for f in [
            "ssh_host_ed25519_key",
            "ssh_host_ecdsa_key",
            "ssh_host_rsa_key",
            "decoy.secret",
        ] {
            let mode = std::fs::metadata(state.join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
