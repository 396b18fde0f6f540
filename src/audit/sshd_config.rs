//! Our own reader of `sshd_config`, to say which `file:line` set each value.
//!
//! `sshd -T` tells what is in force but not why; when a cloud-init drop-in re-enables
//! passwords, the admin needs the file and line. This reader follows sshd's rules as far as
//! they matter for an audit:
//!
//! - keywords are case-insensitive, `Keyword value` or `Keyword=value`, `#` starts a comment;
//! - `Include` takes globs, relative ones resolved against `/etc/ssh`, each glob's matches read
//!   in lexical order at the point of the `Include` (so `sshd_config.d/50-cloud-init.conf` is
//!   read before the rest of the main file when Debian's `Include` line sits at the top);
//! - the first value read wins for the global context ([`SshdConfig::global`]);
//! - `Match` blocks run to the next `Match` or the end of the file; for a connection they
//!   match, their first value overrides the global one. Without a connection we cannot know
//!   which blocks match, so checks treat every block as a context of its own
//!   ([`SshdConfig::in_matches`]) and the live `sshd -T -C` covers concrete connections.
//!
//! Paths are kept as the audited system sees them (`/etc/ssh/...`) and opened under the audit
//! root, so fixture trees report the same locations as a live system. Input is bounded:
//! include depth 16 (as sshd), 1 MiB per file, 256 files.

use std::path::{Path, PathBuf};

use super::reroot;

/// Include nesting limit (sshd's own).
const MAX_DEPTH: usize = 16;
/// Largest file read.
const MAX_FILE: u64 = 1024 * 1024;
/// Most files read through includes.
const MAX_FILES: usize = 256;

/// One `Keyword value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lowercase keyword, aliases folded (`challengeresponseauthentication` ->
    /// `kbdinteractiveauthentication`).
    pub key: String,
    /// Arguments joined by one space, quotes removed.
    pub value: String,
    /// The file, as a path on the audited system.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// Index into [`SshdConfig::matches`] when inside a `Match` block.
    pub in_match: Option<usize>,
}

impl Directive {
    /// `file:line`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// A `Match` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchBlock {
    /// The criteria as written (`User backup`, `Address 10.0.0.0/8`).
    pub criteria: String,
    /// Where it starts, as a path on the audited system.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl MatchBlock {
    /// `file:line`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// Everything read from a main config and its includes, in reading order.
#[derive(Debug, Clone, Default)]
pub struct SshdConfig {
    /// Directives in the order sshd reads them (includes expanded in place).
    pub directives: Vec<Directive>,
    /// `Match` blocks in reading order.
    pub matches: Vec<MatchBlock>,
    /// Files read, in order (audited-system paths).
    pub files: Vec<PathBuf>,
    /// Non-fatal problems (an unreadable include, a depth limit hit).
    pub problems: Vec<String>,
}

/// Keywords that accumulate over lines instead of keeping the first.
const ACCUMULATE: &[&str] = &[
    "allowusers",
    "allowgroups",
    "denyusers",
    "denygroups",
    "hostkey",
    "listenaddress",
    "port",
    "acceptenv",
    "subsystem",
];

impl SshdConfig {
    /// Reads `main` (an audited-system path) under `root`.
    pub fn load(root: &Path, main: &Path) -> Result<Self, String> {
        Self::load_overlay(root, main, None)
    }

    /// Like [`SshdConfig::load`], as if `overlay` (path, text) existed with that content:
    /// how `harden` previews a drop-in before writing it.
    pub fn load_overlay(
        root: &Path,
        main: &Path,
        overlay: Option<(&Path, &str)>,
    ) -> Result<Self, String> {
        let ld = Loader { root, overlay };
        let mut cfg = SshdConfig::default();
        let mut ctx = None;
        read_file(&ld, main, 0, &mut ctx, &mut cfg, true)?;
        Ok(cfg)
    }

    /// Parses a config given as text (tests).
    pub fn parse_str(root: &Path, name: &Path, text: &str) -> Self {
        let ld = Loader {
            root,
            overlay: None,
        };
        let mut cfg = SshdConfig::default();
        let mut ctx = None;
        cfg.files.push(name.to_path_buf());
        parse_text(&ld, name, text, 0, &mut ctx, &mut cfg);
        cfg
    }

    /// The global value sshd uses when no `Match` applies: the first one read.
    pub fn global(&self, key: &str) -> Option<&Directive> {
        self.directives
            .iter()
            .find(|d| d.in_match.is_none() && d.key == key)
    }

    /// Every global line of a keyword (for accumulating ones like `AllowUsers`).
    pub fn global_all(&self, key: &str) -> Vec<&Directive> {
        self.directives
            .iter()
            .filter(|d| d.in_match.is_none() && d.key == key)
            .collect()
    }

    /// For each `Match` block that sets `key`, the first value it sets.
    pub fn in_matches(&self, key: &str) -> Vec<(&MatchBlock, &Directive)> {
        let mut out: Vec<(&MatchBlock, &Directive)> = Vec::new();
        for d in &self.directives {
            if d.key != key {
                continue;
            }
            let Some(i) = d.in_match else { continue };
            if out.iter().any(|(_, e)| e.in_match == Some(i)) {
                continue;
            }
            if let Some(m) = self.matches.get(i) {
                out.push((m, d));
            }
        }
        out
    }

    /// True if `key` accumulates over lines.
    pub fn accumulates(key: &str) -> bool {
        ACCUMULATE.contains(&key)
    }
}

/// Where files come from: the audit root, plus one file that may be overlaid in memory.
struct Loader<'a> {
    root: &'a Path,
    overlay: Option<(&'a Path, &'a str)>,
}

fn read_file(
    ld: &Loader<'_>,
    path: &Path,
    depth: usize,
    ctx: &mut Option<usize>,
    cfg: &mut SshdConfig,
    required: bool,
) -> Result<(), String> {
    if cfg.files.len() >= MAX_FILES {
        cfg.problems
            .push(format!("more than {MAX_FILES} files included; stopped"));
        return Ok(());
    }
    let real = reroot(ld.root, path);
    let loaded = match ld.overlay {
        Some((p, t)) if p == path => Ok(t.to_string()),
        _ => read_capped(&real),
    };
    let text = match loaded {
        Ok(t) => t,
        Err(e) if required => return Err(format!("{}: {e}", real.display())),
        Err(e) => {
            cfg.problems.push(format!("{}: {e}", real.display()));
            return Ok(());
        }
    };
    cfg.files.push(path.to_path_buf());
    parse_text(ld, path, &text, depth, ctx, cfg);
    Ok(())
}

fn read_capped(p: &Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(p).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    f.take(MAX_FILE)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn parse_text(
    ld: &Loader<'_>,
    file: &Path,
    text: &str,
    depth: usize,
    ctx: &mut Option<usize>,
    cfg: &mut SshdConfig,
) {
    // A Match block opened in an included file ends with that file.
    let outer = *ctx;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let Some((key, args)) = split_line(raw) else {
            continue;
        };
        match key.as_str() {
            "match" => {
                cfg.matches.push(MatchBlock {
                    criteria: args.join(" "),
                    file: file.to_path_buf(),
                    line,
                });
                *ctx = Some(cfg.matches.len() - 1);
            }
            "include" => {
                cfg.directives.push(Directive {
                    key: key.clone(),
                    value: args.join(" "),
                    file: file.to_path_buf(),
                    line,
                    in_match: *ctx,
                });
                if depth + 1 > MAX_DEPTH {
                    cfg.problems.push(format!(
                        "{}:{line}: Include nested deeper than {MAX_DEPTH}; not followed",
                        file.display()
                    ));
                    continue;
                }
                for pat in &args {
                    let pat = if pat.starts_with('/') {
                        pat.clone()
                    } else {
                        format!("/etc/ssh/{pat}")
                    };
                    let mut found = glob(ld.root, &pat);
                    if let Some((o, _)) = ld.overlay {
                        if glob_matches(&pat, o) && !found.iter().any(|f| f == o) {
                            found.push(o.to_path_buf());
                            found.sort();
                        }
                    }
                    for p in found {
                        let mut inner = *ctx;
                        let _ = read_file(ld, &p, depth + 1, &mut inner, cfg, false);
                    }
                }
            }
            _ => cfg.directives.push(Directive {
                key,
                value: args.join(" "),
                file: file.to_path_buf(),
                line,
                in_match: *ctx,
            }),
        }
    }
    if depth > 0 {
        *ctx = outer;
    }
}

/// Splits a line into a lowercase keyword (aliases folded) and its arguments.
fn split_line(raw: &str) -> Option<(String, Vec<String>)> {
    let s = raw.trim();
    if s.is_empty() || s.starts_with('#') {
        return None;
    }
    let end = s
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(s.len());
    let key = s[..end].to_ascii_lowercase();
    let mut rest = s[end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    let key = match key.as_str() {
        "challengeresponseauthentication" => "kbdinteractiveauthentication".to_string(),
        _ => key,
    };
    Some((key, split_args(rest)))
}

/// Whitespace-separated words, `"quoted words"` kept together, stopping at a `#` word.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in s.chars() {
        if quoted {
            if c == '"' {
                quoted = false;
            } else {
                cur.push(c);
            }
            continue;
        }
        if c.is_whitespace() {
            if in_word {
                out.push(std::mem::take(&mut cur));
                in_word = false;
            }
        } else if c == '#' && !in_word {
            break;
        } else if c == '"' {
            quoted = true;
            in_word = true;
        } else {
            cur.push(c);
            in_word = true;
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Expands an absolute glob (`*`, `?`, `[..]` in any component) under `root`, sorted as
/// glob(3) sorts. Returned paths are audited-system paths.
pub fn glob(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("/")];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &found {
            if comp.contains(['*', '?', '[']) {
                let Ok(rd) = std::fs::read_dir(reroot(root, base)) else {
                    continue;
                };
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') && !comp.starts_with('.') {
                        continue;
                    }
                    if wildmatch(comp.as_bytes(), name.as_bytes()) {
                        next.push(base.join(&name));
                    }
                }
            } else {
                next.push(base.join(comp));
            }
        }
        found = next;
    }
    let mut files: Vec<PathBuf> = found
        .into_iter()
        .filter(|p| reroot(root, p).is_file())
        .collect();
    files.sort();
    files
}

/// True if the absolute glob `pattern` matches `path` component by component.
pub fn glob_matches(pattern: &str, path: &Path) -> bool {
    let pat: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let comps: Vec<String> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    pat.len() == comps.len()
        && pat
            .iter()
            .zip(&comps)
            .all(|(p, c)| wildmatch(p.as_bytes(), c.as_bytes()))
}

/// Shell-style match of one path component.
pub fn wildmatch(pat: &[u8], s: &[u8]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| wildmatch(&pat[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && wildmatch(&pat[1..], &s[1..]),
        Some(b'[') => {
            let Some(close) = pat.iter().skip(1).position(|&c| c == b']').map(|p| p + 1) else {
                return s.first() == Some(&b'[') && wildmatch(&pat[1..], &s[1..]);
            };
            let Some(&c) = s.first() else { return false };
            let set = &pat[1..close];
            let (neg, set) = match set.first() {
                Some(b'!') | Some(b'^') => (true, &set[1..]),
                _ => (false, set),
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != neg && wildmatch(&pat[close + 1..], &s[1..])
        }
        Some(&p) => s.first() == Some(&p) && wildmatch(&pat[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_like_sshd() {
        type Case<'a> = (&'a str, Option<(&'a str, &'a [&'a str])>);
        let cases: &[Case] = &[
            ("# comment", None),
            ("   ", None),
            (
                "PasswordAuthentication yes",
                Some(("passwordauthentication", &["yes"])),
            ),
            (
                "passwordauthentication=no",
                Some(("passwordauthentication", &["no"])),
            ),
            ("MaxAuthTries = 3", Some(("maxauthtries", &["3"]))),
            (
                "ChallengeResponseAuthentication yes",
                Some(("kbdinteractiveauthentication", &["yes"])),
            ),
            ("AllowUsers a b # admins", Some(("allowusers", &["a", "b"]))),
            (
                "Banner \"/etc/my banner\"",
                Some(("banner", &["/etc/my banner"])),
            ),
        ];
        for (line, want) in cases {
            let got = split_line(line);
            let want = want.map(|(k, a)| {
                (
                    k.to_string(),
                    a.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                )
            });
            assert_eq!(got, want, "{line}");
        }
    }

    #[test]
    fn globs_match_like_fnmatch() {
        let cases = [
            ("*.conf", "50-cloud-init.conf", true),
            ("*.conf", "x.conf.bak", false),
            ("0?-*", "00-ravelin", true),
            ("[0-4]*", "50-x", false),
            ("[!5]*", "40-x", true),
            ("*", "", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(wildmatch(p.as_bytes(), s.as_bytes()), want, "{p} {s}");
        }
    }

    #[test]
    fn first_value_wins_and_match_blocks_are_separate_contexts() {
        let text = "PasswordAuthentication no\nPasswordAuthentication yes\nMatch User backup\n  PasswordAuthentication yes\n  PasswordAuthentication no\nMatch all\nMaxAuthTries 2\n";
        let c = SshdConfig::parse_str(Path::new("/"), Path::new("/etc/ssh/sshd_config"), text);
        let g = c.global("passwordauthentication").unwrap();
        assert_eq!((g.value.as_str(), g.line), ("no", 1));
        let m = c.in_matches("passwordauthentication");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0.criteria, "User backup");
        assert_eq!((m[0].1.value.as_str(), m[0].1.line), ("yes", 4));
        assert!(c.global("maxauthtries").is_none());
        assert_eq!(c.in_matches("maxauthtries")[0].0.criteria, "all");
    }
}
