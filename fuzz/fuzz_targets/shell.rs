//! The decoy's shell: several attacker command lines (any bytes, decoded lossily, split at
//! newlines) run one after another in one session, so later lines see the filesystem,
//! working directory, crontab and variables earlier lines left.
//!
//! Checks: no panic; every line's stdout and stderr are at most `MAX_OUTPUT` bytes; the
//! session's filesystem stays within its byte and node budgets; the prompt stays short.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use ravelin::honeypot::fs;
use ravelin::honeypot::profile::HostProfile;
use ravelin::honeypot::shell::{MAX_OUTPUT, Shell};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // 2026-11-21T06:30:00Z, as in the other targets.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_242_600);
    let mut sh = Shell::new(HostProfile::from_seed(7), "root", now);
    for line in text.split('\n').take(16) {
        let o = sh.run(line);
        assert!(o.out.len() <= MAX_OUTPUT, "stdout {} bytes", o.out.len());
        assert!(o.err.len() <= MAX_OUTPUT, "stderr {} bytes", o.err.len());
        assert!(sh.fs().used_bytes() <= sh.fs().limit_bytes(), "fs over budget");
        assert!(sh.fs().node_count() <= fs::MAX_NODES, "fs over node cap");
        assert!(sh.prompt().len() <= 8192, "prompt {} bytes", sh.prompt().len());
        if o.exit {
            break;
        }
    }
});
