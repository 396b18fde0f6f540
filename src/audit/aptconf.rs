//! APT configuration, merged as apt merges it, to tell whether security updates install
//! themselves.
//!
//! Lynis gives full points when unattended-upgrades is installed, even if
//! `APT::Periodic::Unattended-Upgrade "0"` turns it off. What counts is the merged value: on a
//! live system we read `apt-config dump` (apt's own merge); under `--root` we merge
//! `/etc/apt/apt.conf` and `/etc/apt/apt.conf.d/*` in lexical order ourselves. One parser
//! reads both forms: `A::B "v";` (later wins), nested `A { B "v"; };`, lists
//! `A { "x"; "y"; };` and the dump's `A:: "x";` (appended), `#clear A;`, and `//`, `/* */`
//! and `#` comments. Keys compare case-insensitively, as in apt.

use std::collections::BTreeMap;
use std::path::Path;

/// Merged APT settings.
#[derive(Debug, Clone, Default)]
pub struct AptConf {
    values: BTreeMap<String, Vec<String>>,
    set_at: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String, usize),
    Str(String, usize),
    Open,
    Close,
    Semi,
}

impl AptConf {
    /// Merges one more file (or dump) into these settings; `name` is used for `file:line`.
    pub fn merge(&mut self, name: &str, text: &str) {
        let toks = tokenize(text);
        let mut scope: Vec<String> = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                Tok::Close => {
                    scope.pop();
                    i += 1;
                }
                Tok::Semi | Tok::Open => i += 1,
                Tok::Word(w, _) if w.eq_ignore_ascii_case("#clear") => {
                    if let Some(Tok::Word(k, _)) = toks.get(i + 1) {
                        let key = full_key(&scope, k);
                        let key = key.trim_end_matches("::").to_string();
                        self.values
                            .retain(|x, _| x != &key && !x.starts_with(&format!("{key}::")));
                    }
                    i += 2;
                }
                Tok::Word(w, _) if w.starts_with('#') => {
                    // #include and unknown directives: skip the statement.
                    while i < toks.len() && toks[i] != Tok::Semi {
                        i += 1;
                    }
                }
                Tok::Word(k, line) => match toks.get(i + 1) {
                    Some(Tok::Open) => {
                        scope.push(k.clone());
                        i += 2;
                    }
                    Some(Tok::Str(v, _)) => {
                        let key = full_key(&scope, k);
                        if let Some(list) = key.strip_suffix("::") {
                            let list = list.to_string();
                            if !v.is_empty() {
                                self.values.entry(list).or_default().push(v.clone());
                            }
                        } else {
                            // An empty value is a list's parent node in a dump.
                            let vals = if v.is_empty() {
                                vec![]
                            } else {
                                vec![v.clone()]
                            };
                            self.values.insert(key.clone(), vals);
                            self.set_at.insert(key, format!("{name}:{line}"));
                        }
                        i += 2;
                    }
                    _ => i += 1,
                },
                Tok::Str(v, _) => {
                    let key = scope.join("::").to_ascii_lowercase();
                    self.values.entry(key).or_default().push(v.clone());
                    i += 1;
                }
            }
        }
    }

    /// Reads `/etc/apt/apt.conf` and `/etc/apt/apt.conf.d/*` under `root`, as apt does
    /// (files with a `.`-suffix other than `.conf` or with odd characters are skipped).
    pub fn from_root(root: &Path) -> (Self, Vec<String>) {
        let mut c = AptConf::default();
        let mut read = Vec::new();
        let main = root.join("etc/apt/apt.conf");
        if let Ok(t) = std::fs::read_to_string(&main) {
            c.merge("/etc/apt/apt.conf", &t);
            read.push("/etc/apt/apt.conf".to_string());
        }
        let dir = root.join("etc/apt/apt.conf.d");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| {
                        n.chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
                            && (!n.contains('.') || n.ends_with(".conf"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for n in names {
            if let Ok(t) = std::fs::read_to_string(dir.join(&n)) {
                let shown = format!("/etc/apt/apt.conf.d/{n}");
                c.merge(&shown, &t);
                read.push(shown);
            }
        }
        (c, read)
    }

    /// The scalar value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(&key.to_ascii_lowercase())
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// The list under `key`.
    pub fn list(&self, key: &str) -> &[String] {
        self.values
            .get(&key.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Where the scalar `key` was last set (`file:line`), when read from files.
    pub fn location(&self, key: &str) -> Option<&str> {
        self.set_at
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
    }
}

fn full_key(scope: &[String], k: &str) -> String {
    let mut s = scope.join("::");
    if !s.is_empty() {
        s.push_str("::");
    }
    s.push_str(k);
    s.to_ascii_lowercase()
}

fn tokenize(text: &str) -> Vec<Tok> {
    let b: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut at_line_start = true;
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            at_line_start = true;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let starts_line = at_line_start;
        at_line_start = false;
        if c == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && b.get(i + 1) == Some(&'*') {
            i += 2;
            while i < b.len() && !(b[i] == '*' && b.get(i + 1) == Some(&'/')) {
                if b[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 2;
            continue;
        }
        if c == '#' && starts_line {
            let rest: String = b[i..].iter().take(8).collect();
            if !(rest.starts_with("#clear") || rest.starts_with("#include")) {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
                continue;
            }
        }
        match c {
            '{' => {
                out.push(Tok::Open);
                i += 1;
            }
            '}' => {
                out.push(Tok::Close);
                i += 1;
            }
            ';' => {
                out.push(Tok::Semi);
                i += 1;
            }
            '"' => {
                let start = line;
                let mut s = String::new();
                i += 1;
                while i < b.len() && b[i] != '"' {
                    if b[i] == '\n' {
                        line += 1;
                    }
                    s.push(b[i]);
                    i += 1;
                }
                i += 1;
                out.push(Tok::Str(s, start));
            }
            _ => {
                let mut s = String::new();
                while i < b.len() && !b[i].is_whitespace() && !"{};\"".contains(b[i]) {
                    s.push(b[i]);
                    i += 1;
                }
                out.push(Tok::Word(s, line));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_dump_merge_like_apt() {
        let mut c = AptConf::default();
        c.merge(
            "20auto-upgrades",
            "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n",
        );
        c.merge(
            "50unattended-upgrades",
            "// comment\nUnattended-Upgrade::Origins-Pattern {\n  \"origin=Debian,codename=${distro_codename},label=Debian\";\n  /* x */ \"origin=Debian,codename=${distro_codename}-security,label=Debian-Security\";\n};\n",
        );
        c.merge(
            "99off",
            "APT { Periodic { Unattended-Upgrade \"0\"; }; };\n",
        );
        assert_eq!(c.get("apt::periodic::unattended-upgrade"), Some("0"));
        assert_eq!(
            c.location("APT::Periodic::Unattended-Upgrade"),
            Some("99off:1")
        );
        assert_eq!(c.list("Unattended-Upgrade::Origins-Pattern").len(), 2);

        let mut d = AptConf::default();
        d.merge(
            "apt-config dump",
            "APT::Periodic::Unattended-Upgrade \"1\";\nUnattended-Upgrade::Origins-Pattern \"\";\nUnattended-Upgrade::Origins-Pattern:: \"origin=Debian,label=Debian-Security\";\n",
        );
        assert_eq!(d.get("APT::Periodic::Unattended-Upgrade"), Some("1"));
        assert_eq!(
            d.list("Unattended-Upgrade::Origins-Pattern"),
            ["origin=Debian,label=Debian-Security"]
        );
    }
}
