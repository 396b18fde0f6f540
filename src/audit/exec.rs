//! Running an external command with a deadline, never through a shell.
//!
//! Checks ask the live system (`sshd -T`, `nft -j list ruleset`, `apt-config dump`,
//! `auditctl -l`); any of them can hang (a stuck netlink socket, a locked dpkg), so every run
//! has a deadline after which the child is killed and the check reports "could not evaluate".
//! Output is read on helper threads so a chatty child cannot block on a full pipe, and it is
//! capped in size because some outputs (a huge ruleset) are attacker-influenced.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Most bytes kept from a child's stdout or stderr.
pub const OUTPUT_CAP: u64 = 16 * 1024 * 1024;

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl Output {
    /// True on exit status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Why a command produced no output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The program does not exist.
    #[error("{0} is not installed")]
    NotFound(String),
    /// It could not be started.
    #[error("could not run {0}: {1}")]
    Spawn(String, String),
    /// It ran past the deadline and was killed.
    #[error("{0} did not finish within {1:?} (killed)")]
    Timeout(String, Duration),
}

/// The argument vector as one display string (for evidence; no quoting is implied).
pub fn display(program: &Path, args: &[&str]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// Runs `program args...` with stdin closed, killing it after `timeout`.
pub fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<Output, ExecError> {
    let shown = display(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ExecError::NotFound(program.display().to_string())
            } else {
                ExecError::Spawn(shown.clone(), e.to_string())
            }
        })?;
    let out = child.stdout.take().map(reader);
    let err = child.stderr.take().map(reader);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(ExecError::Spawn(shown, e.to_string())),
        }
    };
    let collect = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let (stdout, stderr) = (collect(out), collect(err));
    match status {
        None => Err(ExecError::Timeout(shown, timeout)),
        Some(st) => Ok(Output {
            code: st.code(),
            stdout,
            stderr,
        }),
    }
}

fn reader<R: Read + Send + 'static>(r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.take(OUTPUT_CAP).read_to_end(&mut buf);
        buf
    })
}

/// Finds `name` in the usual system directories (root-relative), for "is it installed".
pub fn find_program(root: &Path, name: &str) -> Option<std::path::PathBuf> {
    [
        "usr/sbin",
        "usr/bin",
        "sbin",
        "bin",
        "usr/local/sbin",
        "usr/local/bin",
    ]
    .iter()
    .map(|d| root.join(d).join(name))
    .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_command_is_killed_at_the_deadline() {
        let t = Instant::now();
        let r = run(Path::new("sleep"), &["5"], Duration::from_millis(100));
        assert!(matches!(r, Err(ExecError::Timeout(..))), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn output_and_status_are_captured() {
        let r = run(Path::new("echo"), &["hi"], Duration::from_secs(5)).unwrap();
        assert!(r.success());
        assert_eq!(r.stdout, "hi\n");
        let r = run(Path::new("/nonexistent/prog"), &[], Duration::from_secs(1));
        assert!(matches!(r, Err(ExecError::NotFound(_))));
    }
}
