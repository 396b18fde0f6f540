//! The review as one self-contained HTML file: inline CSS and SVG charts, no scripts, no
//! external fonts or images, so it can be mailed or archived and opens offline. Every string
//! from the data is escaped (user names are attacker-chosen).

use std::fmt::Write as _;

use super::{Ranked, Report};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Bars for attempts (and bans) over time.
fn timeline_svg(r: &Report) -> String {
    let (w, h, pad) = (900.0, 220.0, 30.0);
    let n = r.timeline.len().max(1) as f64;
    let max = r
        .timeline
        .iter()
        .map(|b| b.attempts.max(b.bans))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let bw = (w - 2.0 * pad) / n;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\" aria-label=\"attempts and bans over time\">"
    );
    let _ = write!(
        s,
        "<line x1=\"{pad}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#888\"/>",
        y = h - pad,
        x2 = w - pad
    );
    for (i, b) in r.timeline.iter().enumerate() {
        let x = pad + i as f64 * bw;
        let ah = (b.attempts as f64 / max) * (h - 2.0 * pad);
        let bh = (b.bans as f64 / max) * (h - 2.0 * pad);
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{ah:.1}\" fill=\"#4a7bd0\"><title>{} attempts {}</title></rect>",
            h - pad - ah,
            (bw * 0.6).max(1.0),
            esc(&b.start),
            b.attempts
        );
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#d0503a\"><title>{} bans {}</title></rect>",
            x + bw * 0.6,
            h - pad - bh,
            (bw * 0.3).max(1.0),
            esc(&b.start),
            b.bans
        );
    }
    let _ = write!(
        s,
        "<text x=\"{pad}\" y=\"16\" font-size=\"12\">max {max:.0} per bucket; blue: attempts, red: bans</text>"
    );
    if let (Some(first), Some(last)) = (r.timeline.first(), r.timeline.last()) {
        let _ = write!(
            s,
            "<text x=\"{pad}\" y=\"{}\" font-size=\"11\">{}</text>",
            h - 8.0,
            esc(&first.start)
        );
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            w - pad,
            h - 8.0,
            esc(&last.start)
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars for a ranked list.
fn bars_svg(list: &[Ranked], label: &str) -> String {
    let row = 22.0;
    let h = row * list.len().max(1) as f64 + 10.0;
    let max = list.iter().map(|x| x.count).max().unwrap_or(0).max(1) as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 900 {h}\" width=\"100%\" role=\"img\" aria-label=\"{}\">",
        esc(label)
    );
    for (i, x) in list.iter().enumerate() {
        let y = 5.0 + i as f64 * row;
        let bw = (x.count as f64 / max) * 500.0;
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            y + 14.0,
            esc(&x.key.chars().take(48).collect::<String>())
        );
        let _ = write!(
            s,
            "<rect x=\"330\" y=\"{y:.1}\" width=\"{:.1}\" height=\"16\" fill=\"#4a7bd0\"/>",
            bw.max(1.0)
        );
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            336.0 + bw,
            y + 13.0,
            x.count
        );
    }
    s.push_str("</svg>");
    s
}

/// Render the report.
pub fn render(r: &Report) -> String {
    let mut s = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ravelin review</title>\
         <style>body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}h1{font-size:1.5em}\
         h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}table{border-collapse:collapse}\
         td,th{padding:2px 10px;text-align:left}td.n{text-align:right}.kpi{display:inline-block;margin-right:2em}\
         .kpi b{font-size:1.6em;display:block}</style></head><body>",
    );
    let _ = write!(
        s,
        "<h1>ravelin review</h1><p>{} to {}</p>",
        esc(&r.since),
        esc(&r.until)
    );
    for (v, k) in [
        (r.attempts, "counted attempts"),
        (r.sources, "attacking sources"),
        (r.bans, "bans"),
        (r.logins, "successful logins"),
    ] {
        let _ = write!(s, "<span class=\"kpi\"><b>{v}</b>{k}</span>");
    }
    let _ = write!(s, "<h2>Attempts and bans over time</h2>{}", timeline_svg(r));
    let _ = write!(
        s,
        "<h2>Bans by detector</h2>{}",
        bars_svg(&r.bans_by_detector, "bans by detector")
    );
    let _ = write!(
        s,
        "<h2>Top sources</h2>{}",
        bars_svg(&r.top_sources, "top sources")
    );
    let _ = write!(
        s,
        "<h2>Top prefixes</h2>{}",
        bars_svg(&r.top_prefixes, "top prefixes")
    );
    let _ = write!(
        s,
        "<h2>Top user names</h2>{}",
        bars_svg(&r.top_users, "top user names")
    );
    let _ = write!(
        s,
        "<h2>Decoy kill chain</h2>{}",
        bars_svg(&r.funnel, "decoy funnel")
    );
    for (title, list) in [
        ("Decoy credentials", &r.decoy_credentials),
        ("Decoy commands", &r.decoy_commands),
        (
            "Decoy downloads (recorded, never fetched)",
            &r.decoy_downloads,
        ),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = write!(
            s,
            "<h2>{title}</h2><table><tr><th>what</th><th>times</th></tr>"
        );
        for x in list {
            let _ = write!(
                s,
                "<tr><td><code>{}</code></td><td class=\"n\">{}</td></tr>",
                esc(&x.key),
                x.count
            );
        }
        s.push_str("</table>");
    }
    s.push_str("<h2>Near misses</h2><p>Sources that failed but were never banned.</p><table><tr><th>address</th><th>failures</th><th>most in 24 h</th></tr>");
    for m in &r.near_misses {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&m.addr),
            m.failures,
            m.max_24h
        );
    }
    s.push_str("</table><h2>Threshold suggestions</h2><ul>");
    if r.suggestions.is_empty() {
        s.push_str("<li>none: no safe tighter threshold would have stopped more</li>");
    }
    for x in &r.suggestions {
        let _ = write!(s, "<li>{}</li>", esc(&x.text));
    }
    s.push_str("</ul></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_self_contained_and_escapes_attacker_text() {
        let r = Report {
            since: "a".into(),
            until: "b".into(),
            attempts: 1,
            sources: 1,
            bans: 0,
            bans_by_detector: vec![],
            logins: 0,
            timeline: vec![],
            top_sources: vec![],
            top_prefixes: vec![],
            top_users: vec![Ranked {
                key: "<script>alert(1)</script>".into(),
                count: 3,
            }],
            funnel: vec![],
            decoy_credentials: vec![],
            decoy_commands: vec![Ranked {
                key: "echo '<b onmouseover=alert(1)>'".into(),
                count: 1,
            }],
            decoy_downloads: vec![],
            near_misses: vec![],
            suggestions: vec![],
        };
        let h = render(&r);
        assert!(!h.contains("<script"), "unescaped attacker text");
        assert!(h.contains("&lt;script&gt;"));
        assert!(!h.contains("<b onmouseover"), "unescaped decoy command");
        assert!(h.contains("Decoy commands"));
        for external in ["src=", "href=", "@import", "url("] {
            assert!(!h.contains(external), "external reference {external}");
        }
    }
}
