//! Policy: turn findings into decisions. Pure: no I/O, time passed in.

pub mod allowlist;
