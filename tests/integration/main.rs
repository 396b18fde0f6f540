//! One integration binary (GUIDE habit 9): modules by topic. These tests run the real
//! `ravelin` binary against real nftables inside a private network namespace per test, and
//! skip (saying so) when not run as root or when nftables is missing; the README's test
//! command installs everything they need.

mod harness;

mod alert;
mod audit;
mod bans;
mod cli;
mod decoy;
mod decoy_daemon;
mod detection;
mod firewall;
mod journal;
mod metrics;
mod report;
mod rotation;
