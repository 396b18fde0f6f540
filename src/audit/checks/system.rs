//! System: automatic security updates, auditd's loaded rules, accounts and privileges.
//!
//! "Installed" is not "effective": updates are judged by the merged APT settings (Lynis
//! counts the package), auditd by the rules the kernel holds (`auditctl -l`), not the files
//! in `/etc/audit/rules.d`. Account checks read files under the audit root and report the
//! `file:line` of each offending entry.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::{Group, Meta, mode_string};
use crate::audit::aptconf::AptConf;
use crate::audit::{CheckResult, Ctx, Evidence, Severity, Status, exec};

/// Unattended security upgrades effective.
pub static UNATTENDED: Meta = Meta {
    id: "updates.unattended",
    title: "Security updates install automatically",
    severity: Severity::High,
    remediation: "apt-get install unattended-upgrades; set APT::Periodic::Update-Package-Lists \"1\" and APT::Periodic::Unattended-Upgrade \"1\" (dpkg-reconfigure -plow unattended-upgrades) and keep the -security origin in Unattended-Upgrade::Origins-Pattern",
};
/// auditd watches loaded.
pub static AUDIT_WATCHES: Meta = Meta {
    id: "auditd.watches",
    title: "auditd watches identity and SSH files (loaded rules)",
    severity: Severity::Medium,
    remediation: "apt-get install auditd; add `-w /etc/passwd -p wa`, `-w /etc/shadow -p wa`, `-w /etc/ssh/sshd_config -p wa`, `-w /usr/bin -p wa` to /etc/audit/rules.d/ravelin.rules and run augenrules --load",
};
/// UID 0 accounts besides root.
pub static UID0: Meta = Meta {
    id: "accounts.uid0",
    title: "No UID 0 account besides root",
    severity: Severity::Critical,
    remediation: "remove or renumber the extra UID 0 accounts (a UID 0 account is root under another name)",
};
/// NOPASSWD sudo.
pub static NOPASSWD: Meta = Meta {
    id: "sudo.nopasswd",
    title: "No NOPASSWD sudo rules",
    severity: Severity::Medium,
    remediation: "remove NOPASSWD from sudoers rules, or limit it to specific commands for service accounts",
};
/// /etc/shadow permissions.
pub static SHADOW: Meta = Meta {
    id: "files.shadow-perms",
    title: "/etc/shadow readable only by root and group shadow",
    severity: Severity::High,
    remediation: "chown root:shadow /etc/shadow && chmod 0640 /etc/shadow",
};

/// Backups scheduled.
pub static BACKUPS: Meta = Meta {
    id: "backups.scheduled",
    title: "A backup job is scheduled",
    severity: Severity::Medium,
    remediation: "schedule backups (restic, borg/borgmatic, rsnapshot, pgbackrest...) from a cron job or systemd timer, send them off the machine, and test a restore regularly",
};

/// Backups group.
pub const BACKUP: Group = Group {
    name: "backups",
    checks: &[&BACKUPS],
    run: backups,
};

/// Updates group.
pub const UPDATES: Group = Group {
    name: "updates",
    checks: &[&UNATTENDED],
    run: updates,
};
/// auditd group.
pub const AUDITD: Group = Group {
    name: "auditd",
    checks: &[&AUDIT_WATCHES],
    run: auditd,
};
/// Accounts group.
pub const ACCOUNTS: Group = Group {
    name: "accounts",
    checks: &[&UID0, &NOPASSWD, &SHADOW],
    run: accounts,
};

fn updates(ctx: &Ctx) -> Vec<CheckResult> {
    let mut ev = Vec::new();
    let (conf, source) = if ctx.live {
        let prog = exec::find_program(&ctx.root, "apt-config")
            .unwrap_or_else(|| PathBuf::from("/usr/bin/apt-config"));
        let shown = exec::display(&prog, &["dump"]);
        match exec::run(&prog, &["dump"], ctx.timeout) {
            Ok(o) if o.success() => {
                let mut c = AptConf::default();
                c.merge("apt-config dump", &o.stdout);
                (c, shown)
            }
            Ok(o) => {
                return vec![UNATTENDED.result(
                    Status::Error,
                    format!("`{shown}` failed: {}", o.stderr.trim()),
                    vec![],
                )];
            }
            Err(exec::ExecError::NotFound(_)) => {
                return vec![UNATTENDED.na("apt-config not found: not an APT system")];
            }
            Err(e) => return vec![UNATTENDED.result(Status::Error, e.to_string(), vec![])],
        }
    } else {
        let (c, files) = AptConf::from_root(&ctx.root);
        if files.is_empty() {
            return vec![UNATTENDED.na("no /etc/apt/apt.conf.d under the audit root")];
        }
        (c, format!("read {}", files.join(", ")))
    };
    let installed = exec::find_program(&ctx.root, "unattended-upgrade").is_some();
    let mut problems = Vec::new();
    if !installed {
        problems.push("unattended-upgrades is not installed".to_string());
    }
    for key in [
        "APT::Periodic::Update-Package-Lists",
        "APT::Periodic::Unattended-Upgrade",
    ] {
        let v = conf.get(key).unwrap_or("(unset)");
        let mut e = Evidence::new(&source, format!("{key} \"{v}\""));
        if let Some(l) = conf.location(key) {
            e = e.at(l);
        }
        ev.push(e);
        let on = v.parse::<u32>().is_ok_and(|n| n > 0)
            || (v.ends_with('d') && v.trim_end_matches('d').parse::<u32>().is_ok_and(|n| n > 0));
        if !on {
            problems.push(format!("{key} is \"{v}\" (disabled)"));
        }
    }
    let mut origins: Vec<String> = conf.list("Unattended-Upgrade::Origins-Pattern").to_vec();
    origins.extend(
        conf.list("Unattended-Upgrade::Allowed-Origins")
            .iter()
            .cloned(),
    );
    let security = origins
        .iter()
        .any(|o| o.to_ascii_lowercase().contains("security"));
    ev.push(Evidence::new(
        &source,
        format!(
            "{} origins allowed, security among them: {security}",
            origins.len()
        ),
    ));
    if !security {
        problems.push("no -security origin in Unattended-Upgrade::Origins-Pattern".into());
    }
    // Something must run it: the systemd timer (enabled = a link in timers.target.wants) or,
    // without systemd, the cron.daily job.
    let triggers = [
        "/etc/systemd/system/timers.target.wants/apt-daily-upgrade.timer",
        "/etc/cron.daily/apt-compat",
    ];
    let trigger = triggers
        .iter()
        .find(|t| std::fs::symlink_metadata(ctx.path(t)).is_ok());
    match trigger {
        Some(t) => ev.push(Evidence::new(format!("stat {t}"), "present")),
        None => problems.push(
            "neither the apt-daily-upgrade timer nor /etc/cron.daily/apt-compat is enabled: nothing runs it"
                .into(),
        ),
    }
    let mut warnings = Vec::new();
    // The stamp's age only means something on the live system (a fixture's mtime is the
    // checkout time).
    let stamp = ctx.path("/var/lib/apt/periodic/unattended-upgrades-stamp");
    if ctx.live && problems.is_empty() {
        match std::fs::metadata(&stamp).and_then(|m| m.modified()) {
            Ok(m) => {
                let hours = m.elapsed().unwrap_or_default().as_secs() / 3600;
                ev.push(Evidence::new(
                    format!("stat {}", stamp.display()),
                    format!("last run {hours} h ago"),
                ));
                if hours > 72 {
                    warnings.push(format!("last run {hours} h ago"));
                }
            }
            Err(_) => warnings.push("it has never run (no stamp)".to_string()),
        }
    }
    let log = ctx.path("/var/log/unattended-upgrades/unattended-upgrades.log");
    if let Ok(text) = std::fs::read_to_string(&log) {
        if let Some((line, bad)) = last_run_outcome(&text) {
            let shown = "/var/log/unattended-upgrades/unattended-upgrades.log";
            ev.push(
                Evidence::new(
                    format!("read {}", log.display()),
                    if bad {
                        "last run reported an error"
                    } else {
                        "last run without error"
                    },
                )
                .at(format!("{shown}:{line}")),
            );
            if bad {
                warnings.push(format!("the last run reported an error ({shown}:{line})"));
            }
        }
    }
    vec![if !problems.is_empty() {
        UNATTENDED.result(Status::Fail, problems.join("; "), ev)
    } else if !warnings.is_empty() {
        UNATTENDED.result(
            Status::Warn,
            format!("enabled, but {}", warnings.join("; ")),
            ev,
        )
    } else {
        UNATTENDED.result(
            Status::Pass,
            "unattended-upgrades is installed, enabled, scheduled and allowed the security origin",
            ev,
        )
    }]
}

/// The last run block of unattended-upgrades.log: (its first line, whether it logged an
/// error).
pub fn last_run_outcome(log: &str) -> Option<(usize, bool)> {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.contains("Starting unattended upgrades script"))?;
    let bad = lines[start..]
        .iter()
        .any(|l| l.contains(" ERROR ") || l.contains("Traceback"));
    Some((start + 1, bad))
}

/// Paths that must be watched, and whether a line of `auditctl -l` covers them.
const WATCHES: &[&str] = &[
    "/etc/passwd",
    "/etc/shadow",
    "/etc/ssh/sshd_config",
    "/usr/bin",
];

fn auditd(ctx: &Ctx) -> Vec<CheckResult> {
    if !ctx.live {
        return vec![
            AUDIT_WATCHES
                .na("loaded audit rules exist only in a running kernel (not under --root)"),
        ];
    }
    let prog = exec::find_program(&ctx.root, "auditctl")
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/auditctl"));
    let shown = exec::display(&prog, &["-l"]);
    let out = match exec::run(&prog, &["-l"], ctx.timeout) {
        Ok(o) if o.success() => o.stdout,
        Ok(o) => {
            return vec![AUDIT_WATCHES.result(
                Status::Fail,
                format!("auditd rules could not be listed: {}", o.stderr.trim()),
                vec![Evidence::new(shown, o.stderr.trim().to_string())],
            )];
        }
        Err(exec::ExecError::NotFound(_)) => {
            return vec![AUDIT_WATCHES.result(
                Status::Fail,
                "auditd is not installed: file changes are not recorded",
                vec![Evidence::new(shown, "not found")],
            )];
        }
        Err(e) => return vec![AUDIT_WATCHES.result(Status::Error, e.to_string(), vec![])],
    };
    vec![judge_audit_rules(&out, &shown)]
}

/// Judges `auditctl -l` output (pure).
pub fn judge_audit_rules(out: &str, shown: &str) -> CheckResult {
    let missing: Vec<&str> = WATCHES
        .iter()
        .copied()
        .filter(|p| {
            !out.lines().any(|l| {
                let w = l.split_whitespace().collect::<Vec<_>>();
                w.windows(2).any(|x| x[0] == "-w" && x[1] == *p)
                    || w.iter()
                        .any(|t| *t == format!("path={p}") || *t == format!("dir={p}"))
            })
        })
        .collect();
    let n = out.lines().filter(|l| l.starts_with('-')).count();
    let ev = vec![Evidence::new(shown, format!("{n} rules loaded"))];
    if missing.is_empty() {
        AUDIT_WATCHES.result(Status::Pass, "all required watches are loaded", ev)
    } else {
        AUDIT_WATCHES.result(
            Status::Fail,
            format!("not watched by the loaded rules: {}", missing.join(", ")),
            ev,
        )
    }
}

/// Backup tools recognised in cron lines and timer units.
const BACKUP_TOOLS: &[&str] = &[
    "restic",
    "borg",
    "borgmatic",
    "rsnapshot",
    "duplicity",
    "duplicati",
    "rdiff-backup",
    "bacula",
    "bareos",
    "pgbackrest",
    "barman",
    "kopia",
    "rclone",
    "tarsnap",
    "backup",
];

fn backups(ctx: &Ctx) -> Vec<CheckResult> {
    let mut files: Vec<PathBuf> = vec![PathBuf::from("/etc/crontab")];
    for dir in [
        "/etc/cron.d",
        "/etc/cron.daily",
        "/etc/cron.weekly",
        "/etc/cron.hourly",
        "/var/spool/cron/crontabs",
        "/etc/systemd/system",
    ] {
        if let Ok(rd) = std::fs::read_dir(ctx.path(dir)) {
            let mut names: Vec<String> = rd
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            files.extend(names.into_iter().map(|n| PathBuf::from(dir).join(n)));
        }
    }
    let mut found = Vec::new();
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let in_units = f.starts_with("/etc/systemd/system");
        if in_units && !(name.ends_with(".timer") || name.ends_with(".service")) {
            continue;
        }
        let Ok(t) = std::fs::read_to_string(ctx.path(f)) else {
            continue;
        };
        for (i, l) in t.lines().enumerate() {
            let l = l.trim();
            if l.starts_with('#') || l.is_empty() {
                continue;
            }
            let lower = l.to_ascii_lowercase();
            let words: Vec<&str> = lower
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .collect();
            if let Some(tool) = BACKUP_TOOLS.iter().find(|t| words.contains(t)) {
                found.push(
                    Evidence::new(format!("read {}", f.display()), format!("mentions {tool}"))
                        .at(format!("{}:{}", f.display(), i + 1)),
                );
                break;
            }
        }
    }
    vec![if found.is_empty() {
        BACKUPS.result(
            Status::Fail,
            format!(
                "no cron job or systemd unit mentions a backup tool ({} files read)",
                files.len()
            ),
            vec![],
        )
    } else {
        BACKUPS.result(
            Status::Warn,
            "a backup job is scheduled; whether it succeeds and restores cannot be proven from here: test a restore",
            found,
        )
    }]
}

fn accounts(ctx: &Ctx) -> Vec<CheckResult> {
    vec![uid0(ctx), nopasswd(ctx), shadow(ctx)]
}

fn uid0(ctx: &Ctx) -> CheckResult {
    let p = ctx.path("/etc/passwd");
    let Ok(text) = std::fs::read_to_string(&p) else {
        return UID0.na(format!("{} not readable", p.display()));
    };
    let src = format!("read {}", p.display());
    let extra: Vec<Evidence> = text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[2] == "0" && f[0] != "root").then(|| {
                Evidence::new(&src, format!("{} uid 0", f[0])).at(format!("/etc/passwd:{}", i + 1))
            })
        })
        .collect();
    if extra.is_empty() {
        UID0.result(
            Status::Pass,
            "only root has UID 0",
            vec![Evidence::new(src, "root uid 0")],
        )
    } else {
        let names: Vec<String> = extra.iter().filter_map(|e| e.value.clone()).collect();
        UID0.result(
            Status::Fail,
            format!("extra UID 0 accounts: {}", names.join(", ")),
            extra,
        )
    }
}

fn nopasswd(ctx: &Ctx) -> CheckResult {
    let mut files = vec![PathBuf::from("/etc/sudoers")];
    if let Ok(rd) = std::fs::read_dir(ctx.path("/etc/sudoers.d")) {
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // sudo skips names ending in `~` or containing `.`.
            .filter(|n| !n.ends_with('~') && !n.contains('.'))
            .collect();
        names.sort();
        files.extend(
            names
                .into_iter()
                .map(|n| PathBuf::from("/etc/sudoers.d").join(n)),
        );
    }
    let mut found = Vec::new();
    let mut read = 0;
    for f in &files {
        let Ok(t) = std::fs::read_to_string(ctx.path(f)) else {
            continue;
        };
        read += 1;
        for (i, l) in t.lines().enumerate() {
            let l = l.trim();
            if l.starts_with('#') || l.starts_with("Defaults") {
                continue;
            }
            if l.contains("NOPASSWD") {
                let who = l.split_whitespace().next().unwrap_or("?");
                found.push(
                    Evidence::new(
                        format!("read {}", f.display()),
                        format!("rule for {who} with NOPASSWD"),
                    )
                    .at(format!("{}:{}", f.display(), i + 1)),
                );
            }
        }
    }
    if read == 0 {
        return NOPASSWD.na("no sudoers file under the audit root (sudo not installed)");
    }
    if found.is_empty() {
        NOPASSWD.result(
            Status::Pass,
            format!("no NOPASSWD rule in {read} sudoers files"),
            vec![],
        )
    } else {
        NOPASSWD.result(
            Status::Fail,
            format!(
                "{} NOPASSWD rule(s): a stolen session becomes root without a password",
                found.len()
            ),
            found,
        )
    }
}

fn shadow(ctx: &Ctx) -> CheckResult {
    let p = ctx.path("/etc/shadow");
    let md = match std::fs::metadata(&p) {
        Ok(m) => m,
        Err(e) => return SHADOW.na(format!("{}: {e}", p.display())),
    };
    let mode = md.mode() & 0o7777;
    let ev = vec![Evidence::new(
        format!("stat {}", p.display()),
        mode_string(&md),
    )];
    let mut bad = Vec::new();
    if mode & 0o007 != 0 {
        bad.push("readable or writable by every user");
    }
    if mode & 0o020 != 0 {
        bad.push("group-writable");
    }
    if ctx.live && md.uid() != 0 {
        bad.push("not owned by root");
    }
    if bad.is_empty() {
        SHADOW.result(Status::Pass, format!("mode {mode:04o}"), ev)
    } else {
        SHADOW.result(
            Status::Fail,
            format!("mode {mode:04o}: {}", bad.join(", ")),
            ev,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_unattended_upgrades_run_decides() {
        let ok = "2026-11-19 06:10:01,1 INFO Starting unattended upgrades script\n2026-11-19 06:10:09,2 ERROR boom\n2026-11-20 06:10:01,1 INFO Starting unattended upgrades script\n2026-11-20 06:10:05,3 INFO No packages found that can be upgraded unattended\n";
        let bad = "2026-11-20 06:10:01,1 INFO Starting unattended upgrades script\n2026-11-20 06:10:02,1 ERROR Cache has broken packages, exiting\n";
        assert_eq!(last_run_outcome(ok), Some((3, false)));
        assert_eq!(last_run_outcome(bad), Some((1, true)));
        assert_eq!(last_run_outcome(""), None);
    }

    #[test]
    fn loaded_audit_rules_must_cover_every_watch() {
        let all = "-w /etc/passwd -p wa -k identity\n-w /etc/shadow -p wa -k identity\n-a always,exit -F arch=b64 -S openat -F path=/etc/ssh/sshd_config -F perm=wa\n-w /usr/bin -p wa -k binaries\n";
        let cases = [
            (all, Status::Pass, ""),
            (
                "No rules\n",
                Status::Fail,
                "/etc/passwd, /etc/shadow, /etc/ssh/sshd_config, /usr/bin",
            ),
            (
                "-w /etc/passwd -p wa\n-w /etc/shadow2 -p wa\n",
                Status::Fail,
                "/etc/shadow,",
            ),
        ];
        for (out, status, missing) in cases {
            let r = judge_audit_rules(out, "auditctl -l");
            assert_eq!(r.status, status, "{out}");
            assert!(r.reason.contains(missing), "{}", r.reason);
        }
    }
}
