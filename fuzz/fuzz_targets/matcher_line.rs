//! A log line (any bytes, decoded lossily as the file source does) through the sshd matcher.
//!
//! Checks: no panic, and a match never invents data: its address is a whole address token of
//! the line (see `common::addr_is_a_token_of`), its user name is a slice of the line, and
//! `match_body(Line)` agrees with `match_line`.
#![no_main]

#[path = "../common/mod.rs"]
mod common;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ravelin::event::RecordBody;
use ravelin::matcher::{Matcher, Outcome};

static MATCHER: LazyLock<Matcher> =
    LazyLock::new(|| Matcher::new(&["sshd".into()]).expect("sshd is a built-in rule set"));

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let now = common::now();
    let out = MATCHER.match_line(&line, now);
    if let Outcome::Matched(m) = out {
        assert!(
            common::addr_is_a_token_of(&line, m.addr),
            "matched address {} is not spelled out in the line {line:?}",
            m.addr
        );
        if let Some(u) = m.user {
            assert!(
                common::is_subslice(&line, u),
                "user {u:?} is not from the line"
            );
        }
    }
    let body = RecordBody::Line(line.clone().into_owned());
    assert_eq!(
        MATCHER.match_body(&body, now),
        out,
        "match_body(Line) != match_line"
    );
});
