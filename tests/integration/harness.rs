//! Test scaffolding: a private network namespace, a temp state dir and config, the daemon as a
//! child process, and helpers that read the kernel set with `nft -j`.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ravelin");

/// Can we do real nftables in namespaces here? If not, say why and skip.
pub fn can_run() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let nft = Command::new("nft")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !(root && nft && ip) {
        eprintln!(
            "SKIP: needs root, nft and ip (root={root} nft={nft} ip={ip}); run the README's test command"
        );
        return false;
    }
    true
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace that is deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Self {
        let name = format!(
            "rvt{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add");
        assert!(st.success(), "ip netns add {name} failed");
        let st = Command::new("ip")
            .args(["netns", "exec", &name, "ip", "link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(st.success());
        Self { name }
    }

    /// A command that runs inside the namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Elements of `inet <table> <set>` as strings (`203.0.113.7`, `203.0.113.0/24`).
    pub fn elements(&self, table: &str, set: &str) -> Vec<String> {
        let out = self
            .cmd("nft")
            .args(["-j", "list", "set", "inet", table, set])
            .output()
            .unwrap();
        if !out.status.success() {
            return Vec::new();
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut found = Vec::new();
        for item in v["nftables"].as_array().into_iter().flatten() {
            for e in item["set"]["elem"].as_array().into_iter().flatten() {
                found.push(elem_str(e));
            }
        }
        found
    }

    pub fn all_elements(&self) -> Vec<String> {
        let mut v = Vec::new();
        for set in ["ban4", "ban6", "ban4net", "ban6net"] {
            v.extend(self.elements("ravelin", set));
        }
        v
    }

    /// Wait until `pred(elements)` holds, up to `limit`; returns how long it took.
    pub fn wait_for(&self, limit: Duration, pred: impl Fn(&[String]) -> bool) -> Option<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if pred(&self.all_elements()) {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn has(&self, target: &str) -> bool {
        self.all_elements().iter().any(|e| e == target)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn elem_str(e: &serde_json::Value) -> String {
    match e {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => {
            if let Some(inner) = o.get("elem") {
                return elem_str(&inner["val"]);
            }
            if let Some(p) = o.get("prefix") {
                return format!("{}/{}", p["addr"].as_str().unwrap_or(""), p["len"]);
            }
            if let Some(r) = o.get("range") {
                return format!("{}-{}", elem_str(&r[0]), elem_str(&r[1]));
            }
            e.to_string()
        }
        other => other.to_string(),
    }
}

/// A temp dir with a config, a log file and a state dir.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Setup {
    /// `extra` is appended to the config (extra jail keys go in `jail_extra`).
    pub fn new(max_retry: u32, jail_extra: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        let config = dir.path().join("ravelin.toml");
        let text = format!(
            r#"state_dir = "{state}"
control_socket = "{sock}"

[allow]
addresses = ["192.0.2.10", "2001:db8:1::/48"]

[enforce]
backend = "nftables"
table = "ravelin"

[[source]]
name = "auth"
file = "{log}"

[[jail]]
name = "sshd"
sources = ["auth"]
rules = ["sshd"]
max_retry = {max_retry}
find_time = "10m"
ban_time = "10m"
ban_time_factor = 2
ban_time_max = "30d"
{jail_extra}
{extra}
"#,
            state = dir.path().join("state").display(),
            sock = dir.path().join("run/ravelin.sock").display(),
            log = log.display(),
        );
        std::fs::write(&config, text).unwrap();
        Self { dir, config, log }
    }

    /// Append `text` to the config file.
    pub fn add_config(&self, text: &str) {
        let mut all = std::fs::read_to_string(&self.config).unwrap();
        all.push_str(text);
        std::fs::write(&self.config, all).unwrap();
    }

    /// Add a webhook sink pointing at `http://127.0.0.1:{port}/hook` (URL in a secret file).
    pub fn add_webhook(&self, port: u16) {
        let url = self.dir.path().join("webhook-url");
        std::fs::write(&url, format!("http://127.0.0.1:{port}/hook\n")).unwrap();
        self.add_config(&format!(
            "\n[[alert.sink]]\nkind = \"webhook\"\nurl_file = \"{}\"\n",
            url.display()
        ));
    }

    pub fn append(&self, lines: &[String]) {
        append_to(&self.log, lines);
    }

    /// Run a CLI subcommand against this setup's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }
}

pub fn append_to(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut buf = String::new();
    for l in lines {
        buf.push_str(l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

/// An sshd failure line as OpenSSH 9.x writes it (RFC 3164 header, current time).
pub fn failed(addr: &str, user: &str) -> String {
    let now = chrono::Utc::now().format("%b %e %H:%M:%S");
    format!(
        "{now} host sshd[4242]: Failed password for invalid user {user} from {addr} port 50022 ssh2"
    )
}

/// The daemon, killed on drop.
pub struct Daemon {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Daemon {
    pub fn start(ns: &Netns, setup: &Setup) -> Self {
        Self::start_with_env(ns, setup, &[])
    }

    pub fn start_with_env(ns: &Netns, setup: &Setup, env: &[(&str, &Path)]) -> Self {
        let stderr = setup
            .dir
            .path()
            .join(format!("daemon-{}.log", SEQ.fetch_add(1, Ordering::SeqCst)));
        let child = ns
            .cmd(BIN)
            .arg("run")
            .arg("--config")
            .arg(&setup.config)
            .env("RAVELIN_LOG", "debug")
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start daemon");
        let d = Self { child, stderr };
        // Ready when the control socket answers.
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if setup.cli(&["status", "--json"]).status.success() {
                return d;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not come up; its log:\n{}", d.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) -> String {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let st = self.child.wait().unwrap();
        assert!(
            st.success(),
            "daemon exited with {st}; log:\n{}",
            self.log()
        );
        self.log()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Is `program` on the PATH? Says how to get it when not.
pub fn have(program: &str, package: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let ok = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| {
            std::fs::metadata(d.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    if !ok {
        eprintln!("SKIP: needs {program} (apt-get install {package})");
    }
    ok
}

/// A webhook receiver inside `ns`: records each request's body, answers 200.
pub fn webhook_in(ns: &Netns) -> (u16, Arc<Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let (ptx, prx) = std::sync::mpsc::channel();
    let nspath = PathBuf::from("/run/netns").join(&ns.name);
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&nspath).unwrap();
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ptx.send(l.local_addr().unwrap().port()).unwrap();
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let n = c.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(i) = text.find("\r\n\r\n") {
                    let len = text[..i]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= i + 4 + len {
                        break;
                    }
                }
            }
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            g.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf).into_owned());
        }
    });
    (prx.recv().unwrap(), got)
}

/// Wait up to `limit` for a request recorded by [`webhook_in`] that satisfies `pred`.
pub fn wait_request(
    got: &Mutex<Vec<String>>,
    limit: Duration,
    pred: impl Fn(&str) -> bool,
) -> Option<String> {
    let t0 = Instant::now();
    loop {
        if let Some(b) = got.lock().unwrap().iter().find(|b| pred(b)) {
            return Some(b.clone());
        }
        if t0.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
