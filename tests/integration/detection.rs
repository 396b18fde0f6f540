//! Detection beyond thresholds, end to end: a rotating botnet in one /24 ends as one interval
//! element covering the /24 in the kernel, and `explain` says why.

use std::time::Duration;

use crate::harness::*;

#[test]
fn a_rotating_slash_24_is_banned_as_one_interval_element() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    let s = Setup::new(5, "[jail.prefix]\nmin_addresses = 6\nwindow = \"1h\"\n", "");
    std::fs::write(&s.log, "").unwrap();
    let d = Daemon::start(&ns, &s);
    // Each address of the botnet tries once: far below max_retry.
    let lines: Vec<String> = (1..=6)
        .map(|i| failed(&format!("198.51.100.{}", 10 * i), "admin"))
        .collect();
    s.append(&lines);
    let ok = ns.wait_for(Duration::from_secs(10), |e| {
        e.iter().any(|x| x == "198.51.100.0/24")
    });
    assert!(
        ok.is_some(),
        "no /24 element: {:?}\n{}",
        ns.all_elements(),
        d.log()
    );
    // One interval element, not six addresses.
    assert_eq!(
        ns.elements("ravelin", "ban4net"),
        vec!["198.51.100.0/24".to_string()]
    );
    assert!(
        ns.elements("ravelin", "ban4").is_empty(),
        "{:?}",
        ns.elements("ravelin", "ban4")
    );
    // An address of the prefix that never failed is covered too, and explain says so.
    let out = s.cli(&["explain", "198.51.100.99"]);
    let text = stdout(&out);
    assert!(
        text.contains("BANNED as 198.51.100.0/24") && text.contains("detector prefix"),
        "{text}{}",
        stderr(&out)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&s.cli(&["explain", "198.51.100.10", "--json"]).stdout).unwrap();
    assert_eq!(
        v["observations"]["by_rule"][0]["rule"], "sshd.failed-password",
        "{v}"
    );
    let bans: serde_json::Value =
        serde_json::from_slice(&s.cli(&["bans", "--json"]).stdout).unwrap();
    assert_eq!(bans[0]["detector"], "prefix");
    d.stop();
}
