//! Detect: turn a stream of [`Observation`](crate::event::Observation)s into
//! [`Finding`](crate::event::Finding)s.
//!
//! Every detector here is pure: it owns bounded per-address state, takes `now` as an argument
//! and never does I/O, so the daemon can drive it from its event loop and tests can drive it
//! with a fake clock. Memory is bounded per detector (a cap on tracked addresses, a fixed
//! amount of state per address), because the addresses are chosen by attackers.
//!
//! | detector | fires when |
//! |---|---|
//! | [`threshold`] | an address fails `max_retry` times within `find_time` (fail2ban's rule) |
//! | [`enumeration`] | `min_users` distinct user names are tried from one address (or prefix) within a window |
//! | [`prefix`] | `min_addresses` distinct addresses of one IPv4 /24 or IPv6 /64 (configurable) fail within a window (rotating botnets); the target is the prefix |
//! | [`window`] | an address's weighted score over a long window (hours, days) reaches a threshold (low and slow) |

pub mod enumeration;
mod key;
pub mod prefix;
pub mod threshold;
pub mod window;

pub use enumeration::{EnumerationDetector, EnumerationParams};
pub use prefix::{PrefixDetector, PrefixParams};
pub use threshold::{ThresholdDetector, ThresholdParams};
pub use window::{WindowDetector, WindowParams};
