//! Confinement of the decoy process: drop to an unprivileged user, then Landlock (the file
//! system outside the data directory and every TCP bind/connect are off limits), then seccomp
//! (no exec, no new sockets, no fork, no debugging or kernel-admin calls).
//!
//! Why shaped so:
//! - **Before any thread exists.** Landlock and seccomp apply to the calling thread and the
//!   threads it starts later; the decoy confines itself on its main thread, before the async
//!   runtime starts its workers, so every thread that ever touches attacker data is confined.
//! - **Accept needs no `socket(2)`.** The listening sockets arrive already bound (from the
//!   daemon), and `accept4` makes the connection sockets; so `socket`, `connect`, `bind` and
//!   `listen` can all be refused outright. (`socketpair` stays: it makes only a connected pair
//!   inside the process, which tokio's signal handling uses, and reaches nothing.) That is what "reaches no network but its accepted
//!   connections" means in system-call terms.
//! - **A deny list, not an allow list.** An allow list breaks whenever tokio, glibc or the
//!   kernel change which calls they use; a deny list of the calls that would let a compromised
//!   decoy act on the world (exec, new sockets, fork, ptrace, mount, namespaces, modules, BPF,
//!   keyrings, io_uring) keeps the guarantee that matters and survives upgrades. Threads are
//!   still allowed: `clone` is refused unless it carries `CLONE_THREAD`, and `clone3` (whose
//!   flags a filter cannot read) answers `ENOSYS`, on which glibc falls back to `clone`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};

/// How strict confinement must be (`[honeypot] sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// Landlock and seccomp must be in force, or the decoy does not start.
    #[default]
    Required,
    /// Apply what the kernel supports; say what is missing.
    BestEffort,
    /// No confinement at all (tests and debugging only).
    Off,
}

impl SandboxMode {
    /// Parse the config/CLI word.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "required" => Self::Required,
            "best-effort" => Self::BestEffort,
            "off" => Self::Off,
            _ => return None,
        })
    }
}

/// What confinement is in force, for the log and `ravelin status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confinement {
    /// The user the process runs as now.
    pub uid: u32,
    /// Landlock: `full`, `partial` (e.g. no network rules on kernels before 6.7) or `none`.
    pub landlock: &'static str,
    /// seccomp filter installed.
    pub seccomp: bool,
}

impl std::fmt::Display for Confinement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "uid {}, landlock {}, seccomp {}",
            self.uid,
            self.landlock,
            if self.seccomp { "on" } else { "off" }
        )
    }
}

/// The uid and gid of `name` (read from the passwd database before confinement).
pub fn lookup_user(name: &str) -> anyhow::Result<(u32, u32)> {
    let u = nix::unistd::User::from_name(name)
        .with_context(|| format!("looking up user {name:?}"))?
        .with_context(|| {
            format!(
                "user {name:?} does not exist; create it (e.g. `useradd --system --no-create-home \
                 --shell /usr/sbin/nologin {name}`) or set [honeypot] user"
            )
        })?;
    Ok((u.uid.as_raw(), u.gid.as_raw()))
}

/// Drop every privilege to `uid`/`gid` (supplementary groups cleared) and check it sticks.
pub fn drop_privileges(uid: u32, gid: u32) -> anyhow::Result<()> {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    if Uid::current().is_root() {
        setgroups(&[]).context("clearing supplementary groups")?;
    }
    setgid(Gid::from_raw(gid)).with_context(|| format!("setgid({gid})"))?;
    setuid(Uid::from_raw(uid)).with_context(|| format!("setuid({uid})"))?;
    if uid != 0 && setuid(Uid::from_raw(0)).is_ok() {
        bail!("privileges were not dropped: setuid(0) still succeeds");
    }
    Ok(())
}

/// Confine the calling thread (and every thread it starts later) to `data_dir`.
///
/// Call on the main thread before starting any other thread.
pub fn confine(data_dir: &Path, mode: SandboxMode) -> anyhow::Result<Confinement> {
    let mut c = Confinement {
        uid: nix::unistd::Uid::current().as_raw(),
        landlock: "none",
        seccomp: false,
    };
    if mode == SandboxMode::Off {
        return Ok(c);
    }
    match landlock_data_dir_only(data_dir) {
        Ok(s) => c.landlock = s,
        Err(e) if mode == SandboxMode::BestEffort => {
            tracing::warn!("decoy: Landlock not applied: {e:#}");
        }
        Err(e) => return Err(e),
    }
    if mode == SandboxMode::Required && c.landlock == "none" {
        bail!(
            "this kernel does not enforce Landlock (needs Linux 5.13+ with `landlock` in the \
             lsm= list); set [honeypot] sandbox = \"best-effort\" to run the decoy without it"
        );
    }
    match seccomp_deny_list() {
        Ok(()) => c.seccomp = true,
        Err(e) if mode == SandboxMode::BestEffort => {
            tracing::warn!("decoy: seccomp not applied: {e:#}");
        }
        Err(e) => return Err(e),
    }
    Ok(c)
}

fn landlock_data_dir_only(data_dir: &Path) -> anyhow::Result<&'static str> {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
        Scope, path_beneath_rules,
    };
    let abi = ABI::V6;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .handle_access(AccessNet::from_all(abi))?
        .scope(Scope::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules([data_dir], AccessFs::from_all(abi)))?
        .restrict_self()
        .context("landlock_restrict_self")?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => "full",
        RulesetStatus::PartiallyEnforced => "partial",
        RulesetStatus::NotEnforced => "none",
    })
}

/// Refuse memory locking to this process for good (soft and hard `RLIMIT_MEMLOCK` 0, kept
/// across the privilege drop), whatever the sandbox mode.
///
/// russh locks every key and packet buffer (`mlock` on each allocation, `munlock` on each
/// free) so session keys stay out of swap. The decoy's session keys guard nothing: what
/// flows through them is an attacker talking to a fake shell. Those calls cost it about 6%
/// of its CPU and take the process-wide memory map lock for writing, which stalls its other
/// threads (perf, docs/benchmarks.md). With the limit at 0 an unprivileged process's `mlock`
/// fails at once with `EPERM`, before any lock is taken, and russh ignores the failure; the
/// seccomp filter refuses `munlock` too.
pub fn no_memory_locking() -> anyhow::Result<()> {
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK, 0, 0)
        .context("setting RLIMIT_MEMLOCK to 0")
}

/// System calls a confined decoy never needs; all answer `EPERM`.
const DENIED: &[i64] = &[
    // Memory locking: see `no_memory_locking`.
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_munlock,
    libc::SYS_mlockall,
    libc::SYS_munlockall,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_socket,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_kexec_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setgroups,
    libc::SYS_personality,
    libc::SYS_acct,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
];

fn seccomp_deny_list() -> anyhow::Result<()> {
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule,
    };
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| anyhow::anyhow!("seccomp: unsupported architecture: {e:?}"))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&n| (n, Vec::new())).collect();
    // clone without CLONE_THREAD is a fork.
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            0,
        )?])?],
    );
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    let deny: BpfProgram = deny.try_into()?;
    let clone3: BpfProgram = clone3.try_into()?;
    // seccompiler sets no_new_privs itself; Landlock already did too.
    seccompiler::apply_filter(&deny).context("installing the seccomp filter")?;
    seccompiler::apply_filter(&clone3).context("installing the clone3 filter")?;
    Ok(())
}
