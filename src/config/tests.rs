use super::*;

/// The sample from the issue, verbatim: it must keep working.
pub(crate) const SAMPLE: &str = r#"
state_dir = "/var/lib/ravelin"
control_socket = "/run/ravelin/ravelin.sock"

[allow]
addresses = ["127.0.0.0/8", "::1", "192.0.2.10", "2001:db8:1::/48"]

[enforce]
backend = "nftables"      # or "log": decide and record, touch no firewall
table = "ravelin"

[[source]]
name = "auth"
file = "/var/log/auth.log"

[[source]]
name = "journal"
journal_units = ["ssh.service", "sshd.service"]

[[jail]]
name = "sshd"
sources = ["auth"]
rules = ["sshd"]          # built-in OpenSSH rule set
max_retry = 5
find_time = "10m"
ban_time = "10m"
ban_time_factor = 2       # repeat offenders: 10m, 20m, 40m, ...
ban_time_max = "30d"
"#;

#[test]
fn the_sample_config_is_accepted_as_written() {
    let c = Config::parse(SAMPLE, None).expect("sample must parse");
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/ravelin"));
    assert_eq!(c.allow.len(), 4);
    assert_eq!(c.allow[2].to_string(), "192.0.2.10/32");
    assert_eq!(c.enforce.backend, Backend::Nftables);
    assert_eq!(c.sources.len(), 2);
    assert!(matches!(&c.sources[1].kind, SourceKind::Journal { units, .. } if units.len() == 2));
    let j = &c.jails[0];
    assert_eq!((j.name.as_str(), j.max_retry.get()), ("sshd", 5));
    assert_eq!(j.find_time, Duration::from_secs(600));
    assert_eq!(j.ban_time, BanLength::For(Duration::from_secs(600)));
    assert_eq!(j.ban_time_factor, 2.0);
    assert_eq!(j.ban_time_max, Duration::from_secs(30 * 86_400));
}

#[test]
fn every_error_is_reported_at_once_with_its_key_path() {
    let text = r#"
state_dir = 7
colour = "blue"
[allow]
addresses = ["10.0.0.0/33", "not-an-ip"]
[enforce]
backend = "iptables"
[[source]]
name = "auth"
[[jail]]
name = "sshd"
sources = ["nope"]
rules = ["apache"]
max_retry = 0
find_time = "10 minutes"
ban_time_factor = 0.5
bantime = "1h"
"#;
    let err = Config::parse(text, Some(Path::new("/etc/ravelin/ravelin.toml"))).unwrap_err();
    let paths: Vec<&str> = err.errors.iter().map(|(p, _)| p.as_str()).collect();
    for want in [
        "state_dir",
        "colour",
        "allow.addresses[0]",
        "allow.addresses[1]",
        "enforce.backend",
        "source[0]",
        "jail[0].rules[0]",
        "jail[0].max_retry",
        "jail[0].find_time",
        "jail[0].ban_time_factor",
        "jail[0].bantime",
    ] {
        assert!(
            paths.contains(&want),
            "missing error for {want}; got {paths:?}"
        );
    }
    let text = err.to_string();
    assert!(
        text.starts_with("invalid config /etc/ravelin/ravelin.toml"),
        "{text}"
    );
    assert!(
        text.contains("enforce.backend: unknown backend \"iptables\""),
        "{text}"
    );
}

#[test]
fn unknown_jail_source_is_named() {
    let err = Config::parse(
        "[[source]]\nname=\"a\"\nfile=\"/x\"\n[[jail]]\nname=\"j\"\nsources=[\"b\"]\n",
        None,
    )
    .unwrap_err();
    assert_eq!(err.errors.len(), 1, "{err}");
    assert_eq!(err.errors[0].0, "jail[0].sources[0]");
    assert!(err.errors[0].1.contains("defined: a"), "{err}");
}

#[test]
fn syntax_errors_are_reported() {
    let err = Config::parse("[[jail]\nname=", None).unwrap_err();
    assert!(err.errors[0].1.starts_with("TOML syntax"), "{err}");
}

#[test]
fn permanent_ban_time_and_builtin_default() {
    let c = Config::parse("[[source]]\nname=\"a\"\nfile=\"/x\"\n[[jail]]\nname=\"j\"\nsources=[\"a\"]\nban_time=\"permanent\"\n", None).unwrap();
    assert_eq!(c.jails[0].ban_time, BanLength::Permanent);
    let d = Config::builtin_default();
    assert_eq!(d.jails.len(), 1);
    assert_eq!(d.jails[0].name, "sshd");
    assert_eq!(d.jails[0].sources, vec![d.sources[0].name.clone()]);
    assert_eq!(d.enforce.backend, Backend::Nftables);
}

#[test]
fn missing_explicit_file_is_an_error() {
    let err = Config::load(Some(Path::new("/nonexistent/ravelin.toml"))).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot read /nonexistent/ravelin.toml"),
        "{err}"
    );
}

#[test]
fn detection_keys_default_and_validate() {
    // Defaults a server owner can keep: on for every jail that does not say otherwise.
    let c = Config::parse(SAMPLE, None).unwrap();
    let j = &c.jails[0];
    assert_eq!(j.windows.len(), 2);
    assert_eq!(
        j.prefix
            .as_ref()
            .map(|p| (p.min_addresses, p.v4_len, p.v6_len)),
        Some((6, 24, 64))
    );
    assert_eq!(j.enumeration.as_ref().map(|e| e.min_users), Some(6));
    assert_eq!(c.recidive.permanent_after, Some(10));
    assert_eq!(c.trust.key_login_ttl, None);
    assert_eq!(c.longest_window(), Duration::from_secs(7 * 86_400));

    let text = r#"
[recidive]
permanent_after = 0
[trust]
key_login_ttl = "7d"
[[source]]
name = "auth"
file = "/x"
[[jail]]
name = "sshd"
sources = ["auth"]
window = [{ threshold = 5, window = "1h" }]
prefix = false
[jail.enumeration]
min_users = 3
window = "2h"
[jail.weights]
"sshd.invalid-user" = 3
"sshd.preauth-closed" = 0
[[jail]]
name = "scanners"
kinds = ["scan"]
max_retry = 1
ban_time = "1d"
"#;
    let c = Config::parse(text, None).unwrap();
    assert_eq!(c.recidive.permanent_after, None);
    assert_eq!(c.trust.key_login_ttl, Some(Duration::from_secs(7 * 86_400)));
    let j = &c.jails[0];
    assert_eq!(
        j.windows,
        vec![WindowConfig {
            threshold: 5.0,
            window: Duration::from_secs(3600)
        }]
    );
    assert_eq!(j.prefix, None);
    assert_eq!(
        j.enumeration,
        Some(EnumerationConfig {
            min_users: 3,
            window: Duration::from_secs(7200),
            per_prefix: false,
        })
    );
    assert_eq!(
        j.weights,
        vec![
            ("sshd.invalid-user".to_string(), 3.0),
            ("sshd.preauth-closed".to_string(), 0.0)
        ]
    );
    let s = &c.jails[1];
    assert_eq!(
        (s.kinds.clone(), s.rules.is_empty(), s.sources.is_empty()),
        (vec!["scan".to_string()], true, true)
    );

    let bad = r#"
[recidive]
permanent_after = -1
[[source]]
name = "auth"
file = "/x"
[[jail]]
name = "sshd"
sources = ["auth"]
window = [{ threshold = 0, window = "1h" }, { window = "1h" }]
[jail.prefix]
min_addresses = 1
ipv4_len = 40
[jail.weights]
"sshd.invalid-user" = "heavy"
[[jail]]
name = "nothing"
rules = []
sources = ["auth"]
"#;
    let err = Config::parse(bad, None).unwrap_err();
    let paths: Vec<&str> = err.errors.iter().map(|(p, _)| p.as_str()).collect();
    for want in [
        "recidive.permanent_after",
        "jail[0].window[0]",
        "jail[0].window[1]",
        "jail[0].prefix.min_addresses",
        "jail[0].prefix.ipv4_len",
        "jail[0].weights.sshd.invalid-user",
        "jail[1].rules",
    ] {
        assert!(paths.contains(&want), "missing {want}: {paths:?}");
    }
}

#[test]
fn audit_waivers_are_validated_with_the_config() {
    let ok = "[[audit.waiver]]\nid = \"ssh.password-auth\"\nreason = \"legacy client until March\"\nexpires = \"2027-03-01\"\n";
    Config::parse(ok, None).expect("a valid waiver is accepted");
    let bad = "[[audit.waiver]]\nid = \"ssh.password-auth\"\nreason = \"\"\nexpires = \"soon\"\n";
    let err = Config::parse(bad, None).unwrap_err();
    let paths: Vec<&str> = err.errors.iter().map(|(p, _)| p.as_str()).collect();
    assert!(
        paths.contains(&"audit.waiver[0].reason") && paths.contains(&"audit.waiver[0].expires"),
        "{err}"
    );
}

#[test]
fn absurd_ban_lengths_are_refused_not_overflowed() {
    // Found while fuzzing: a length past the clock's range used to panic at the first ban.
    let text = "[[source]]\nname=\"a\"\nfile=\"/x\"\n[[jail]]\nname=\"j\"\nsources=[\"a\"]\nban_time=\"18446744073709551615\"\nban_time_max=\"18446744073709551615\"\n";
    let err = Config::parse(text, None).unwrap_err();
    let paths: Vec<&str> = err.errors.iter().map(|(p, _)| p.as_str()).collect();
    assert!(
        paths.contains(&"jail[0].ban_time") && paths.contains(&"jail[0].ban_time_max"),
        "{err}"
    );
}

/// The issue's `[honeypot]` sample as written: defaults filled in, the two decoy jails added.
#[test]
fn honeypot_sample_gets_defaults_and_decoy_jails() {
    let text = r#"
[honeypot]
listen = ["0.0.0.0:22", "[::]:22"]
events_file = "/var/log/ravelin/decoy.json"   # Cowrie-compatible JSON lines
"#;
    let c = Config::parse(text, None).unwrap();
    let h = c.honeypot.as_ref().expect("honeypot");
    assert_eq!(h.listen.len(), 2);
    assert_eq!(h.events_file, Path::new("/var/log/ravelin/decoy.json"));
    assert_eq!(h.data_dir, c.state_dir.join("decoy"));
    assert_eq!(h.user, "nobody");
    assert_eq!(h.sandbox, crate::honeypot::sandbox::SandboxMode::Required);
    assert!(h.banner.starts_with("SSH-2.0-OpenSSH_"));
    assert_eq!(h.ban_stages, ["persistence", "download"]);
    let decoy = c.jails.iter().find(|j| j.name == "decoy").unwrap();
    assert_eq!(decoy.kinds, ["decoy.login"]);
    assert_eq!(decoy.max_retry.get(), 5);
    let intrusion = c
        .jails
        .iter()
        .find(|j| j.name == "decoy-intrusion")
        .unwrap();
    assert_eq!(
        intrusion.kinds,
        ["decoy.stage.persistence", "decoy.stage.download"]
    );
    assert_eq!(intrusion.max_retry.get(), 1);
    assert_eq!(
        intrusion.ban_time,
        BanLength::For(Duration::from_secs(7 * 86400))
    );
}

#[test]
fn honeypot_errors_name_their_keys_and_own_decoy_jails_replace_the_built_in_ones() {
    let text = r#"
[honeypot]
listen = ["0.0.0.0"]
sandbox = "maybe"
user = "root"
banner = "OpenSSH"
accept_fraction = 2
accept_also = ["nocolon"]
max_sessions = 0
[honeypot.ban]
logins = 0
stages = ["persistence", "exfiltration"]
stage_ban_time = "0s"
"#;
    let err = Config::parse(text, None).unwrap_err();
    let paths: Vec<&str> = err.errors.iter().map(|(p, _)| p.as_str()).collect();
    for want in [
        "honeypot.listen[0]",
        "honeypot.sandbox",
        "honeypot.user",
        "honeypot.banner",
        "honeypot.accept_fraction",
        "honeypot.accept_also[0]",
        "honeypot.max_sessions",
        "honeypot.ban.logins",
        "honeypot.ban.stages[1]",
        "honeypot.ban.stage_ban_time",
    ] {
        assert!(paths.contains(&want), "missing {want}: {paths:?}");
    }
    let text = r#"
[honeypot]
listen = ["127.0.0.1:2222"]
accept_fraction = 0
accept_also = ["admin:Summer2026!"]
[[jail]]
name = "my-decoy"
kinds = ["decoy.login.failed"]
max_retry = 20
"#;
    let c = Config::parse(text, None).unwrap();
    assert!(c.jails.iter().all(|j| !j.name.starts_with("decoy")));
    let h = c.honeypot.unwrap();
    assert_eq!(h.accept_fraction, 0.0);
    assert_eq!(h.accept_also, [("admin".into(), "Summer2026!".into())]);
}
