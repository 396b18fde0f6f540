//! One control-socket request line (any bytes) through the same `serde_json` decoding the
//! daemon uses for `Request`.
//!
//! Checks: no panic; a request that decodes re-encodes and decodes to itself (the CLI and the
//! daemon agree on the wire form).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ravelin::daemon::control::Request;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<Request>(data) else {
        return;
    };
    let wire = serde_json::to_vec(&req).expect("a decoded request re-encodes");
    let back: Request = serde_json::from_slice(&wire).expect("a re-encoded request decodes");
    assert_eq!(back, req, "wire round trip changed the request");
});
