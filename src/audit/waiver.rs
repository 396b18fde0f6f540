//! Waivers: an accepted risk, written down with a reason and an expiry date.
//!
//! They live in the config file's `[audit]` table and are read here, not by the daemon's
//! config loader, so the audit works with any config (and without one):
//!
//! ```toml
//! [[audit.waiver]]
//! id = "ssh.password-auth"
//! reason = "legacy backup appliance, replaced in December"
//! expires = "2026-12-31"
//! ```
//!
//! A waived check stays in the report as "waived" (with its original status and the reason)
//! until the day after `expires`; then the failure shows again with a note that the waiver
//! lapsed. A waiver never hides a result.

use std::path::Path;

use chrono::NaiveDate;
use serde::Deserialize;

use super::{AppliedWaiver, CheckResult, Status};

/// Default config path.
pub const DEFAULT_CONFIG: &str = "/etc/ravelin/ravelin.toml";

/// One accepted risk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    /// The check id it covers.
    pub id: String,
    /// Why the risk is accepted (shown with the result).
    pub reason: String,
    /// Last day (inclusive) on which it applies.
    pub expires: NaiveDate,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    audit: Option<AuditTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditTable {
    #[serde(default)]
    waiver: Vec<RawWaiver>,
    /// How often the daemon re-runs the audit (validated by the config parser).
    #[serde(default)]
    #[allow(dead_code)]
    every: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaiver {
    id: String,
    reason: String,
    expires: String,
}

/// Reads the waivers from `config_path` (default [`DEFAULT_CONFIG`]; an absent default file
/// means none). Other tables of the file are ignored here. Every bad waiver is reported.
pub fn load_waivers(config_path: Option<&Path>) -> Result<Vec<Waiver>, String> {
    let path = config_path.unwrap_or(Path::new(DEFAULT_CONFIG));
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if config_path.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    parse_waivers(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the `[audit]` table of a config text.
pub fn parse_waivers(text: &str) -> Result<Vec<Waiver>, String> {
    check_waivers(text).map_err(|errs| {
        errs.iter()
            .map(|(path, msg)| {
                if path.is_empty() {
                    msg.clone()
                } else {
                    format!("{path}: {msg}")
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// [`parse_waivers`] with every error as (key path, message), as the config validator reports.
pub fn check_waivers(text: &str) -> Result<Vec<Waiver>, Vec<(String, String)>> {
    let f: File = toml::from_str(text).map_err(|e| vec![(String::new(), e.to_string())])?;
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for (i, w) in f
        .audit
        .map(|a| a.waiver)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        if w.id.trim().is_empty() {
            errors.push((format!("audit.waiver[{i}].id"), "empty".into()));
        }
        if w.reason.trim().is_empty() {
            errors.push((
                format!("audit.waiver[{i}].reason"),
                "say why the risk is accepted".into(),
            ));
        }
        match NaiveDate::parse_from_str(&w.expires, "%Y-%m-%d") {
            Ok(d) => out.push(Waiver {
                id: w.id,
                reason: w.reason,
                expires: d,
            }),
            Err(_) => errors.push((
                format!("audit.waiver[{i}].expires"),
                format!("{:?} is not a YYYY-MM-DD date", w.expires),
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Applies waivers to results as of `today`: fail/warn results with an unexpired waiver
/// become [`Status::Waived`]; expired ones add a note to the reason.
pub fn apply(results: &mut [CheckResult], waivers: &[Waiver], today: NaiveDate) {
    for r in results.iter_mut() {
        if !matches!(r.status, Status::Fail | Status::Warn) {
            continue;
        }
        let Some(w) = waivers.iter().find(|w| w.id == r.id) else {
            continue;
        };
        if today <= w.expires {
            r.waiver = Some(AppliedWaiver {
                original: r.status,
                reason: w.reason.clone(),
                expires: w.expires.to_string(),
            });
            r.status = Status::Waived;
        } else {
            r.reason = format!("{} (waiver expired on {})", r.reason, w.expires);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Severity;

    fn result(status: Status) -> CheckResult {
        CheckResult {
            id: "ssh.password-auth",
            title: "t",
            status,
            severity: Severity::High,
            reason: "r".into(),
            evidence: vec![],
            remediation: "x",
            waiver: None,
        }
    }

    #[test]
    fn waivers_apply_until_their_expiry_day() {
        let w = parse_waivers(
            "[jail]\nx = 1\n[[audit.waiver]]\nid = \"ssh.password-auth\"\nreason = \"appliance\"\nexpires = \"2026-12-31\"\n",
        )
        .unwrap();
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let cases = [
            (Status::Fail, "2026-11-21", Status::Waived),
            (Status::Warn, "2026-12-31", Status::Waived),
            (Status::Fail, "2027-01-01", Status::Fail),
            (Status::Pass, "2026-11-21", Status::Pass),
        ];
        for (before, today, after) in cases {
            let mut rs = [result(before)];
            apply(&mut rs, &w, d(today));
            assert_eq!(rs[0].status, after, "{before:?} on {today}");
        }
        let mut rs = [result(Status::Fail)];
        apply(&mut rs, &w, d("2027-01-01"));
        assert!(rs[0].reason.contains("expired on 2026-12-31"));
    }

    #[test]
    fn bad_waivers_are_all_reported() {
        let e = parse_waivers("[[audit.waiver]]\nid = \"\"\nreason = \"\"\nexpires = \"soon\"\n")
            .unwrap_err();
        assert!(
            e.contains(".id") && e.contains(".reason") && e.contains(".expires"),
            "{e}"
        );
    }
}
