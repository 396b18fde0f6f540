//! Configuration text (any bytes, decoded lossily) through `Config::parse`.
//!
//! Check: no panic, whatever the TOML; a rejection always carries at least one error and
//! every error message says something; a config that parses can be shown (`Debug`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ravelin::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::parse(&text, None) {
        Ok(c) => {
            let _ = format!("{c:?}");
        }
        Err(e) => {
            assert!(!e.errors.is_empty(), "rejected without an error: {text:?}");
            assert!(
                e.errors.iter().all(|(_, msg)| !msg.is_empty()),
                "an empty error message: {e:?}"
            );
            let _ = e.to_string();
        }
    }
});
