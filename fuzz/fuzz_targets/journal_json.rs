//! One stdout line of `journalctl -o json` (any bytes) through the journal source's parser
//! (`source::journal::fuzz_parse_line`, a hidden wrapper of the private `parse_entry`), and
//! whatever record it yields through the sshd matcher, as the daemon does.
//!
//! Checks: no panic; the bounds the source promises hold: text fields are at most
//! `MAX_LINE` bytes, a cursor is kept only if printable ASCII of at most 1024 bytes.
#![no_main]

#[path = "../common/mod.rs"]
mod common;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ravelin::event::RecordBody;
use ravelin::matcher::{Matcher, Outcome};
use ravelin::source::MAX_LINE;
use ravelin::source::journal::{MAX_JSON_LINE, fuzz_parse_line};

static MATCHER: LazyLock<Matcher> =
    LazyLock::new(|| Matcher::new(&["sshd".into()]).expect("sshd is a built-in rule set"));

fuzz_target!(|data: &[u8]| {
    // The reader never hands over more than this, newline excluded.
    if data.len() > MAX_JSON_LINE {
        return;
    }
    let Some((body, cursor)) = fuzz_parse_line(data) else {
        return;
    };
    if let Some(c) = &cursor {
        assert!(
            !c.is_empty() && c.len() <= 1024 && c.bytes().all(|b| b.is_ascii_graphic()),
            "unsafe cursor kept: {c:?}"
        );
    }
    let Some(body) = body else { return };
    let RecordBody::Journal {
        message,
        identifier,
        unit,
        ..
    } = &body
    else {
        panic!("the journal source produced a non-journal body: {body:?}");
    };
    for f in [Some(message), identifier.as_ref(), unit.as_ref()]
        .into_iter()
        .flatten()
    {
        assert!(
            f.len() <= MAX_LINE,
            "field of {} bytes exceeds MAX_LINE",
            f.len()
        );
    }
    if let Outcome::Matched(m) = MATCHER.match_body(&body, common::now()) {
        assert!(
            common::addr_is_a_token_of(message, m.addr),
            "matched address {} is not spelled out in the message {message:?}",
            m.addr
        );
    }
});
