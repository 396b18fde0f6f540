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

pub mod threshold;

pub use threshold::{ThresholdDetector, ThresholdParams};
pub mod enumeration;
pub mod prefix;
pub mod window;
pub use enumeration::{EnumerationDetector, EnumerationParams};
pub use prefix::{PrefixDetector, PrefixParams};
pub use window::{WindowDetector, WindowParams};
