//! Checks shared by the fuzz targets (included with `#[path]`; not a target itself).
#![allow(dead_code)] // each target uses a subset

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ravelin::event::normalize_addr;

/// The fixed "now" the matcher targets use (2026-11-21T06:30:00Z, as the unit tests do). The
/// clock is not attacker input; the year inference around it is exercised by the stamps.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_242_600)
}

fn is_addr_char(c: u8) -> bool {
    c.is_ascii_hexdigit() || c == b':' || c == b'.'
}

/// The matcher must never invent an address: `addr` must be spelled out in `text` as a whole
/// token, i.e. a maximal run of address characters (`[0-9A-Fa-f:.]`), or such a run less one
/// trailing `:` (the pre-7.x `from 1.2.3.4: 11: Bye`), that parses as `addr` or as its
/// v4-mapped IPv6 form.
///
/// "Verbatim" is checked by parsing rather than by `text.contains(addr.to_string())` because
/// IPv6 has many spellings of one address (`2001:DB8::0001`, `0:0:0:0:0:0:0:1`,
/// `::ffff:0102:0304`), and a plain substring test would also accept `1.2.3.4` inside
/// `11.2.3.45`, which is exactly the kind of invention we want to catch.
pub fn addr_is_a_token_of(text: &str, addr: IpAddr) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !is_addr_char(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_addr_char(b[i]) {
            i += 1;
        }
        let run = &text[start..i];
        let candidates = [Some(run), run.strip_suffix(':')];
        for c in candidates.into_iter().flatten() {
            if c.parse::<IpAddr>().is_ok_and(|a| normalize_addr(a) == addr) {
                return true;
            }
        }
    }
    false
}

/// `part` must borrow from `whole` (a user name the matcher reports is a slice of the input,
/// never made up).
pub fn is_subslice(whole: &str, part: &str) -> bool {
    let w = whole.as_bytes().as_ptr_range();
    let p = part.as_bytes().as_ptr_range();
    w.start <= p.start && p.end <= w.end
}
