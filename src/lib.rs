//! ravelin: a layered defense for internet-facing Linux servers.
//!
//! ```text
//!  source ──Record──▶ matcher ──Observation──▶ detect ──Finding──▶ decide ──Decision──▶ enforce
//!  file, journal       (pure)                   (pure, windows,     (pure: allowlist     nftables
//!                                                clock passed in)    permit, escalation)  (batched)
//!                                                                                         store
//! ```
//!
//! | module | role |
//! |---|---|
//! | [`event`] | the types that flow between stages |
//! | [`clock`] | the only way code reads time |
//! | [`config`] | TOML -> validated [`config::Config`], every error with its key path |
//! | [`source`] | file tailing (inotify, rotation, checkpoints) and the journal |
//! | [`matcher`] | Record -> Observation: built-in rules, literal prefilter, injection-safe |
//! | [`detect`] | bounded per-address windows and thresholds |
//! | [`decide`] | allowlist (mints the ban permit), escalation, dry run |
//! | [`enforce`] | nftables sets with kernel timeouts, batched transactions |
//! | [`store`] | SQLite: bans, offence history, checkpoints |
//! | [`audit`] | posture checks of the effective state, with evidence; `harden ssh` |
//! | [`firewall`] | the default-deny policy, commit-confirmed apply, kernel scan sets |
//! | [`report`] | the weekly review from the store, text or one self-contained HTML file |
//! | [`honeypot`] | the SSH decoy: russh server, recorded auth, Cowrie events, bounded shell |
//! | [`metrics`] | Prometheus exposition on loopback |
//! | [`alert`] | one operations channel: grouping, digests, rate limits, sinks |
//! | [`daemon`] | wiring, reload, shutdown, control socket |
//! | [`cli`] | subcommands; the only place that prints to stdout |

pub mod alert;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod decide;
pub mod detect;
pub mod enforce;
pub mod event;
pub mod firewall;
pub mod honeypot;
pub mod matcher;
pub mod metrics;
pub mod report;
pub mod source;
pub mod store;
