//! Commit-confirmed apply: the previous table is saved, the new one applied atomically, and
//! unless `confirm` comes within the window, the previous one comes back by itself.
//!
//! State, in `<state_dir>/firewall/` (written atomically: temp file, fsync, rename):
//!
//! - `previous.json`: the table as it was before the last apply (`null`: it did not exist);
//!   `rollback` restores it at any time. An apply made while another is still unconfirmed
//!   keeps it, so a rollback always returns to the last state someone confirmed.
//! - `pending.json`: `{token, deadline}` while an apply waits for `confirm`.
//! - `confirmed.json`: the structure (no set elements) of the last confirmed table, which
//!   [`boot`] loads when the daemon starts and finds the table gone (after a reboot).
//!
//! The rollback does not depend on the process that applied: `apply` starts a detached child
//! (`ravelin firewall rollback --if-unconfirmed <token>`, its own session, no terminal) that
//! sleeps until the deadline and restores if `pending.json` still holds its token. If that
//! child dies (reboot, OOM), whoever calls [`honour_pending`] next (the daemon on start,
//! every `ravelin firewall` command) restores at once when the deadline has passed, or starts
//! a new watcher. A file lock orders `confirm` against the rollback, so exactly one wins.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::FirewallError;
use super::nft;

/// Where the firewall keeps its state under the daemon's state dir.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("firewall")
}

/// The saved table from before the last apply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Previous {
    /// Table name it belongs to.
    pub table: String,
    /// `nft -s list table` output, or `None` when the table did not exist.
    pub ruleset: Option<String>,
    /// When it was saved (Unix seconds).
    pub saved_at: u64,
}

/// An apply waiting for `confirm`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    /// Names this apply; a watcher acts only on its own token.
    pub token: String,
    /// Unix second after which the previous table is restored: at least the asked window
    /// from the apply (rounded up, never down, so `--confirm 60s` gives 60 to 61 s).
    pub deadline: u64,
}

impl Pending {
    /// Time left before the rollback (zero when past), to the sub-second.
    pub fn remaining(&self) -> Duration {
        (UNIX_EPOCH + Duration::from_secs(self.deadline))
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }
}

/// The Unix second at or after `now + window` (at least one second).
fn deadline_after(window: Duration) -> u64 {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + window.max(Duration::from_secs(1));
    at.as_secs() + u64::from(at.subsec_nanos() > 0)
}

/// What the commands need to reach nft and the state.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The `nft` binary.
    pub nft: PathBuf,
    /// Our table.
    pub table: String,
    /// The daemon's state dir (we use `firewall/` under it).
    pub state_dir: PathBuf,
    /// This executable, for the watcher child.
    pub exe: PathBuf,
}

impl Ctx {
    fn dir(&self) -> PathBuf {
        dir(&self.state_dir)
    }
    fn args(&self) -> Vec<String> {
        vec![
            "--state-dir".into(),
            self.state_dir.display().to_string(),
            "--nft".into(),
            self.nft.display().to_string(),
            "--table".into(),
            self.table.clone(),
        ]
    }
}

/// Outcome of [`apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Set when the apply waits for `confirm`.
    pub pending: Option<Pending>,
    /// Whether a rollback target was saved (false: rolling back deletes the table), or kept
    /// from an earlier unconfirmed apply.
    pub had_previous: bool,
}

/// Apply `def` atomically; with `confirm_within`, roll back unless confirmed in time.
pub fn apply(
    ctx: &Ctx,
    def: &str,
    confirm_within: Option<Duration>,
) -> Result<Applied, FirewallError> {
    nft::check(&ctx.nft, &ctx.table, def)?;
    let d = ctx.dir();
    fs::create_dir_all(&d).map_err(|e| io("create the state dir", &d, e))?;
    let _lock = lock(&d)?;
    // While an earlier apply is still unconfirmed, the live table is not known to be good:
    // keep the saved one (the last confirmed state) as the rollback target.
    let unconfirmed = read_pending(&d)?.is_some() && d.join("previous.json").exists();
    let had_previous = if unconfirmed {
        true
    } else {
        let prev = nft::snapshot(&ctx.nft, &ctx.table)?;
        let had = prev.is_some();
        let previous = Previous {
            table: ctx.table.clone(),
            ruleset: prev,
            saved_at: unix_now(),
        };
        write_json(&d.join("previous.json"), &previous)?;
        had
    };
    let pending = confirm_within.map(|w| Pending {
        token: token(),
        deadline: deadline_after(w),
    });
    match &pending {
        Some(p) => write_json(&d.join("pending.json"), p)?,
        None => remove(&d.join("pending.json"))?,
    }
    // The watcher first: if it cannot start, nothing is applied. If the apply then fails, the
    // watcher finds no pending file and exits within a second.
    if let Some(p) = &pending {
        if let Err(e) = spawn_watcher(ctx, &p.token) {
            let _ = remove(&d.join("pending.json"));
            return Err(e);
        }
    }
    let def = format!("{def}{}", carry_scanners(ctx));
    if let Err(e) = nft::replace(&ctx.nft, &ctx.table, Some(&def)) {
        let _ = remove(&d.join("pending.json"));
        return Err(e);
    }
    if pending.is_none() {
        save_confirmed(ctx, &d)?;
    }
    Ok(Applied {
        pending,
        had_previous,
    })
}

/// Lines that put the live scanner entries, with the time they have left, into the new table
/// (same transaction), so a re-apply does not erase scanners the daemon has not read yet.
/// Empty when there is no live table or it cannot be read.
fn carry_scanners(ctx: &Ctx) -> String {
    let Ok(listed) = nft::read_scanners(&ctx.nft, &ctx.table) else {
        return String::new();
    };
    let mut out = String::new();
    for (ip, left) in listed {
        let set = if ip.is_ipv4() {
            "scanners4"
        } else {
            "scanners6"
        };
        let timeout = left
            .map(|d| format!(" timeout {}s", d.as_secs().max(1)))
            .unwrap_or_default();
        out.push_str(&format!(
            "add element inet {} {set} {{ {ip}{timeout} }}\n",
            ctx.table
        ));
    }
    out
}

/// Keep the applied table: cancel the pending rollback. `Ok(false)` if nothing was pending.
pub fn confirm(ctx: &Ctx) -> Result<bool, FirewallError> {
    let d = ctx.dir();
    if !d.exists() {
        return Ok(false);
    }
    let _lock = lock(&d)?;
    let had = read_pending(&d)?.is_some();
    if had {
        save_confirmed(ctx, &d)?;
    }
    remove(&d.join("pending.json"))?;
    Ok(had)
}

/// Record the live table's structure as the one to bring back after a reboot.
fn save_confirmed(ctx: &Ctx, d: &Path) -> Result<(), FirewallError> {
    let ruleset = nft::structure(&ctx.nft, &ctx.table)?;
    write_confirmed(ctx, d, ruleset)
}

fn write_confirmed(ctx: &Ctx, d: &Path, ruleset: Option<String>) -> Result<(), FirewallError> {
    let rec = Previous {
        table: ctx.table.clone(),
        ruleset,
        saved_at: unix_now(),
    };
    write_json(&d.join("confirmed.json"), &rec)
}

/// What [`boot`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// An apply is waiting for `confirm`; a watcher will roll it back in time.
    Pending(Pending),
    /// The table was absent (a reboot) and the last confirmed one was loaded.
    Restored,
    /// The table is live (or nothing was ever confirmed): nothing done.
    Unchanged,
}

/// Call once when the daemon starts: honour a pending apply ([`honour_pending`]), then, if
/// the table is gone (the kernel forgets everything at reboot) bring back the last
/// confirmed one. Never applies an unconfirmed policy from the config by itself.
pub fn boot(ctx: &Ctx) -> Result<Boot, FirewallError> {
    if let Some(p) = honour_pending(ctx)? {
        return Ok(Boot::Pending(p));
    }
    let d = ctx.dir();
    let path = d.join("confirmed.json");
    let rec: Previous = match fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| FirewallError::State {
            path: path.clone(),
            detail: format!("corrupt: {e}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Boot::Unchanged),
        Err(e) => return Err(io("read", &path, e)),
    };
    let Some(ruleset) = rec.ruleset else {
        return Ok(Boot::Unchanged);
    };
    let _lock = lock(&d)?;
    if nft::snapshot(&ctx.nft, &rec.table)?.is_some() {
        return Ok(Boot::Unchanged);
    }
    nft::replace(&ctx.nft, &rec.table, Some(&ruleset))?;
    Ok(Boot::Restored)
}

/// The pending apply, if any.
pub fn pending(ctx: &Ctx) -> Result<Option<Pending>, FirewallError> {
    read_pending(&ctx.dir())
}

/// Restore the table saved before the last apply, now. `Ok(false)` if nothing was saved.
pub fn rollback(ctx: &Ctx) -> Result<bool, FirewallError> {
    let d = ctx.dir();
    if !d.exists() {
        return Ok(false);
    }
    let _lock = lock(&d)?;
    restore_locked(ctx, &d)
}

fn restore_locked(ctx: &Ctx, d: &Path) -> Result<bool, FirewallError> {
    let path = d.join("previous.json");
    let prev: Previous = match fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| FirewallError::State {
            path: path.clone(),
            detail: format!("corrupt: {e}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io("read", &path, e)),
    };
    nft::replace(&ctx.nft, &prev.table, prev.ruleset.as_deref())?;
    // What we restored is the last confirmed state; a reboot brings it back.
    let structure = match prev.ruleset {
        Some(_) => nft::structure(&ctx.nft, &prev.table)?,
        None => None,
    };
    write_confirmed(ctx, d, structure)?;
    remove(&d.join("pending.json"))?;
    Ok(true)
}

/// The watcher: wait for the deadline of `token`, then restore unless confirmed (or
/// superseded by a newer apply). Returns whether it restored.
pub fn rollback_if_unconfirmed(ctx: &Ctx, token: &str) -> Result<bool, FirewallError> {
    let d = ctx.dir();
    loop {
        let wait = {
            let _lock = lock(&d)?;
            match read_pending(&d)? {
                Some(p) if p.token == token => {
                    let left = p.remaining();
                    if left.is_zero() {
                        return restore_locked(ctx, &d);
                    }
                    left
                }
                _ => return Ok(false),
            }
        };
        // Re-check at least every second so a confirm is noticed and the process ends.
        std::thread::sleep(wait.min(Duration::from_secs(1)));
    }
}

/// Honour a pending apply after a restart: restore now if its deadline has passed, else make
/// sure a watcher runs. Returns the pending apply still waiting, if any. The daemon calls this
/// on start.
pub fn honour_pending(ctx: &Ctx) -> Result<Option<Pending>, FirewallError> {
    let d = ctx.dir();
    let Some(p) = read_pending(&d)? else {
        return Ok(None);
    };
    if p.remaining().is_zero() {
        let _lock = lock(&d)?;
        if read_pending(&d)?.is_some_and(|q| q.token == p.token) {
            restore_locked(ctx, &d)?;
        }
        return Ok(None);
    }
    if !watcher_alive(&d, &p.token) {
        spawn_watcher(ctx, &p.token)?;
    }
    Ok(Some(p))
}

/// Is the watcher recorded in `watcher.pid` still running for `token`? (Its command line
/// names the token, so a recycled pid does not fool us.)
fn watcher_alive(d: &Path, token: &str) -> bool {
    let Ok(pid) = fs::read_to_string(d.join("watcher.pid")) else {
        return false;
    };
    let Ok(cmdline) = fs::read(Path::new("/proc").join(pid.trim()).join("cmdline")) else {
        return false;
    };
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == token.as_bytes())
}

fn spawn_watcher(ctx: &Ctx, token: &str) -> Result<(), FirewallError> {
    let mut cmd = Command::new(&ctx.exe);
    cmd.args(["firewall", "rollback", "--if-unconfirmed", token])
        .args(ctx.args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid(2) is async-signal-safe. Its own session: no SIGHUP when the admin's
    // terminal goes away (which is exactly when it must survive).
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let child = cmd.spawn().map_err(|e| FirewallError::State {
        path: ctx.exe.clone(),
        detail: format!("cannot start the rollback watcher: {e}"),
    })?;
    // Only to avoid starting a second watcher (honour_pending); losing it is harmless.
    let _ = fs::write(ctx.dir().join("watcher.pid"), child.id().to_string());
    // The child is not waited for: it outlives us on purpose (init reaps it).
    Ok(())
}

fn read_pending(d: &Path) -> Result<Option<Pending>, FirewallError> {
    let path = d.join("pending.json");
    match fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| FirewallError::State {
                path,
                detail: format!("corrupt: {e}; remove it after checking the firewall table"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", &path, e)),
    }
}

fn lock(d: &Path) -> Result<nix::fcntl::Flock<File>, FirewallError> {
    let path = d.join("lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io("open", &path, e))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
        FirewallError::State {
            path,
            detail: format!("cannot lock: {e}"),
        }
    })
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), FirewallError> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(v).map_err(|e| FirewallError::State {
        path: path.into(),
        detail: e.to_string(),
    })?;
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("write", &tmp, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io("rename", path, e))
}

fn remove(path: &Path) -> Result<(), FirewallError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", path, e)),
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> FirewallError {
    FirewallError::State {
        path: path.into(),
        detail: format!("cannot {what}: {e}"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn token() -> String {
    let mut b = [0u8; 8];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        b = (unix_now() ^ u64::from(std::process::id()) << 32).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod deadline_tests {
    use super::*;

    #[test]
    fn the_confirm_window_is_never_shorter_than_asked() {
        for secs in [1, 2, 60] {
            let w = Duration::from_secs(secs);
            let p = Pending {
                token: "t".into(),
                deadline: deadline_after(w),
            };
            let left = p.remaining();
            // Rounded up to the whole second: between the window and one second more
            // (less the few microseconds this test took).
            assert!(left > w - Duration::from_millis(50), "{secs}s: {left:?}");
            assert!(left <= w + Duration::from_secs(1), "{secs}s: {left:?}");
        }
        let past = Pending {
            token: "t".into(),
            deadline: unix_now().saturating_sub(5),
        };
        assert_eq!(past.remaining(), Duration::ZERO);
    }
}
