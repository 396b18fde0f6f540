//! A journal record (`MESSAGE`, `SYSLOG_IDENTIFIER`, `_SYSTEMD_UNIT`, `__REALTIME_TIMESTAMP`)
//! built from arbitrary bytes, through the sshd matcher's `match_body`.
//!
//! Input layout: byte 0 holds flags (bit 0: identifier present, bit 1: unit present, bit 2:
//! timestamp present); if bit 2, the next 8 bytes are the timestamp (little-endian µs); the
//! rest is split at `0xFF` bytes (never valid UTF-8, so no loss) into message, identifier and
//! unit, each decoded lossily.
//!
//! Checks: no panic; a match's address is a whole address token of the message and its user
//! a slice of it; a record from a program the rule set does not cover never matches.
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
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut realtime_us = None;
    if flags & 4 != 0 {
        let Some((ts, r)) = rest.split_first_chunk::<8>() else {
            return;
        };
        realtime_us = Some(u64::from_le_bytes(*ts));
        rest = r;
    }
    let mut parts = rest.splitn(3, |&b| b == 0xFF);
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or(&[])).into_owned();
    let message = text(parts.next());
    let identifier = text(parts.next());
    let unit = text(parts.next());
    let identifier = (flags & 1 != 0).then_some(identifier);
    let unit = (flags & 2 != 0).then_some(unit);

    let covered = match &identifier {
        Some(id) => matches!(id.as_str(), "sshd" | "sshd-session" | "sshd-auth"),
        None => unit.is_some(), // the unit rules are the matcher's; not re-derived here
    };
    let body = RecordBody::Journal {
        message,
        identifier,
        unit,
        realtime_us,
    };
    let out = MATCHER.match_body(&body, common::now());
    let RecordBody::Journal { message, .. } = &body else {
        unreachable!()
    };
    match out {
        Outcome::Matched(m) => {
            assert!(
                covered,
                "matched a record from an uncovered program: {body:?}"
            );
            assert!(
                common::addr_is_a_token_of(message, m.addr),
                "matched address {} is not spelled out in the message {message:?}",
                m.addr
            );
            if let Some(u) = m.user {
                assert!(
                    common::is_subslice(message, u),
                    "user {u:?} is not from the message"
                );
            }
        }
        Outcome::Unmatched { relevant } => {
            assert!(
                covered || !relevant,
                "uncovered record reported relevant: {body:?}"
            );
        }
    }
});
