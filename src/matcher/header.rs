//! The syslog header: event time, program name and message of one log line.
//!
//! The header is written by the syslog daemon, not by the client, so it is the one part of a
//! line we may trust for *where the message starts* and *which program wrote it*. It is parsed
//! by hand (no regex) because it is on the hot path of every line, including the ~40% of lines
//! from other programs that we reject after reading only the tag.
//!
//! Accepted shapes:
//!
//! * RFC 3164 (`Nov 21 06:13:45 host sshd[123]: msg`, host optional, `<PRI>` optional). The
//!   stamp has no year and no zone: the zone is taken to be UTC (document it in your jail if
//!   the host logs in local time) and the year is the one that puts the stamp no more than one
//!   day after `now` (so a December line read on 1 January lands in the previous year).
//! * ISO 8601 / RFC 3339 (`2026-11-21T06:13:45.123456+01:00 host sshd[1]: msg`), rsyslog's
//!   high-precision format and Debian 12's default when a file is written at all.
//! * RFC 5424 (`<38>1 2019-07-08T17:40:16.95-04:00 host sshd 57915 - - msg`, with structured
//!   data skipped).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the header told us about one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header<'a> {
    /// Event time, if the stamp was valid.
    pub time: Option<SystemTime>,
    /// Program name from the tag, without `[pid]` (e.g. `sshd-session`); empty if no tag.
    pub program: &'a str,
    /// The message after the tag.
    pub message: &'a str,
}

/// Parse a syslog line's header. `None` if the line has no recognisable timestamp.
pub(crate) fn parse(line: &str, now: SystemTime) -> Option<Header<'_>> {
    let b = line.as_bytes();
    let mut pos = 0;
    // Optional `<PRI>`.
    if b.first() == Some(&b'<') {
        let close = b.iter().take(6).position(|&c| c == b'>')?;
        if close < 2 || !b[1..close].iter().all(u8::is_ascii_digit) {
            return None;
        }
        pos = close + 1;
        if b.get(pos) == Some(&b'1') && b.get(pos + 1) == Some(&b' ') {
            return parse_5424(line, pos + 2);
        }
    }
    let (time, after) = if b.get(pos).is_some_and(u8::is_ascii_digit) {
        let (t, p) = parse_iso(b, pos)?;
        (t, p)
    } else {
        parse_3164_stamp(b, pos, now)?
    };
    if b.get(after) != Some(&b' ') {
        return None;
    }
    let (program, message) = split_tag(&line[after + 1..]);
    Some(Header {
        time,
        program,
        message,
    })
}

/// After the stamp: `[host ]tag: message`. The tag is the first token ending in `:`, looked for
/// in the first two tokens only (a host name never ends in `:`).
fn split_tag(rest: &str) -> (&str, &str) {
    let first_end = memchr::memchr(b' ', rest.as_bytes()).unwrap_or(rest.len());
    let (tag, msg_start) = if rest[..first_end].ends_with(':') {
        (&rest[..first_end], first_end)
    } else {
        let second = &rest[(first_end + 1).min(rest.len())..];
        let end = memchr::memchr(b' ', second.as_bytes()).unwrap_or(second.len());
        if !second[..end].ends_with(':') {
            return ("", rest);
        }
        let start = rest.len() - second.len();
        (&second[..end], start + end)
    };
    let tag = &tag[..tag.len() - 1];
    let program = match memchr::memchr(b'[', tag.as_bytes()) {
        Some(i) if tag.ends_with(']') => &tag[..i],
        Some(_) => "",
        None => tag,
    };
    let message = rest.get(msg_start + 1..).unwrap_or("");
    (program, message)
}

fn parse_5424(line: &str, mut pos: usize) -> Option<Header<'_>> {
    let b = line.as_bytes();
    let time = if b.get(pos) == Some(&b'-') {
        pos += 1;
        None
    } else {
        let (t, p) = parse_iso(b, pos)?;
        pos = p;
        t
    };
    // HOSTNAME APP-NAME PROCID MSGID
    let mut fields = [""; 4];
    for f in &mut fields {
        if b.get(pos) != Some(&b' ') {
            return None;
        }
        pos += 1;
        let end = memchr::memchr(b' ', &b[pos..]).map_or(b.len(), |i| pos + i);
        *f = &line[pos..end];
        pos = end;
    }
    if b.get(pos) != Some(&b' ') {
        return None;
    }
    pos += 1;
    // STRUCTURED-DATA: `-` or one or more `[...]`, honouring quoted values and `\` escapes.
    if b.get(pos) == Some(&b'-') {
        pos += 1;
    } else {
        if b.get(pos) != Some(&b'[') {
            return None;
        }
        while b.get(pos) == Some(&b'[') {
            pos += 1;
            let mut quoted = false;
            loop {
                match *b.get(pos)? {
                    b'\\' => pos += 1,
                    b'"' => quoted = !quoted,
                    b']' if !quoted => break,
                    _ => {}
                }
                pos += 1;
            }
            pos += 1;
        }
    }
    let mut message = line.get(pos..).unwrap_or("");
    message = message.strip_prefix(' ').unwrap_or(message);
    message = message.strip_prefix('\u{feff}').unwrap_or(message);
    let program = if fields[1] == "-" { "" } else { fields[1] };
    Some(Header {
        time,
        program,
        message,
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.frac][Z|±HH:MM]`. Returns the time (None if out of range) and the
/// position after the stamp.
fn parse_iso(b: &[u8], pos: usize) -> Option<(Option<SystemTime>, usize)> {
    let year = digits(b, pos, 4)?;
    let month = after(b, pos + 4, b'-').and_then(|p| digits(b, p, 2))?;
    let day = after(b, pos + 7, b'-').and_then(|p| digits(b, p, 2))?;
    if !matches!(b.get(pos + 10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (h, mi, s) = hms(b, pos + 11)?;
    let mut p = pos + 19;
    let mut nanos: u32 = 0;
    if b.get(p) == Some(&b'.') {
        p += 1;
        let start = p;
        while b.get(p).is_some_and(u8::is_ascii_digit) {
            if p - start < 9 {
                nanos = nanos * 10 + u32::from(b[p] - b'0');
            }
            p += 1;
        }
        if p == start {
            return None;
        }
        for _ in (p - start)..9 {
            nanos *= 10;
        }
    }
    let mut offset: i64 = 0;
    match b.get(p) {
        Some(b'Z' | b'z') => p += 1,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, p + 1, 2)?;
            let om = after(b, p + 3, b':').and_then(|q| digits(b, q, 2))?;
            let off = i64::from(oh * 3600 + om * 60);
            offset = if sign == b'+' { off } else { -off };
            p += 6;
        }
        _ => {}
    }
    let time = civil_secs(i64::from(year), month, day, h, mi, s)
        .map(|t| t - offset)
        .and_then(|t| u64::try_from(t).ok())
        .map(|t| UNIX_EPOCH + Duration::new(t, nanos));
    Some((time, p))
}

/// `Mmm dd hh:mm:ss` (day space- or zero-padded, or a single digit).
fn parse_3164_stamp(b: &[u8], pos: usize, now: SystemTime) -> Option<(Option<SystemTime>, usize)> {
    let month = month_number(b.get(pos..pos + 3)?)?;
    if b.get(pos + 3) != Some(&b' ') {
        return None;
    }
    let mut p = pos + 4;
    if b.get(p) == Some(&b' ') {
        p += 1;
    }
    let start = p;
    let mut day = 0u32;
    while b.get(p).is_some_and(u8::is_ascii_digit) && p - start < 2 {
        day = day * 10 + u32::from(b[p] - b'0');
        p += 1;
    }
    if p == start || b.get(p) != Some(&b' ') {
        return None;
    }
    let (h, mi, s) = hms(b, p + 1)?;
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let year = year_of(now_secs.div_euclid(86_400));
    let time = [year, year - 1]
        .into_iter()
        .filter_map(|y| civil_secs(y, month, day, h, mi, s))
        .find(|&t| t <= now_secs + 86_400)
        .and_then(|t| u64::try_from(t).ok())
        .map(|t| UNIX_EPOCH + Duration::from_secs(t));
    Some((time, p + 9))
}

fn month_number(m: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    MONTHS
        .iter()
        .position(|x| x.as_slice() == m)
        .map(|i| i as u32 + 1)
}

/// `hh:mm:ss` at `p`.
fn hms(b: &[u8], p: usize) -> Option<(u32, u32, u32)> {
    let h = digits(b, p, 2)?;
    let m = after(b, p + 2, b':').and_then(|q| digits(b, q, 2))?;
    let s = after(b, p + 5, b':').and_then(|q| digits(b, q, 2))?;
    Some((h, m, s))
}

fn after(b: &[u8], p: usize, c: u8) -> Option<usize> {
    (b.get(p) == Some(&c)).then_some(p + 1)
}

fn digits(b: &[u8], p: usize, n: usize) -> Option<u32> {
    let s = b.get(p..p + n)?;
    s.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Seconds since the epoch for a civil UTC time, or None if any field is out of range.
fn civil_secs(y: i64, m: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    const DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let dim = DAYS[m as usize - 1] + u32::from(m == 2 && is_leap(y));
    if d == 0 || d > dim {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s))
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm, proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year containing day `z` (days since 1970-01-01). On the hot path for every RFC 3164
/// line, so it estimates and corrects instead of running the full `civil_from_days`.
fn year_of(z: i64) -> i64 {
    let mut y = 1970 + (z * 400).div_euclid(146_097);
    while days_from_civil(y, 1, 1) > z {
        y -= 1;
    }
    while days_from_civil(y + 1, 1, 1) <= z {
        y += 1;
    }
    y
}

/// The inverse of [`days_from_civil`] (the tests check [`year_of`] against it).
#[cfg(test)]
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{rfc3339, unix_secs};

    fn now() -> SystemTime {
        // 2026-11-21T06:30:00Z
        UNIX_EPOCH + Duration::from_secs(1_795_242_600)
    }

    #[test]
    fn civil_round_trip() {
        for z in [-1_000_000i64, -1, 0, 1, 11_016, 20_413, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        for z in (-800_000i64..800_000).step_by(97).chain(20_000..21_000) {
            assert_eq!(year_of(z), civil_from_days(z).0, "day {z}");
        }
        assert_eq!(rfc3339(now()), "2026-11-21T06:30:00Z");
    }

    #[test]
    fn headers() {
        // (line, time as RFC 3339 or "-", program, message)
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "Nov 21 06:13:45 host sshd[123]: hello",
                "2026-11-21T06:13:45Z",
                "sshd",
                "hello",
            ),
            (
                "Nov 22 06:13:45 host sshd[1]: x",
                "2026-11-22T06:13:45Z",
                "sshd",
                "x",
            ),
            (
                "Nov 23 06:13:45 host sshd[1]: x",
                "2025-11-23T06:13:45Z",
                "sshd",
                "x",
            ),
            (
                "Dec 31 23:59:59 host sshd[1]: x",
                "2025-12-31T23:59:59Z",
                "sshd",
                "x",
            ),
            (
                "Jan  5 01:31:41 www sshd[1643]: m",
                "2026-01-05T01:31:41Z",
                "sshd",
                "m",
            ),
            (
                "Feb 7 16:01:07 linux sshd[5106]: m",
                "2026-02-07T16:01:07Z",
                "sshd",
                "m",
            ),
            (
                "Jul 05 18:22:44 mercury sshd[4669]: m",
                "2026-07-05T18:22:44Z",
                "sshd",
                "m",
            ),
            (
                "Nov 23 21:50:19 sshd[8148]: no host",
                "2025-11-23T21:50:19Z",
                "sshd",
                "no host",
            ),
            (
                "Nov 21 06:00:00 h sshd-session[9]: s",
                "2026-11-21T06:00:00Z",
                "sshd-session",
                "s",
            ),
            (
                "Nov 21 06:00:00 h sshd-auth: a b",
                "2026-11-21T06:00:00Z",
                "sshd-auth",
                "a b",
            ),
            (
                "<38>Nov 21 06:00:00 h sshd[1]: p",
                "2026-11-21T06:00:00Z",
                "sshd",
                "p",
            ),
            ("Feb 29 06:00:00 h sshd[1]: leap", "-", "sshd", "leap"),
            (
                "Nov 21 25:00:00 h sshd[1]: bad hour",
                "-",
                "sshd",
                "bad hour",
            ),
            (
                "2026-11-21T06:13:45.123456+01:00 host sshd[1]: iso",
                "2026-11-21T05:13:45Z",
                "sshd",
                "iso",
            ),
            (
                "2015-04-16T18:02:50Z host sshd[2716]: z",
                "2015-04-16T18:02:50Z",
                "sshd",
                "z",
            ),
            (
                "2015-04-16T18:02:50 host CRON[1]: c",
                "2015-04-16T18:02:50Z",
                "CRON",
                "c",
            ),
            (
                "<38>1 2019-07-08T17:40:16.954167-04:00 h.example.com sshd 57915 - - Failed x",
                "2019-07-08T21:40:16Z",
                "sshd",
                "Failed x",
            ),
            (
                "<38>1 2019-07-08T17:40:17Z h sshd 5 - [a b=\"[x]\"][c@1 d=\"\\]\"] msg",
                "2019-07-08T17:40:17Z",
                "sshd",
                "msg",
            ),
            ("<38>1 - h sshd 5 - - nil time", "-", "sshd", "nil time"),
            (
                "Nov 21 06:00:00 host kernel msg",
                "2026-11-21T06:00:00Z",
                "",
                "host kernel msg",
            ),
        ];
        for &(line, time, prog, msg) in cases {
            let h = parse(line, now()).unwrap_or_else(|| panic!("no header: {line}"));
            assert_eq!(h.time.map_or("-".to_string(), rfc3339), time, "{line}");
            assert_eq!(h.program, prog, "{line}");
            assert_eq!(h.message, msg, "{line}");
        }
    }

    #[test]
    fn not_headers() {
        for line in [
            "",
            "hello",
            "Nov",
            "Nov 21",
            "Nov 21 06:13",
            "Foo 21 06:13:45 h sshd[1]: x",
            "2026-11-21",
            "2026-11-21T06:13:45+0",
            "<38>1 2019-07-08T17:40:17Z h sshd 5 - [unterminated",
            "<>Nov 21 06:00:00 h sshd[1]: x",
            "<3a>Nov 21 06:00:00 h sshd[1]: x",
        ] {
            assert_eq!(parse(line, now()), None, "{line:?}");
        }
    }

    #[test]
    fn fraction_is_kept() {
        let h = parse("2026-11-21T06:13:45.5Z h sshd[1]: x", now()).unwrap();
        let t = h.time.unwrap().duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(t.subsec_millis(), 500);
        assert_eq!(unix_secs(h.time.unwrap()), 1_795_241_625);
    }
}
