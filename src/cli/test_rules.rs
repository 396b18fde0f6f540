//! `ravelin test-rules`: run a rule set over a log file and report what matched (our
//! fail2ban-regex).
//!
//! It drives exactly the [`Matcher`] the daemon uses, one line at a time, so its counts are
//! the daemon's. The file is read in big blocks and split on `\n` with memchr (no per-line
//! allocation for valid UTF-8); lines are cut at [`LINE_CAP`] like the file source does, and
//! invalid UTF-8 is replaced, so any file can be fed to it. Elapsed time is measured with a
//! monotonic `Instant` (a duration, not a wall-clock reading); the wall clock is read once,
//! through [`crate::clock`], to give RFC 3164 stamps a year.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use serde::Serialize;

use crate::clock::{Clock, SystemClock, rfc3339, unix_secs};
use crate::matcher::{Matcher, Outcome};

/// Lines longer than this are cut (the same cap the file source applies).
pub const LINE_CAP: usize = 16 * 1024;

/// Read block size.
const BLOCK: usize = 1 << 20;

/// Arguments of `ravelin test-rules`.
#[derive(Debug, clap::Args)]
pub struct TestRulesArgs {
    /// The log file to read.
    pub file: PathBuf,
    /// Rule set(s) to apply.
    #[arg(long, default_value = "sshd")]
    pub rules: Vec<String>,
    /// One JSON object per matched line, then a summary object.
    #[arg(long)]
    pub json: bool,
    /// How many unmatched lines from covered programs (e.g. sshd) to show (human output).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub show_unmatched: usize,
}

/// One matched line in `--json` output.
#[derive(Serialize)]
struct JsonMatch<'a> {
    line: u64,
    rule: &'static str,
    addr: IpAddr,
    user: Option<&'a str>,
    time: Option<&'a str>,
}

/// The final `--json` object's body.
#[derive(Serialize)]
struct Summary {
    lines: u64,
    matched: u64,
    per_rule: Vec<(&'static str, u64)>,
    unmatched_relevant: u64,
    addresses: usize,
    seconds: f64,
    lines_per_sec: f64,
}

/// Run the command, writing the report to `out`.
pub fn run(args: &TestRulesArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let matcher = Matcher::new(&args.rules)?;
    let file =
        File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    let now = SystemClock.now();
    let mut out = BufWriter::with_capacity(1 << 16, out);

    let mut lines = 0u64;
    let mut matched = 0u64;
    let mut per_rule: HashMap<&'static str, u64, FastHash> = HashMap::default();
    let mut unmatched_relevant = 0u64;
    let mut shown: Vec<(u64, String)> = Vec::new();
    let mut addrs: HashSet<IpAddr, FastHash> = HashSet::default();
    let mut time_cache = TimeCache::default();
    let mut write_err: Option<std::io::Error> = None;

    let start = Instant::now();
    for_each_line(file, BLOCK, |raw| {
        lines += 1;
        // The strict check has a fast ASCII path; the lossy one only runs on bad input.
        let line: Cow<'_, str> = match std::str::from_utf8(raw) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(raw),
        };
        match matcher.match_line(&line, now) {
            Outcome::Matched(m) => {
                matched += 1;
                *per_rule.entry(m.rule).or_insert(0) += 1;
                addrs.insert(m.addr);
                if args.json && write_err.is_none() {
                    let time = m.time.map(|t| time_cache.get(t));
                    let j = JsonMatch {
                        line: lines,
                        rule: m.rule,
                        addr: m.addr,
                        user: m.user,
                        time,
                    };
                    let res = serde_json::to_writer(&mut out, &j)
                        .map_err(std::io::Error::from)
                        .and_then(|()| out.write_all(b"\n"));
                    if let Err(e) = res {
                        write_err = Some(e);
                    }
                }
            }
            Outcome::Unmatched { relevant: true } => {
                unmatched_relevant += 1;
                if shown.len() < args.show_unmatched {
                    shown.push((lines, line.into_owned()));
                }
            }
            Outcome::Unmatched { relevant: false } => {}
        }
    })
    .with_context(|| format!("cannot read {}", args.file.display()))?;
    if let Some(e) = write_err {
        return Err(e).context("cannot write the report");
    }
    let seconds = start.elapsed().as_secs_f64();
    let lines_per_sec = if seconds > 0.0 {
        lines as f64 / seconds
    } else {
        0.0
    };

    // Per-rule counts in table order, rules that never matched included.
    let per_rule: Vec<(&'static str, u64)> = matcher
        .rule_ids()
        .map(|id| (id, per_rule.get(id).copied().unwrap_or(0)))
        .collect();

    if args.json {
        let summary = Summary {
            lines,
            matched,
            per_rule,
            unmatched_relevant,
            addresses: addrs.len(),
            seconds,
            lines_per_sec,
        };
        let per_rule_obj: serde_json::Map<String, serde_json::Value> = summary
            .per_rule
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).into()))
            .collect();
        let mut v = serde_json::to_value(&summary)?;
        v["per_rule"] = serde_json::Value::Object(per_rule_obj);
        serde_json::to_writer(&mut out, &serde_json::json!({ "summary": v }))?;
        writeln!(out)?;
    } else {
        writeln!(out, "file:        {}", args.file.display())?;
        writeln!(out, "rule sets:   {}", args.rules.join(", "))?;
        writeln!(out, "lines:       {lines}")?;
        writeln!(out, "matched:     {matched}")?;
        writeln!(out, "addresses:   {} distinct", addrs.len())?;
        writeln!(
            out,
            "unmatched lines from covered programs: {unmatched_relevant}"
        )?;
        writeln!(
            out,
            "time:        {seconds:.3} s ({lines_per_sec:.0} lines/s)"
        )?;
        writeln!(out, "\nper rule:")?;
        let mut sorted = per_rule;
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (id, n) in sorted {
            writeln!(out, "  {n:>10}  {id}")?;
        }
        if !shown.is_empty() {
            writeln!(
                out,
                "\nunmatched lines from covered programs (first {}):",
                shown.len()
            )?;
            for (n, l) in &shown {
                writeln!(out, "  {n:>8}: {l}")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// A fast, non-cryptographic hasher for the report's tables (SipHash showed up in profiles).
/// The keys come from the file being tested and the tables live only for this one command,
/// so hash flooding is not a concern here.
#[derive(Default, Clone, Copy)]
struct FastHash;

impl std::hash::BuildHasher for FastHash {
    type Hasher = FxLike;
    fn build_hasher(&self) -> FxLike {
        FxLike(0)
    }
}

/// Multiply-rotate hashing, one word at a time.
struct FxLike(u64);

impl std::hash::Hasher for FxLike {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// Formats event times, reusing the last string while the second does not change (log times
/// arrive in order, many per second).
#[derive(Default)]
struct TimeCache {
    secs: u64,
    text: String,
}

impl TimeCache {
    fn get(&mut self, t: SystemTime) -> &str {
        let s = unix_secs(t);
        if self.text.is_empty() || s != self.secs {
            self.secs = s;
            self.text = rfc3339(t);
        }
        &self.text
    }
}

/// Call `f` with each line of `r` (without `\n` or a trailing `\r`), cut at [`LINE_CAP`]
/// bytes. Reads `block` bytes at a time; the rest of an over-long line is skipped.
fn for_each_line(mut r: impl Read, block: usize, mut f: impl FnMut(&[u8])) -> std::io::Result<()> {
    let block = block.max(LINE_CAP + 1);
    let mut buf = vec![0u8; block];
    let mut filled = 0; // bytes in buf[..filled] not yet handed out
    let mut skipping = false; // inside the cut-off rest of an over-long line
    let emit = |f: &mut dyn FnMut(&[u8]), line: &[u8]| {
        let line = &line[..line.len().min(LINE_CAP)];
        f(line.strip_suffix(b"\r").unwrap_or(line));
    };
    loop {
        let n = match r.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let end = filled + n;
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[start..end]) {
            if skipping {
                skipping = false;
            } else {
                emit(&mut f, &buf[start..start + i]);
            }
            start += i + 1;
        }
        if n == 0 {
            if start < end && !skipping {
                emit(&mut f, &buf[start..end]);
            }
            return Ok(());
        }
        let rest = end - start;
        if skipping {
            filled = 0;
        } else if rest >= LINE_CAP {
            emit(&mut f, &buf[start..end]);
            skipping = true;
            filled = 0;
        } else {
            buf.copy_within(start..end, 0);
            filled = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8], block: usize) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for_each_line(input, block, |l| v.push(l.to_vec())).unwrap();
        v
    }

    #[test]
    fn splits_lines() {
        // (input, expected lines)
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"", &[]),
            (b"a", &[b"a"]),
            (b"a\n", &[b"a"]),
            (b"a\r\nb", &[b"a", b"b"]),
            (b"\n\n", &[b"", b""]),
            (b"one\ntwo\nthree\n", &[b"one", b"two", b"three"]),
        ];
        for &(input, want) in cases {
            assert_eq!(
                split(input, 1),
                want.iter().map(|l| l.to_vec()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn cuts_long_lines_and_keeps_counting() {
        let mut input = vec![b'x'; LINE_CAP * 3 + 5];
        input.extend_from_slice(b"\nnext\n");
        input.extend(vec![b'y'; LINE_CAP + 1]);
        for block in [1, LINE_CAP + 1, LINE_CAP * 2, 1 << 20] {
            let v = split(&input, block);
            assert_eq!(v.len(), 3, "block {block}");
            assert_eq!(v[0].len(), LINE_CAP);
            assert_eq!(v[1], b"next");
            assert_eq!(v[2].len(), LINE_CAP);
        }
    }

    fn run_on(content: &[u8], json: bool) -> String {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        let args = TestRulesArgs {
            file: f.path().to_path_buf(),
            rules: vec!["sshd".into()],
            json,
            show_unmatched: 1,
        };
        let mut out = Vec::new();
        run(&args, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    const SAMPLE: &[u8] = b"Nov 21 06:00:00 h sshd[1]: Invalid user x from 192.0.2.1 port 5\n\
Nov 21 06:00:01 h CRON[2]: pam_unix(cron:session): session closed for user root\n\
Nov 21 06:00:02 h sshd[1]: Failed password for invalid user \xff\xfe from 2001:db8::1 port 5 ssh2\n\
Nov 21 06:00:03 h sshd[1]: Server listening on :: port 22.\n\
Nov 21 06:00:04 h sshd[1]: Accepted publickey for a from 192.0.2.9 port 5 ssh2: ED25519 SHA256:x\n\
Nov 21 06:00:05 h sshd[1]: something else\n";

    #[test]
    fn json_report() {
        let out = run_on(SAMPLE, true);
        let objs: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(objs.len(), 4, "{out}");
        assert_eq!(objs[0]["line"], 1);
        assert_eq!(objs[0]["rule"], "sshd.invalid-user");
        assert_eq!(objs[0]["addr"], "192.0.2.1");
        assert_eq!(objs[0]["user"], "x");
        assert!(
            objs[0]["time"]
                .as_str()
                .unwrap()
                .ends_with("-11-21T06:00:00Z")
        );
        assert_eq!(objs[1]["line"], 3);
        assert_eq!(objs[1]["addr"], "2001:db8::1");
        assert_eq!(objs[1]["user"], "\u{fffd}\u{fffd}");
        assert_eq!(objs[2]["rule"], "sshd.accepted-publickey");
        let s = &objs[3]["summary"];
        assert_eq!(s["lines"], 6);
        assert_eq!(s["matched"], 3);
        assert_eq!(s["unmatched_relevant"], 2);
        assert_eq!(s["addresses"], 3);
        assert_eq!(s["per_rule"]["sshd.invalid-user"], 1);
        assert_eq!(s["per_rule"]["sshd.root-login-refused"], 0);
        assert!(s["lines_per_sec"].is_number() && s["seconds"].is_number());
    }

    #[test]
    fn human_report() {
        let out = run_on(SAMPLE, false);
        assert!(out.contains("lines:       6\n"), "{out}");
        assert!(out.contains("matched:     3\n"), "{out}");
        assert!(out.contains("addresses:   3 distinct"), "{out}");
        assert!(out.contains("         1  sshd.invalid-user"), "{out}");
        // only the first unmatched sshd line is shown (--show-unmatched 1)
        assert!(
            out.contains("       4: Nov 21 06:00:03 h sshd[1]: Server listening"),
            "{out}"
        );
        assert!(!out.contains("something else"), "{out}");
    }

    #[test]
    fn unknown_rule_set_and_missing_file_are_errors() {
        let mut out = Vec::new();
        let args = TestRulesArgs {
            file: "/nonexistent/ravelin-test".into(),
            rules: vec!["sshd".into()],
            json: false,
            show_unmatched: 0,
        };
        let e = run(&args, &mut out).unwrap_err().to_string();
        assert!(e.contains("cannot open /nonexistent/ravelin-test"), "{e}");
        let args = TestRulesArgs {
            rules: vec!["nginx".into()],
            ..args
        };
        let e = run(&args, &mut out).unwrap_err().to_string();
        assert!(e.contains("known rule sets: sshd"), "{e}");
    }

    #[test]
    fn matches_across_block_boundaries() {
        let line = b"Nov 21 06:00:00 h sshd[1]: Invalid user x from 192.0.2.1 port 5\n";
        let input: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 1000)
            .collect();
        let v = split(&input, LINE_CAP + 7);
        assert_eq!(v.len(), 1000);
        assert!(v.iter().all(|l| l.as_slice() == &line[..line.len() - 1]));
    }
}
