//! Talking to `nft`: argument vectors only, scripts through stdin, bounded stderr.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::FirewallError;
use super::ruleset::{SCANNERS, replace_script};

/// How much of nft's stderr goes into an error.
const STDERR_CAP: usize = 4096;

/// Run `nft <args>` with `stdin`; stdout on success.
pub fn run(
    nft: &Path,
    args: &[&str],
    stdin: Option<&str>,
    what: &str,
) -> Result<String, FirewallError> {
    let mut cmd = Command::new(nft);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| FirewallError::Nft {
        what: what.into(),
        detail: format!("cannot run {}: {e}", nft.display()),
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A failed write shows up as nft's own error below.
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| FirewallError::Nft {
        what: what.into(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if detail.len() > STDERR_CAP {
            let mut cut = STDERR_CAP;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
            detail.push_str(" [...]");
        }
        Err(FirewallError::Nft {
            what: what.into(),
            detail,
        })
    }
}

/// The live table as nft prints it (`-s`: no counter values), or `None` if absent: the
/// state a rollback restores, scanner entries included.
pub fn snapshot(nft: &Path, table: &str) -> Result<Option<String>, FirewallError> {
    listing(nft, table, false)
}

/// The live table's structure only (`-t`: no set elements, which nftables itself adds while
/// detecting scans): what a plan is compared with.
pub fn structure(nft: &Path, table: &str) -> Result<Option<String>, FirewallError> {
    listing(nft, table, true)
}

fn listing(nft: &Path, table: &str, terse: bool) -> Result<Option<String>, FirewallError> {
    let tables = run(nft, &["-j", "list", "tables", "inet"], None, "list tables")?;
    let v: Value = serde_json::from_str(&tables).map_err(|e| FirewallError::Nft {
        what: "list tables".into(),
        detail: format!("invalid json: {e}"),
    })?;
    let present = v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| i["table"]["name"] == table && i["table"]["family"] == "inet");
    if !present {
        return Ok(None);
    }
    let flags = if terse { "-st" } else { "-s" };
    run(
        nft,
        &[flags, "list", "table", "inet", table],
        None,
        "list the firewall table",
    )
    .map(Some)
}

/// Replace the table with `def` (or delete it), atomically.
pub fn replace(nft: &Path, table: &str, def: Option<&str>) -> Result<(), FirewallError> {
    run(
        nft,
        &["-f", "-"],
        Some(&replace_script(table, def)),
        "apply the firewall table",
    )
    .map(|_| ())
}

/// `nft --check` the replacement without changing anything.
pub fn check(nft: &Path, table: &str, def: &str) -> Result<(), FirewallError> {
    run(
        nft,
        &["-c", "-f", "-"],
        Some(&replace_script(table, Some(def))),
        "check the firewall table",
    )
    .map(|_| ())
}

/// `def` as nft itself would list it: loaded into a throwaway network namespace and listed
/// back, so a plan can be diffed line by line against the live table. Falls back to `def`
/// (`false`) when no namespace can be made (not root).
///
/// The namespace belongs to a short-lived thread (network namespaces are per thread in
/// Linux, and children inherit the spawning thread's), so this process is never moved.
pub fn canonical(nft: &Path, table: &str, def: &str) -> Result<(String, bool), FirewallError> {
    let (nft, table, def) = (nft.to_path_buf(), table.to_string(), def.to_string());
    let worker = std::thread::spawn(move || {
        if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
            return Ok((def, false));
        }
        replace(&nft, &table, Some(&def))?;
        let listed = run(
            &nft,
            &["-s", "list", "table", "inet", &table],
            None,
            "list the planned table",
        )?;
        Ok((listed, true))
    });
    worker.join().unwrap_or_else(|_| {
        Err(FirewallError::Nft {
            what: "canonicalize the plan".into(),
            detail: "the worker thread panicked".into(),
        })
    })
}

/// Sources that nftables put into the scanner sets of `table`, with the time left (`None`:
/// no timeout). The daemon turns each into an observation of kind `scan`.
pub fn read_scanners(
    nft: &Path,
    table: &str,
) -> Result<Vec<(IpAddr, Option<Duration>)>, FirewallError> {
    let mut out = Vec::new();
    for set in SCANNERS {
        let text = run(
            nft,
            &["-j", "list", "set", "inet", table, set],
            None,
            "list the scanner sets",
        )?;
        let v: Value = serde_json::from_str(&text).map_err(|e| FirewallError::Nft {
            what: "list the scanner sets".into(),
            detail: format!("invalid json: {e}"),
        })?;
        for item in v["nftables"].as_array().into_iter().flatten() {
            for e in item["set"]["elem"].as_array().into_iter().flatten() {
                let (val, expires) = match e.get("elem") {
                    Some(inner) => (&inner["val"], inner["expires"].as_u64()),
                    None => (e, None),
                };
                if let Some(ip) = val.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                    out.push((ip, expires.map(Duration::from_secs)));
                }
            }
        }
    }
    Ok(out)
}
