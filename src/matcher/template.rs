//! The rule template engine: a tiny, anchored, typed pattern language for one message.
//!
//! A [`Rule`] is `lead`, `pre`, a [`Slot`], then `tail`:
//!
//! * `lead` is a literal at the very start of the message; the matcher finds it for all rules
//!   at once with one anchored Aho-Corasick automaton, so a line is tried against only the few
//!   rules that share its leading words.
//! * `pre` steps are matched forward from the lead (server-written words such as `for`,
//!   `invalid user `).
//! * the [`Slot`] says where the address is. Either right after `pre` (fixed position, nothing
//!   the client wrote comes before it), or after a stretch of client-controlled text (a user
//!   name, a version string) ending in a separator such as ` from `. In the second case every
//!   occurrence of the separator is a *candidate*, and a candidate only counts if the text after
//!   its address satisfies the whole server-written `tail`. This is the "greedy user, address
//!   pinned by the fixed suffix" rule, made explicit: if the client text itself contains a fake
//!   `from 1.2.3.4 port 22 ssh2`, that candidate fails because what follows it is the real
//!   ` from REAL port N ssh2`, not the end of the line. If two candidates both satisfy the tail
//!   the line is ambiguous (client text on both sides of the address) and we refuse to match:
//!   "the real address or no match, never the injected one".
//! * `tail` steps are matched forward to the end of the message; every rule is anchored at
//!   both ends.
//!
//! Address fields are a run of `[0-9A-Fa-f:.]` that must parse with std's `IpAddr` parser, so a
//! host name (reverse DNS) is never an address. There is no regex and no backtracking beyond
//! the candidate list, so the cost is linear in the line for a fixed rule set.

use std::net::IpAddr;

use crate::event::normalize_addr;

/// One step of a template. Steps advance a byte position in the message or fail.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// Exactly this text.
    Lit(&'static str),
    /// This text, if present.
    OptLit(&'static str),
    /// One of these texts (first that matches).
    OneOf(&'static [&'static str]),
    /// One or more bytes that are not a space.
    Token,
    /// Zero or more bytes that are not a space.
    OptToken,
    /// One or more bytes that are not a space, the last of which are this text.
    TokenEndingWith(&'static str),
    /// Zero or more spaces.
    OptSpaces,
    /// ` port N`, required (makes the candidate "strong").
    Port,
    /// ` port N`, if present (its presence makes a candidate "strong", see [`Slot::Greedy`]).
    OptPort,
    /// ` ssh2` / ` ssh1` / ` ssh`, if present.
    OptProto,
    /// Up to three of ` port N`, ` on TOKEN`, ` [preauth]`, then optional trailing whitespace
    /// and the end (the common OpenSSH suffix). Terminal.
    Suffix,
    /// The end, ` [preauth]` then the end, or `: ` followed by anything (OpenSSH's auth info,
    /// e.g. a key fingerprint). Terminal.
    Info,
    /// PAM's trailing `  user=NAME` (captured as the user) and/or ` [preauth]`, or the end.
    /// Terminal.
    PamUser,
    /// Anything up to the end whose trimmed text ends with one of these. Terminal.
    RestEndsWith(&'static [&'static str]),
    /// Anything up to the end. Terminal.
    Rest,
}

/// Where the address sits in a rule.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    /// The address follows `pre` directly.
    Addr,
    /// Client-controlled text, then `sep`, then the address. `user`: report the text as the
    /// user name. Every occurrence of `sep` is a candidate; the winner is the only candidate
    /// whose tail matches, preferring candidates that carried a ` port N` (OpenSSH 7+ always
    /// writes one). Two or more winners: no match.
    Greedy {
        /// The separator before the address, e.g. `" from "`.
        sep: &'static str,
        /// Whether the text before `sep` is the user name.
        user: bool,
    },
}

/// One built-in rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    /// Stable id, e.g. `sshd.failed-password`.
    pub id: &'static str,
    /// Leading literal of the message (dispatch key).
    pub lead: &'static str,
    /// Steps between the lead and the slot.
    pub pre: &'static [Step],
    /// Where the address is.
    pub slot: Slot,
    /// Steps after the address, to the end of the message.
    pub tail: &'static [Step],
}

/// What a rule extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extract<'a> {
    pub addr: IpAddr,
    pub user: Option<&'a str>,
}

/// The longest address text we try to parse (a full IPv6 with embedded IPv4 is 45 bytes).
const MAX_ADDR: usize = 45;

/// Per-candidate state collected by the tail.
#[derive(Default)]
struct TailState<'a> {
    strong: bool,
    user: Option<&'a str>,
}

impl Rule {
    /// Match `msg`, whose first `start` bytes are this rule's lead (tests; the matcher uses
    /// [`Rule::apply_with`]).
    #[cfg(test)]
    pub(crate) fn apply<'a>(&self, msg: &'a str, start: usize) -> Option<Extract<'a>> {
        let finder = match self.slot {
            Slot::Greedy { sep, .. } => Some(memchr::memmem::Finder::new(sep.as_bytes())),
            Slot::Addr => None,
        };
        self.apply_with(msg, start, finder.as_ref())
    }

    /// `Rule::apply` with the separator's searcher built once by the caller (the matcher
    /// keeps one per rule; building it per line showed up in profiles).
    pub(crate) fn apply_with<'a>(
        &self,
        msg: &'a str,
        start: usize,
        finder: Option<&memchr::memmem::Finder<'static>>,
    ) -> Option<Extract<'a>> {
        let mut st = TailState::default();
        let pos = run(self.pre, msg, start, &mut st)?;
        match self.slot {
            Slot::Addr => {
                let (addr, p) = parse_addr(msg, pos)?;
                let mut st = TailState::default();
                if run(self.tail, msg, p, &mut st)? != msg.len() {
                    return None;
                }
                Some(Extract {
                    addr,
                    user: st.user,
                })
            }
            Slot::Greedy { sep, user } => {
                let mut best: Option<Extract<'a>> = None;
                let mut best_strong = false;
                let mut ambiguous = false;
                let hay = &msg.as_bytes()[pos..];
                let owned;
                let finder = match finder {
                    Some(f) => f,
                    None => {
                        owned = memchr::memmem::Finder::new(sep.as_bytes());
                        &owned
                    }
                };
                let mut from = 0;
                while let Some(i) = finder.find(&hay[from..]) {
                    let at = pos + from + i;
                    from += i + 1;
                    let Some((addr, p)) = parse_addr(msg, at + sep.len()) else {
                        continue;
                    };
                    let mut st = TailState::default();
                    if run(self.tail, msg, p, &mut st) != Some(msg.len()) {
                        continue;
                    }
                    let ex = Extract {
                        addr,
                        user: if user { Some(&msg[pos..at]) } else { st.user },
                    };
                    match (best.is_some(), best_strong, st.strong) {
                        (false, _, s) => {
                            best = Some(ex);
                            best_strong = s;
                        }
                        (true, false, true) => {
                            best = Some(ex);
                            best_strong = true;
                            ambiguous = false;
                        }
                        (true, true, false) => {}
                        (true, _, _) => ambiguous = true,
                    }
                }
                if ambiguous { None } else { best }
            }
        }
    }
}

/// Run `steps` from `pos`; return the position after them. Terminal steps consume to the end;
/// callers require the tail to end exactly at the end of the message (anchoring).
fn run<'a>(steps: &[Step], msg: &'a str, mut pos: usize, st: &mut TailState<'a>) -> Option<usize> {
    let b = msg.as_bytes();
    for step in steps {
        pos = match *step {
            Step::Lit(s) => lit(b, pos, s)?,
            Step::OptLit(s) => lit(b, pos, s).unwrap_or(pos),
            Step::OneOf(list) => list.iter().find_map(|s| lit(b, pos, s))?,
            Step::Token => {
                let e = token_end(b, pos);
                if e == pos {
                    return None;
                }
                e
            }
            Step::OptToken => token_end(b, pos),
            Step::TokenEndingWith(s) => {
                let e = token_end(b, pos);
                if e == pos || !msg[pos..e].ends_with(s) {
                    return None;
                }
                e
            }
            Step::OptSpaces => spaces_end(b, pos),
            Step::Port => {
                st.strong = true;
                port(b, pos)?
            }
            Step::OptPort => match port(b, pos) {
                Some(p) => {
                    st.strong = true;
                    p
                }
                None => pos,
            },
            Step::OptProto => match lit(b, pos, " ssh") {
                Some(p) if b.get(p).is_some_and(u8::is_ascii_digit) => p + 1,
                Some(p) => p,
                None => pos,
            },
            Step::Suffix => {
                for _ in 0..3 {
                    if let Some(p) = port(b, pos) {
                        st.strong = true;
                        pos = p;
                    } else if let Some(p) = lit(b, pos, " on ") {
                        let e = token_end(b, p);
                        if e == p {
                            return None;
                        }
                        pos = e;
                    } else if let Some(p) = lit(b, pos, " [preauth]") {
                        pos = p;
                    } else {
                        break;
                    }
                }
                end(b, pos)?
            }
            Step::Info => {
                if let Some(p) = lit(b, pos, ": ") {
                    b.len().max(p)
                } else {
                    let p = lit(b, pos, " [preauth]").unwrap_or(pos);
                    end(b, p)?
                }
            }
            Step::PamUser => {
                let p = spaces_end(b, pos);
                if p == b.len() {
                    p
                } else if p == pos {
                    return None;
                } else if let Some(u) = lit(b, p, "user=") {
                    let rest = msg[u..].trim_end();
                    let rest = rest.strip_suffix(" [preauth]").unwrap_or(rest);
                    st.user = Some(rest);
                    b.len()
                } else {
                    end(b, lit(b, p, "[preauth]")?)?
                }
            }
            Step::RestEndsWith(list) => {
                let rest = msg[pos..].trim_end();
                if !list.iter().any(|s| rest.ends_with(s)) {
                    return None;
                }
                b.len()
            }
            Step::Rest => b.len(),
        };
    }
    Some(pos)
}

fn lit(b: &[u8], pos: usize, s: &str) -> Option<usize> {
    let end = pos.checked_add(s.len())?;
    (b.get(pos..end)? == s.as_bytes()).then_some(end)
}

fn token_end(b: &[u8], pos: usize) -> usize {
    let rest = b.get(pos..).unwrap_or(&[]);
    pos + memchr::memchr(b' ', rest).unwrap_or(rest.len())
}

fn spaces_end(b: &[u8], mut pos: usize) -> usize {
    while b.get(pos) == Some(&b' ') {
        pos += 1;
    }
    pos
}

fn num(b: &[u8], pos: usize) -> Option<usize> {
    let mut p = pos;
    while b.get(p).is_some_and(u8::is_ascii_digit) {
        p += 1;
    }
    (p > pos && p - pos <= 10).then_some(p)
}

fn port(b: &[u8], pos: usize) -> Option<usize> {
    num(b, lit(b, pos, " port ")?)
}

/// Optional trailing whitespace, then the end.
fn end(b: &[u8], pos: usize) -> Option<usize> {
    let rest = b.get(pos..)?;
    rest.iter().all(u8::is_ascii_whitespace).then_some(b.len())
}

/// Parse an address at `pos`: the longest run of address characters, which must parse as an
/// IP (a trailing `:`, as in the pre-7.x `from 1.2.3.4: 11: Bye`, is left to the tail).
/// Returns the normalised address and the position after it.
pub(crate) fn parse_addr(msg: &str, pos: usize) -> Option<(IpAddr, usize)> {
    let b = msg.as_bytes();
    let rest = b.get(pos..)?;
    let len = rest
        .iter()
        .take(MAX_ADDR + 2)
        .position(|c| !(c.is_ascii_hexdigit() || *c == b':' || *c == b'.'))
        .unwrap_or(rest.len().min(MAX_ADDR + 2));
    if len == 0 || len > MAX_ADDR + 1 {
        return None;
    }
    let text = &msg[pos..pos + len];
    if let Ok(a) = text.parse::<IpAddr>() {
        return Some((normalize_addr(a), pos + len));
    }
    let text = text.strip_suffix(':')?;
    let a = text.parse::<IpAddr>().ok()?;
    Some((normalize_addr(a), pos + len - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        // (text, expected address or "-", bytes consumed)
        let cases: &[(&str, &str, usize)] = &[
            ("1.2.3.4", "1.2.3.4", 7),
            ("1.2.3.4 port 22", "1.2.3.4", 7),
            ("1.2.3.4: 11: Bye", "1.2.3.4", 7),
            ("2001:db8::1: 11: Bye", "2001:db8::1", 11),
            ("::ffff:1.2.3.4 port 1", "1.2.3.4", 14),
            ("::1)", "::1", 3),
            ("1.2.3.4.example.com", "-", 0),
            ("example.com", "-", 0),
            ("192.030.0.6", "-", 0),
            ("1.2.3", "-", 0),
            ("", "-", 0),
            ("deadbeef", "-", 0),
            ("1.2.3.4abc", "-", 0),
            ("1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa", "-", 0),
        ];
        for &(text, want, used) in cases {
            match parse_addr(text, 0) {
                Some((a, p)) => {
                    assert_eq!(a.to_string(), want, "{text}");
                    assert_eq!(p, used, "{text}");
                }
                None => assert_eq!(want, "-", "{text}"),
            }
        }
    }

    const FAILED: Rule = Rule {
        id: "t.failed",
        lead: "Failed ",
        pre: &[
            Step::Token,
            Step::Lit(" for "),
            Step::OptLit("invalid user "),
        ],
        slot: Slot::Greedy {
            sep: " from ",
            user: true,
        },
        tail: &[Step::OptPort, Step::OptProto, Step::Info],
    };

    #[test]
    fn greedy_slot_pins_address_by_tail() {
        // (message, expected "addr user" or "-")
        let cases: &[(&str, &str)] = &[
            (
                "Failed password for root from 1.2.3.4 port 22 ssh2",
                "1.2.3.4 root",
            ),
            (
                "Failed password for a from 9.9.9.9 from 1.2.3.4 port 22 ssh2",
                "1.2.3.4 a from 9.9.9.9",
            ),
            (
                "Failed password for invalid user x from 9.9.9.9 port 1 ssh2 from 1.2.3.4 port 2 ssh2",
                "1.2.3.4 x from 9.9.9.9 port 1 ssh2",
            ),
            (
                "Failed password for u from 1.2.3.4 port 2 ssh1: ruser from 9.9.9.9",
                "1.2.3.4 u",
            ),
            // client text on both sides of an address: refuse rather than guess
            (
                "Failed password for u from 1.2.3.4 port 2 ssh2: from 9.9.9.9 port 3 ssh2",
                "-",
            ),
            ("Failed password for u from host.example port 2 ssh2", "-"),
            (
                "Failed password for u from 1.2.3.4 port 2 ssh2 trailing",
                "-",
            ),
            ("Failed password for u from 1.2.3.4", "1.2.3.4 u"),
            ("Failed password for  from 1.2.3.4 port 1 ssh2", "1.2.3.4 "),
        ];
        for &(msg, want) in cases {
            let got = FAILED
                .apply(msg, FAILED.lead.len())
                .map_or("-".to_string(), |e| {
                    format!("{} {}", e.addr, e.user.unwrap_or("<none>"))
                });
            assert_eq!(got, want, "{msg}");
        }
    }

    #[test]
    fn steps_never_panic_on_short_input() {
        let all: &[Step] = &[
            Step::Lit("x"),
            Step::OptLit("y"),
            Step::OneOf(&["a", "b"]),
            Step::Token,
            Step::OptToken,
            Step::OptSpaces,
            Step::Port,
            Step::OptPort,
            Step::OptProto,
        ];
        for s in ["", "x", "xa", "xa 1", " port ", " port 9", " ssh", " on"] {
            for i in 0..=s.len() + 2 {
                let mut st = TailState::default();
                let _ = run(all, s, i.min(s.len()), &mut st);
                for t in [Step::Suffix, Step::Info, Step::PamUser, Step::Rest] {
                    let mut st = TailState::default();
                    let _ = run(&[t], s, i.min(s.len()), &mut st);
                }
            }
        }
    }
}
