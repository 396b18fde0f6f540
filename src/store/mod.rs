//! The store: bans, offence history and source checkpoints, behind the narrow [`Store`] trait.
//!
//! SQLite (WAL) is the embedded default; the trait is deliberately small and synchronous so a
//! PostgreSQL implementation for fleets can follow without touching the daemon. We use
//! rusqlite rather than sqlx: the daemon calls the store from one dedicated thread, so an async
//! driver buys nothing, and rusqlite builds faster (see ARCHITECTURE.md).
//!
//! The `bans` table is also the offence history: a row is never updated except to end it, so
//! "how many times was this address banned in the last N days" (escalation) is one query.
//! Retention deletes ended rows older than the configured window, so the file cannot grow
//! without bound.

mod sqlite;

use std::time::SystemTime;

use std::net::IpAddr;

use ipnet::IpNet;

use crate::event::Observation;

pub use sqlite::SqliteStore;

/// One ban, active or ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRow {
    /// Row id.
    pub id: i64,
    /// Address or prefix.
    pub target: IpNet,
    /// Jail that decided it (`manual` for `ravelin ban`).
    pub jail: String,
    /// Why, in words.
    pub reason: String,
    /// Escalation level (0 = first offence).
    pub level: u32,
    /// The detector that decided it (`manual` for `ravelin ban`).
    pub detector: String,
    /// When it started.
    pub start: SystemTime,
    /// When it expires (`None`: permanent).
    pub expires: Option<SystemTime>,
    /// When and why it was ended early (`unban`), if it was.
    pub ended: Option<(SystemTime, String)>,
}

impl BanRow {
    /// Is it in force at `now`?
    pub fn active_at(&self, now: SystemTime) -> bool {
        self.ended.is_none() && self.expires.is_none_or(|e| e > now)
    }
}

/// Store failures. The message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error(
        "cannot open the store {path}: {source}; check that the state directory is writable by ravelin, or move the file aside to start a fresh store (kernel bans stay until their timeouts)"
    )]
    Open {
        /// The database file.
        path: String,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The database was written by a newer ravelin.
    #[error(
        "the store {path} has schema version {found}, newer than this ravelin understands ({supported}); upgrade ravelin"
    )]
    TooNew {
        /// The database file.
        path: String,
        /// Version in the file.
        found: i64,
        /// Version supported here.
        supported: i64,
    },
    /// A query failed.
    #[error("store query failed: {0}")]
    Query(#[from] rusqlite::Error),
    /// A row held something unparseable.
    #[error("store row is corrupt: {0}")]
    Corrupt(String),
}

/// What the daemon needs from persistence. Implementations must be durable on return.
pub trait Store: Send {
    /// Record a new ban. An active ban on the same target is ended first (reason `replaced`).
    fn insert_ban(&mut self, ban: &BanRow) -> Result<i64, StoreError>;
    /// End the active ban(s) on `target`; returns how many were ended.
    fn end_ban(&mut self, target: IpNet, at: SystemTime, reason: &str)
    -> Result<usize, StoreError>;
    /// Bans in force at `now`.
    fn active_bans(&mut self, now: SystemTime) -> Result<Vec<BanRow>, StoreError>;
    /// How many bans `target` received since `since` (the escalation history).
    fn prior_bans(&mut self, target: IpNet, since: SystemTime) -> Result<u32, StoreError>;
    /// Every ban that started at or after `since`, oldest first (for `report`).
    fn bans_since(&mut self, since: SystemTime) -> Result<Vec<BanRow>, StoreError>;
    /// All rows for `target`, newest first (for `explain`).
    fn history(&mut self, target: IpNet, limit: usize) -> Result<Vec<BanRow>, StoreError>;
    /// A source checkpoint.
    fn load_checkpoint(&mut self, key: &str) -> Result<Option<String>, StoreError>;
    /// Persist a source checkpoint.
    fn save_checkpoint(
        &mut self,
        key: &str,
        value: &str,
        now: SystemTime,
    ) -> Result<(), StoreError>;
    /// Append observations (one transaction). They feed `explain` and are replayed into the
    /// detectors on start, so long windows survive restarts.
    fn record_observations(&mut self, obs: &[Observation]) -> Result<(), StoreError>;
    /// Observations at or after `since`, oldest first, at most `limit` (the newest are kept
    /// when there are more).
    fn observations_since(
        &mut self,
        since: SystemTime,
        limit: usize,
    ) -> Result<Vec<Observation>, StoreError>;
    /// The newest observations of one address, newest first.
    fn observations_of(
        &mut self,
        addr: IpAddr,
        limit: usize,
    ) -> Result<Vec<Observation>, StoreError>;
    /// Drop observations older than `keep` and beyond the newest `max_rows`; returns rows deleted.
    fn prune_observations(
        &mut self,
        now: SystemTime,
        keep: std::time::Duration,
        max_rows: usize,
    ) -> Result<usize, StoreError>;
    /// Delete history older than `now - retention`; returns rows deleted.
    fn prune(
        &mut self,
        now: SystemTime,
        retention: std::time::Duration,
    ) -> Result<usize, StoreError>;
}
