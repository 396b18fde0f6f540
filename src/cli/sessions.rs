//! `ravelin sessions`: what the decoy's sessions did; `ravelin replay ID`: play one back.
//!
//! Both read files only (the decoy's events file and its recordings directory); neither talks
//! to the daemon. Everything shown comes from clients, so text output has control characters
//! escaped, and replay strips terminal escape sequences other than colours and cursor moves
//! unless `--raw` is given.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::config::parse_duration;
use crate::event::normalize_addr;
use crate::honeypot::record::{CastReader, cast_path};
use crate::honeypot::sessions::{Query, SessionSummary, load_sessions};

/// Arguments of `ravelin sessions`.
#[derive(Debug, Clone, clap::Args)]
pub struct SessionsArgs {
    /// One JSON object per session per line.
    #[arg(long)]
    pub json: bool,
    /// Only sessions that started this recently (e.g. 1h, 7d).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only sessions from this address.
    #[arg(long, value_name = "IP")]
    pub addr: Option<IpAddr>,
    /// Only the newest N sessions.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// The decoy's events file (default: from the config).
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// The decoy's recordings directory (default: from the config).
    #[arg(long, value_name = "DIR")]
    pub recordings: Option<PathBuf>,
}

/// Arguments of `ravelin replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Session id, as `ravelin sessions` lists it.
    pub id: String,
    /// Play this many times faster than recorded.
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub speed: f64,
    /// Longest pause, in recorded seconds (longer idle gaps are cut to this).
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub max_wait: f64,
    /// Pass terminal escape sequences through untouched (they come from the client).
    #[arg(long)]
    pub raw: bool,
    /// The decoy's recordings directory (default: from the config).
    #[arg(long, value_name = "DIR")]
    pub recordings: Option<PathBuf>,
}

/// Run `ravelin sessions` over `events_file` (and its `FILE.1`), marking sessions that have a
/// recording in `recordings_dir`. The locations are taken as given (the caller resolves
/// `--events`/`--recordings`).
pub fn run_sessions(
    args: &SessionsArgs,
    events_file: &Path,
    recordings_dir: &Path,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let since = match &args.since {
        Some(s) => {
            let back = parse_duration(s).map_err(|e| anyhow::anyhow!("--since {s:?}: {e}"))?;
            Some(
                SystemTime::now()
                    .checked_sub(back)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
            )
        }
        None => None,
    };
    let q = Query {
        since,
        addr: args.addr.map(normalize_addr),
        limit: args.limit,
        ..Query::default()
    };
    let found = match load_sessions(events_file, Some(recordings_dir), &q) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no decoy events file at {} (has the decoy run? --events FILE reads another)",
            events_file.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", events_file.display())),
    };
    if args.json {
        for s in &found.sessions {
            serde_json::to_writer(&mut *out, &s.to_json())?;
            writeln!(out)?;
        }
        if found.bad_lines > 0 {
            eprintln!(
                "ravelin: {} lines skipped (not decoy events)",
                found.bad_lines
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    print_table(out, &found.sessions)?;
    let mut notes = vec![format!(
        "{} session{}",
        found.sessions.len(),
        if found.sessions.len() == 1 { "" } else { "s" }
    )];
    if found.bad_lines > 0 {
        notes.push(format!("{} lines skipped", found.bad_lines));
    }
    if found.evicted > 0 {
        notes.push(format!("{} older sessions not held", found.evicted));
    }
    let files: Vec<String> = found
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    writeln!(out, "{} (from {})", notes.join(", "), files.join(", "))?;
    Ok(ExitCode::SUCCESS)
}

/// `s` with control characters escaped and cut to `max` characters.
fn clean(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn source(s: &SessionSummary) -> String {
    match (s.src_ip, s.src_port) {
        (Some(IpAddr::V6(a)), Some(p)) => format!("[{a}]:{p}"),
        (Some(a), Some(p)) => format!("{a}:{p}"),
        (Some(a), None) => a.to_string(),
        (None, _) => "-".into(),
    }
}

fn print_table(out: &mut dyn Write, list: &[SessionSummary]) -> anyhow::Result<()> {
    if list.is_empty() {
        writeln!(out, "no decoy sessions")?;
        return Ok(());
    }
    let rows: Vec<[String; 8]> = list
        .iter()
        .map(|s| {
            let start = chrono::DateTime::<chrono::Utc>::from(s.start)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string();
            let client = s
                .client_version
                .as_deref()
                .map(|v| clean(v.strip_prefix("SSH-2.0-").unwrap_or(v), 24))
                .unwrap_or_else(|| "-".into());
            let stages = if s.stages.is_empty() {
                "-".into()
            } else {
                s.stages.join(",")
            };
            [
                clean(&s.id, 16),
                start,
                source(s),
                client,
                format!("{}/{}", s.credentials.len(), s.logins_succeeded()),
                s.commands.len().to_string(),
                if s.recording.is_some() { "yes" } else { "no" }.into(),
                stages,
            ]
        })
        .collect();
    let head = [
        "ID",
        "START (UTC)",
        "SOURCE",
        "CLIENT",
        "LOGINS",
        "CMDS",
        "REC",
        "STAGES",
    ];
    let mut width = head.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 8]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(width).enumerate() {
            match i {
                7 => l.push_str(cell),
                // Counts right-aligned.
                4 | 5 => l.push_str(&format!("{cell:>w$}  ")),
                _ => l.push_str(&format!("{cell:<w$}  ")),
            }
        }
        l
    };
    writeln!(out, "{}", line(head))?;
    for r in &rows {
        writeln!(out, "{}", line(r.each_ref().map(String::as_str)))?;
    }
    Ok(())
}

/// Run `ravelin replay ID` from `recordings_dir`: the output as recorded, at the recorded pace
/// (scaled by `--speed`, pauses cut to `--max-wait`); a line about the recording goes to
/// stderr.
pub fn run_replay(
    args: &ReplayArgs,
    recordings_dir: &Path,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    replay(
        args,
        recordings_dir,
        out,
        &mut std::io::stderr(),
        &mut std::thread::sleep,
    )
}

fn replay(
    args: &ReplayArgs,
    dir: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
    sleep: &mut dyn FnMut(Duration),
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.speed.is_finite() && args.speed > 0.0,
        "--speed must be a number above 0"
    );
    anyhow::ensure!(
        args.max_wait.is_finite() && args.max_wait >= 0.0,
        "--max-wait must be 0 or more seconds"
    );
    let id = args.id.trim().to_ascii_lowercase();
    let path = cast_path(dir, &id).map_err(|_| {
        anyhow::anyhow!(
            "{:?} is not a session id (12 hex digits); run `ravelin sessions` to list them",
            args.id
        )
    })?;
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no recording for session {id} in {} (run `ravelin sessions` to see which sessions have one)",
            dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let (header, events) = CastReader::new(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    let term = header
        .env
        .as_ref()
        .and_then(|e| e.get("TERM"))
        .and_then(|t| t.as_str())
        .unwrap_or("-");
    let started = header
        .timestamp
        .map(|t| {
            crate::honeypot::events::timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(t))
        })
        .unwrap_or_else(|| "-".into());
    writeln!(
        err,
        "replaying session {id}: {}x{}, TERM {}, started {started} (speed {}x, pauses cut to {}s)",
        header.width,
        header.height,
        clean(term, 32),
        args.speed,
        args.max_wait
    )?;
    let mut filter = Sanitizer::default();
    let mut last = 0.0f64;
    let mut text = String::new();
    for ev in events {
        let ev = ev.with_context(|| format!("reading {}", path.display()))?;
        if ev.code != "o" {
            continue;
        }
        let gap = (ev.time - last).clamp(0.0, args.max_wait) / args.speed;
        last = last.max(ev.time);
        if gap > 0.0 {
            sleep(Duration::from_secs_f64(gap));
        }
        if args.raw {
            out.write_all(ev.data.as_bytes())?;
        } else {
            text.clear();
            filter.feed(&ev.data, &mut text);
            out.write_all(text.as_bytes())?;
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Keeps text, line controls, colours and cursor moves; drops every other control character
/// and escape sequence (titles, clipboard, device queries ...), across chunk boundaries.
#[derive(Debug, Default)]
struct Sanitizer {
    state: State,
    csi: String,
    csi_bad: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Text,
    Esc,
    Csi,
    /// OSC, DCS, SOS, PM, APC: up to BEL or ST.
    Str,
    StrEsc,
}

impl Sanitizer {
    fn feed(&mut self, s: &str, out: &mut String) {
        for c in s.chars() {
            self.state = match self.state {
                State::Text => match c {
                    '\x1b' => State::Esc,
                    '\n' | '\r' | '\t' | '\x08' => {
                        out.push(c);
                        State::Text
                    }
                    c if c.is_control() => State::Text,
                    c => {
                        out.push(c);
                        State::Text
                    }
                },
                State::Esc => match c {
                    '[' => {
                        self.csi.clear();
                        self.csi_bad = false;
                        State::Csi
                    }
                    ']' | 'P' | 'X' | '^' | '_' => State::Str,
                    _ => State::Text,
                },
                State::Csi => match c {
                    '0'..='9' | ';' => {
                        if self.csi.len() < 32 {
                            self.csi.push(c);
                        } else {
                            self.csi_bad = true;
                        }
                        State::Csi
                    }
                    '\x20'..='\x3f' => {
                        self.csi_bad = true;
                        State::Csi
                    }
                    '\x40'..='\x7e' => {
                        if !self.csi_bad && "mABCDGHJKf".contains(c) {
                            out.push_str("\x1b[");
                            out.push_str(&self.csi);
                            out.push(c);
                        }
                        State::Text
                    }
                    _ => State::Text,
                },
                State::Str => match c {
                    '\x07' => State::Text,
                    '\x1b' => State::StrEsc,
                    _ => State::Str,
                },
                State::StrEsc => match c {
                    '\\' => State::Text,
                    _ => State::Str,
                },
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::honeypot::sessions::tests::write_sample;

    fn sessions_args(json: bool) -> SessionsArgs {
        SessionsArgs {
            json,
            since: None,
            addr: None,
            limit: None,
            events: None,
            recordings: None,
        }
    }

    fn replay_args(id: &str) -> ReplayArgs {
        ReplayArgs {
            id: id.into(),
            speed: 1.0,
            max_wait: 2.0,
            raw: false,
            recordings: None,
        }
    }

    /// What `replay` prints to the terminal, without pauses.
    fn replayed(args: &ReplayArgs, dir: &Path) -> String {
        let mut out = Vec::new();
        replay(args, dir, &mut out, &mut Vec::new(), &mut |_| {}).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_lists_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let events = write_sample(dir.path());
        let mut out = Vec::new();
        let code = run_sessions(
            &sessions_args(false),
            &events,
            &dir.path().join("rec"),
            &mut out,
        )
        .unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        for h in [
            "ID",
            "START (UTC)",
            "SOURCE",
            "CLIENT",
            "LOGINS",
            "CMDS",
            "REC",
            "STAGES",
        ] {
            assert!(lines[0].contains(h), "{text}");
        }
        let a: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            a,
            [
                "0a1b2c3d4e5f",
                "2025-11-21",
                "04:40:00",
                "203.0.113.7:40022",
                "Go",
                "3/1",
                "2",
                "yes",
                "spray,probe,fingerprint,download,tunnel"
            ]
        );
        let b: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            b,
            [
                "00000000beef",
                "2025-11-21",
                "04:40:03",
                "[2001:db8::9]:5555",
                "-",
                "1/0",
                "0",
                "no",
                "-"
            ]
        );
        assert!(
            lines[3].starts_with("2 sessions, 3 lines skipped (from "),
            "{text}"
        );
        // Columns line up.
        let col = |l: &str| l.find("SOURCE").or_else(|| l.find("203.")).unwrap();
        assert_eq!(col(lines[0]), col(lines[1]));
    }

    #[test]
    fn json_lines_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let events = write_sample(dir.path());
        let rec = dir.path().join("rec");
        let mut out = Vec::new();
        run_sessions(&sessions_args(true), &events, &rec, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let objs: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(objs.len(), 2);
        for key in [
            "id",
            "src_ip",
            "src_port",
            "start",
            "end",
            "duration_ms",
            "client_version",
            "hassh",
            "credentials",
            "commands",
            "downloads",
            "stages",
            "recording",
        ] {
            assert!(objs[0].get(key).is_some(), "{key}");
        }
        assert_eq!(objs[0]["id"], "0a1b2c3d4e5f");
        assert_eq!(objs[0]["commands"][0], "uname -a");
        assert_eq!(objs[0]["stages"][0], "spray");
        assert_eq!(
            objs[0]["recording"],
            rec.join("0a1b2c3d4e5f.cast").display().to_string()
        );
        assert!(objs[1]["recording"].is_null());

        // An IPv4-mapped address matches the plain one.
        let mut args = sessions_args(true);
        args.addr = "::ffff:203.0.113.7".parse().ok();
        let mut out = Vec::new();
        run_sessions(&args, &events, &rec, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);

        let mut args = sessions_args(false);
        args.since = Some("1h".into());
        let mut out = Vec::new();
        run_sessions(&args, &events, &rec, &mut out).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .starts_with("no decoy sessions")
        );

        args.since = Some("soon".into());
        assert!(run_sessions(&args, &events, &rec, &mut Vec::new()).is_err());
    }

    #[test]
    fn missing_events_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let e = run_sessions(
            &sessions_args(false),
            &dir.path().join("nope.json"),
            dir.path(),
            &mut Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no decoy events file"), "{e}");
    }

    #[test]
    fn client_strings_are_escaped_in_the_table() {
        assert_eq!(clean("a\x1b]0;x\x07b", 40), "a\\u{1b}]0;x\\u{7}b");
        assert_eq!(clean("abcdef", 3), "abc…");
    }

    fn cast(dir: &Path, id: &str, body: &str) {
        std::fs::write(
            dir.join(format!("{id}.cast")),
            format!(
                "{{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1763700000,\"env\":{{\"TERM\":\"xterm\",\"SHELL\":\"/bin/bash\"}},\"title\":\"{id}\"}}\n{body}"
            ),
        )
        .unwrap();
    }

    #[test]
    fn replay_keeps_timing_scaled_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        cast(
            dir.path(),
            "0a1b2c3d4e5f",
            "[0.5,\"o\",\"$ \"]\n[0.7,\"i\",\"id\\r\"]\n[1.0,\"o\",\"id\\r\\n\"]\n[11.0,\"o\",\"uid=0(root)\\r\\n\"]\n",
        );
        let mut args = replay_args("0A1B2C3D4E5F");
        args.speed = 2.0;
        let (mut out, mut err, mut slept) = (Vec::new(), Vec::new(), Vec::new());
        replay(&args, dir.path(), &mut out, &mut err, &mut |d| {
            slept.push(d)
        })
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "$ id\r\nuid=0(root)\r\n");
        assert_eq!(
            slept,
            [0.25, 0.25, 1.0].map(Duration::from_secs_f64),
            "10 s idle cut to 2 s, then halved"
        );
        let err = String::from_utf8(err).unwrap();
        assert!(err.starts_with("replaying session 0a1b2c3d4e5f: 80x24, TERM xterm, started 2025-11-21T04:40:00.000000Z"), "{err}");
    }

    #[test]
    fn replay_strips_dangerous_escapes_unless_raw() {
        let dir = tempfile::tempdir().unwrap();
        // Colour kept; a title-setting OSC split over two events, a device query and a bell
        // dropped.
        cast(
            dir.path(),
            "0a1b2c3d4e5f",
            "[0.1,\"o\",\"\\u001b[31mred\\u001b[0m \\u001b]0;pw\"]\n[0.2,\"o\",\"ned\\u0007ok\\u001b[6n\\u0007\\r\\n\"]\n",
        );
        let mut args = replay_args("0a1b2c3d4e5f");
        args.max_wait = 0.0;
        assert_eq!(replayed(&args, dir.path()), "\x1b[31mred\x1b[0m ok\r\n");
        args.raw = true;
        assert_eq!(
            replayed(&args, dir.path()),
            "\x1b[31mred\x1b[0m \x1b]0;pwned\x07ok\x1b[6n\x07\r\n"
        );
    }

    #[test]
    fn replay_of_unknown_or_invalid_id_points_to_sessions() {
        let dir = tempfile::tempdir().unwrap();
        for id in ["0a1b2c3d4e5f", "../../etc/passwd"] {
            let e = run_replay(&replay_args(id), dir.path(), &mut Vec::new())
                .unwrap_err()
                .to_string();
            assert!(e.contains("ravelin sessions"), "{e}");
        }
        let mut args = replay_args("0a1b2c3d4e5f");
        args.speed = 0.0;
        assert!(run_replay(&args, dir.path(), &mut Vec::new()).is_err());
    }

    #[tokio::test]
    async fn a_recording_replays() {
        use crate::honeypot::record::{RecordConfig, Recorder};
        let dir = tempfile::tempdir().unwrap();
        let (rec, task) = Recorder::start(RecordConfig {
            dir: dir.path().to_owned(),
            quota_bytes: 1 << 20,
            max_file_bytes: 1 << 20,
        })
        .await
        .unwrap();
        let r = rec.open("00000000cafe", 80, 24, SystemTime::now()).unwrap();
        r.output(b"root@web-01:~# ");
        r.input(b"w");
        r.output("w\r\n\u{2502} caf\u{e9}".as_bytes());
        r.close();
        drop(rec);
        task.await.unwrap();
        let mut args = replay_args("00000000cafe");
        args.max_wait = 0.0;
        assert_eq!(
            replayed(&args, dir.path()),
            "root@web-01:~# w\r\n\u{2502} caf\u{e9}"
        );
    }

    #[test]
    fn subcommands_parse() {
        let cli = Cli::try_parse_from([
            "ravelin",
            "sessions",
            "--json",
            "--since",
            "7d",
            "--addr",
            "203.0.113.7",
            "--limit",
            "5",
            "--events",
            "/tmp/e.json",
        ])
        .unwrap();
        let Command::Sessions(a) = &cli.command else {
            panic!("{cli:?}")
        };
        assert!(a.json);
        assert_eq!(a.limit, Some(5));
        assert_eq!(a.since.as_deref(), Some("7d"));
        let (events, recs) = crate::cli::decoy_paths(&cli, a.events.as_deref(), None);
        assert_eq!(events, Path::new("/tmp/e.json"));
        assert_eq!(recs, Path::new(crate::cli::DEFAULT_DECOY_RECORDINGS));

        let cli = Cli::try_parse_from([
            "ravelin",
            "replay",
            "0a1b2c3d4e5f",
            "--speed",
            "4",
            "--max-wait",
            "0.5",
            "--raw",
        ])
        .unwrap();
        let Command::Replay(a) = &cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!((a.speed, a.max_wait, a.raw), (4.0, 0.5, true));
        assert_eq!(a.id, "0a1b2c3d4e5f");
        assert!(Cli::try_parse_from(["ravelin", "sessions", "--addr", "nope"]).is_err());
    }
}
