//! The review, end to end: a daemon records bans and observations, `ravelin report --html`
//! renders them, and headless Chromium (Debian's `chromium`) opens the file and takes a
//! screenshot that must not be blank.

use std::time::Duration;

use crate::harness::*;

/// Decode a PNG just enough to count distinct pixel rows (stdlib zlib through python3).
fn distinct_rows(png: &std::path::Path) -> usize {
    let code = r#"
import sys, zlib, struct
d = open(sys.argv[1], 'rb').read()
assert d[:8] == b'\x89PNG\r\n\x1a\n'
pos, idat, w, h, ct = 8, b'', 0, 0, 0
while pos < len(d):
    n = struct.unpack('>I', d[pos:pos+4])[0]; t = d[pos+4:pos+8]; c = d[pos+8:pos+8+n]
    if t == b'IHDR': w, h, bd, ct = struct.unpack('>IIBB', c[:10])
    if t == b'IDAT': idat += c
    pos += 12 + n
raw = zlib.decompress(idat)
bpp = {2: 3, 6: 4}.get(ct, 4)
stride = 1 + w * bpp
rows = set(raw[i*stride+1:(i+1)*stride] for i in range(h))
print(len(rows))
"#;
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", code])
        .arg(png)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn the_html_review_renders_in_headless_chromium() {
    if !can_run() {
        return;
    }
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(chromium) = chromium else {
        eprintln!("SKIP: chromium missing (the README's test command installs it)");
        return;
    };
    let ns = Netns::new();
    let s = Setup::new(2, "", "");
    std::fs::write(&s.log, "").unwrap();
    let d = Daemon::start(&ns, &s);
    let mut lines = Vec::new();
    for i in 1..=5 {
        lines.push(failed(&format!("203.0.113.{i}"), "oracle"));
        lines.push(failed(&format!("203.0.113.{i}"), "<b>admin</b>"));
    }
    s.append(&lines);
    assert!(
        ns.wait_for(Duration::from_secs(10), |e| e.len() >= 5)
            .is_some(),
        "{:?}",
        ns.all_elements()
    );
    d.stop();

    let html = s.dir.path().join("review.html");
    let out = s.cli(&["report", "--since", "1d", "--html", html.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("10 counted attempts from 5 sources, 5 bans"),
        "{text}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg") && page.contains("&lt;b&gt;admin&lt;/b&gt;"),
        "charts and escaping"
    );

    let png = s.dir.path().join("shot.png");
    let profile = s.dir.path().join("chromium-profile");
    let shot = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1000,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let rows = distinct_rows(&png);
    assert!(
        rows > 50,
        "the screenshot looks blank ({rows} distinct rows)"
    );
}
