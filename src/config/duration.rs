//! Human durations in config and on the command line: `90s`, `10m`, `1h30m`, `30d`, `2w`.
//! A bare integer means seconds. Kept tiny and strict: an unknown unit is an error, not 0.

use std::time::Duration;

/// Parse `10m`, `1h30m`, `30d`, `45` (seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration (use e.g. \"10m\", \"1h\", \"30d\")".into());
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {c:?} (use s, m, h, d or w)"
                ));
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: a number must come before {c:?}"))?;
        num.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
    }
    if !num.is_empty() {
        return Err(format!(
            "invalid duration {s:?}: trailing number without unit"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// The shortest readable form: `10m`, `1h30m`, `30d`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let cases = [
            ("10m", 600),
            ("1h30m", 5400),
            ("30d", 2_592_000),
            ("45", 45),
            ("2w", 1_209_600),
            ("90s", 90),
        ];
        for (text, secs) in cases {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_secs(secs),
                "{text}"
            );
        }
        for bad in ["", "10x", "m", "10m5", "-1m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(2_592_000)), "30d");
    }
}
