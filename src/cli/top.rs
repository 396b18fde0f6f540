//! `ravelin top`: a live terminal view for an admin already on the box: rates, jails, recent
//! bans and the attempts arriving now. It only reads the control socket once a second, draws
//! with plain ANSI (no terminal library, no raw mode), and stops on Ctrl-C. `--once` draws one
//! frame and exits (scripts, tests).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::control::{self, Request};

/// Arguments of `ravelin top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// Draw one frame and exit.
    #[arg(long)]
    pub once: bool,
    /// Seconds between frames.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
}

fn ask(socket: &Path, req: &Request) -> anyhow::Result<Value> {
    let r = control::call_with_timeout(socket, req, Duration::from_secs(5))?;
    if r.ok {
        Ok(r.data.unwrap_or(Value::Null))
    } else {
        anyhow::bail!("{}", r.error.unwrap_or_default())
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Run until interrupted (or one frame with `--once`).
pub fn run(socket: &Path, a: &TopArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let interval = Duration::from_secs_f64(a.interval.clamp(0.2, 60.0));
    let mut prev: Option<(Instant, u64, u64)> = None;
    loop {
        let st = ask(socket, &Request::Status)?;
        let bans = ask(socket, &Request::Bans)?;
        let now = Instant::now();
        let (records, nbans) = (
            st["counters"]["records"].as_u64().unwrap_or(0),
            st["counters"]["bans"].as_u64().unwrap_or(0),
        );
        let rates = prev.map(|(t, r, b)| {
            let dt = now.duration_since(t).as_secs_f64().max(0.001);
            (
                (records.saturating_sub(r)) as f64 / dt,
                (nbans.saturating_sub(b)) as f64 * 60.0 / dt,
            )
        });
        prev = Some((now, records, nbans));
        let mut f = String::new();
        if !a.once {
            f.push_str("\x1b[H\x1b[2J");
        }
        frame(&mut f, &st, &bans, rates);
        out.write_all(f.as_bytes())?;
        out.flush()?;
        if a.once {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

fn frame(f: &mut String, st: &Value, bans: &Value, rates: Option<(f64, f64)>) {
    use std::fmt::Write as _;
    let c = &st["counters"];
    let _ = writeln!(
        f,
        "ravelin top  pid {}  up {}s  backend {}  config {}",
        st["pid"],
        st["uptime_s"],
        s(&st["backend"]),
        s(&st["config"])
    );
    let rate = rates.map_or("-".to_string(), |(l, b)| {
        format!("{l:.1} records/s, {b:.1} bans/min")
    });
    let _ = writeln!(
        f,
        "active bans {}  kernel elements {}  records {}  matched {}  bans {}  errors {}  now: {rate}",
        st["active_bans"],
        s(&st["kernel_elements"]),
        c["records"],
        c["matched"],
        c["bans"],
        c["enforce_errors"].as_u64().unwrap_or(0) + c["store_errors"].as_u64().unwrap_or(0)
    );
    let _ = writeln!(f, "\nJAILS");
    for j in st["jails"].as_array().into_iter().flatten() {
        let _ = writeln!(
            f,
            "  {:<14} matched {:>8}  bans {:>6}  active {:>5}  tracked {:>8}",
            s(&j["name"]),
            j["matched"],
            j["bans"],
            j["active_bans"],
            j["tracked"]
        );
    }
    let _ = writeln!(f, "\nATTEMPTS NOW (newest first)");
    let recent = st["recent"].as_array().cloned().unwrap_or_default();
    let mut per_addr: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for o in &recent {
        let e = per_addr.entry(s(&o["addr"])).or_insert((0, s(&o["rule"])));
        e.0 += 1;
    }
    let mut top: Vec<(String, (u64, String))> = per_addr.into_iter().collect();
    top.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    for (addr, (n, rule)) in top.iter().take(8) {
        let _ = writeln!(
            f,
            "  {addr:<40} {n:>4} of the last {}  ({rule})",
            recent.len()
        );
    }
    if top.is_empty() {
        let _ = writeln!(f, "  (none yet)");
    }
    if let Some(d) = st.get("decoy").filter(|d| d.is_object()) {
        let stages: Vec<String> = crate::honeypot::events::STAGES
            .iter()
            .map(|k| format!("{k} {}", d["stages"][*k].as_u64().unwrap_or(0)))
            .collect();
        let _ = writeln!(
            f,
            "\nDECOY  {}  sessions {}  logins failed {} / succeeded {}  commands {}  restarts {}",
            if d["running"] == true {
                "running"
            } else {
                "NOT RUNNING"
            },
            d["sessions"],
            d["logins_failed"],
            d["logins_succeeded"],
            d["commands"],
            d["restarts"]
        );
        let _ = writeln!(f, "  stages: {}", stages.join(", "));
        let decoy_recent: Vec<&Value> = recent
            .iter()
            .filter(|o| o["rule"].as_str().is_some_and(|r| r.starts_with("decoy.")))
            .take(5)
            .collect();
        for o in decoy_recent {
            let user = o["user"].as_str().unwrap_or("");
            let _ = writeln!(
                f,
                "  {:<40} {:<24} {}",
                s(&o["addr"]),
                s(&o["rule"]),
                user.chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .take(32)
                    .collect::<String>()
            );
        }
    }
    let _ = writeln!(f, "\nRECENT BANS");
    let mut list = bans.as_array().cloned().unwrap_or_default();
    list.reverse();
    for b in list.iter().take(10) {
        let left = b["remaining_s"].as_u64().map_or("never".to_string(), |x| {
            crate::config::format_duration(Duration::from_secs(x))
        });
        let _ = writeln!(
            f,
            "  {:<40} {:<10} {:<12} level {:<3} left {:<8} {}",
            s(&b["target"]),
            s(&b["jail"]),
            s(&b["detector"]),
            b["level"],
            left,
            s(&b["start"])
        );
    }
    if list.is_empty() {
        let _ = writeln!(f, "  (none)");
    }
    let _ = writeln!(f, "\nCtrl-C to quit");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frame_shows_the_decoy_and_its_recent_activity() {
        let st = json!({
            "pid": 1, "uptime_s": 5, "backend": "log", "config": "x",
            "active_bans": 0, "kernel_elements": null, "counters": {},
            "jails": [],
            "recent": [
                {"addr": "203.0.113.5", "rule": "decoy.stage.persistence", "user": null},
                {"addr": "203.0.113.5", "rule": "decoy.login.success", "user": "root\u{1b}[2J"},
                {"addr": "198.51.100.7", "rule": "sshd.invalid-user", "user": "bob"},
            ],
            "decoy": {"running": true, "sessions": 4, "logins_failed": 9, "logins_succeeded": 1,
                      "commands": 12, "restarts": 0, "stages": {"spray": 4, "persistence": 1}},
        });
        let mut f = String::new();
        frame(&mut f, &st, &json!([]), None);
        assert!(
            f.contains("DECOY  running  sessions 4  logins failed 9 / succeeded 1  commands 12"),
            "{f}"
        );
        assert!(
            f.contains("stages: spray 4, probe 0, fingerprint 0, persistence 1"),
            "{f}"
        );
        assert!(f.contains("decoy.stage.persistence"), "{f}");
        assert!(
            !f.contains('\u{1b}'),
            "control characters from a user name reached the screen"
        );
        let mut g = String::new();
        let mut no_decoy = st.clone();
        no_decoy.as_object_mut().unwrap().remove("decoy");
        frame(&mut g, &no_decoy, &json!([]), None);
        assert!(!g.contains("DECOY"));
    }
}
