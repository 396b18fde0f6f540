//! SQLite implementation of [`Store`]: WAL journal, `synchronous = NORMAL` (durable across a
//! process crash; a power loss may drop the last transaction, which the kernel set reconcile
//! covers), migrations keyed on `PRAGMA user_version`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, params};

use super::{BanRow, Store, StoreError};
use crate::clock::{from_unix_secs, unix_secs};
use crate::event::Observation;

/// Each entry moves the schema from version `i` to `i + 1`. Never edit one that shipped.
const MIGRATIONS: &[&str] = &[
    // 1: bans (also the offence history) and checkpoints.
    "CREATE TABLE bans (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        jail TEXT NOT NULL,
        reason TEXT NOT NULL,
        level INTEGER NOT NULL,
        start INTEGER NOT NULL,
        expires INTEGER,
        ended INTEGER,
        end_reason TEXT
    );
    CREATE INDEX bans_target ON bans(target, start);
    CREATE INDEX bans_open ON bans(ended) WHERE ended IS NULL;
    CREATE TABLE checkpoints (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated INTEGER NOT NULL
    );",
    // 2: the deciding detector on each ban; observations (explain, and detector state rebuilt
    // on restart by replaying them).
    "ALTER TABLE bans ADD COLUMN detector TEXT NOT NULL DEFAULT 'threshold';
    CREATE TABLE observations (
        time INTEGER NOT NULL,
        addr TEXT NOT NULL,
        rule TEXT NOT NULL,
        user TEXT,
        source TEXT NOT NULL
    );
    CREATE INDEX observations_addr ON observations(addr, time);
    CREATE INDEX observations_time ON observations(time);",
];

/// The SQLite store.
pub struct SqliteStore {
    conn: Connection,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Open (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let open_err = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        // journal_mode returns a row; query it rather than execute.
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(open_err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::TooNew {
                path: shown,
                found: version,
                supported,
            });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction().map_err(open_err)?;
            tx.execute_batch(m).map_err(open_err)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .map_err(open_err)?;
            tx.commit().map_err(open_err)?;
        }
        Ok(Self { conn })
    }

    /// An in-memory store (tests, `simulate`).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::open(Path::new(":memory:"))
    }
}

fn row_to_ban(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<BanRow, StoreError>> {
    let target: String = r.get(1)?;
    let Ok(target) = target.parse::<IpNet>() else {
        return Ok(Err(StoreError::Corrupt(format!("ban target {target:?}"))));
    };
    let ended: Option<i64> = r.get(7)?;
    let end_reason: Option<String> = r.get(8)?;
    Ok(Ok(BanRow {
        id: r.get(0)?,
        target,
        jail: r.get(2)?,
        reason: r.get(3)?,
        level: r.get::<_, i64>(4)?.max(0) as u32,
        start: from_unix_secs(r.get::<_, i64>(5)?.max(0) as u64),
        expires: r
            .get::<_, Option<i64>>(6)?
            .map(|e| from_unix_secs(e.max(0) as u64)),
        ended: ended.map(|e| {
            (
                from_unix_secs(e.max(0) as u64),
                end_reason.unwrap_or_default(),
            )
        }),
        detector: r.get(9)?,
    }))
}

/// User names are client-controlled; stored ones are cut to this many bytes.
const MAX_USER: usize = 128;

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

type ObsRow = Option<Observation>;

fn row_to_observation(r: &rusqlite::Row<'_>) -> rusqlite::Result<ObsRow> {
    let addr: String = r.get(1)?;
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return Ok(None);
    };
    let rule: String = r.get(2)?;
    let source: String = r.get(4)?;
    Ok(Some(Observation {
        time: from_unix_secs(r.get::<_, i64>(0)?.max(0) as u64),
        addr,
        user: r.get(3)?,
        rule: Arc::from(rule.as_str()),
        source: Arc::from(source.as_str()),
    }))
}

fn collect_observations(
    rows: impl Iterator<Item = rusqlite::Result<ObsRow>>,
) -> Result<Vec<Observation>, StoreError> {
    let mut out = Vec::new();
    for r in rows {
        // A row that no longer parses is skipped rather than failing the whole read.
        if let Some(o) = r? {
            out.push(o);
        }
    }
    Ok(out)
}

const COLUMNS: &str =
    "id, target, jail, reason, level, start, expires, ended, end_reason, detector";

fn secs(t: SystemTime) -> i64 {
    unix_secs(t) as i64
}

impl SqliteStore {
    fn query_bans(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<BanRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, row_to_ban)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn insert_ban(&mut self, ban: &BanRow) -> Result<i64, StoreError> {
        let tx = self.conn.transaction()?;
        let now = secs(ban.start);
        tx.execute(
            "UPDATE bans SET ended = ?2, end_reason = 'replaced' WHERE target = ?1 AND ended IS NULL AND (expires IS NULL OR expires > ?2)",
            params![ban.target.to_string(), now],
        )?;
        tx.execute(
            "INSERT INTO bans (target, jail, reason, level, start, expires, detector) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![ban.target.to_string(), ban.jail, ban.reason, ban.level as i64, now, ban.expires.map(secs), ban.detector],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    fn end_ban(
        &mut self,
        target: IpNet,
        at: SystemTime,
        reason: &str,
    ) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "UPDATE bans SET ended = ?2, end_reason = ?3 WHERE target = ?1 AND ended IS NULL AND (expires IS NULL OR expires > ?2)",
            params![target.to_string(), secs(at), reason],
        )?)
    }

    fn active_bans(&mut self, now: SystemTime) -> Result<Vec<BanRow>, StoreError> {
        self.query_bans(
            &format!("SELECT {COLUMNS} FROM bans WHERE ended IS NULL AND (expires IS NULL OR expires > ?1) ORDER BY start, id"),
            params![secs(now)],
        )
    }

    fn prior_bans(&mut self, target: IpNet, since: SystemTime) -> Result<u32, StoreError> {
        let n: i64 = self.conn.prepare_cached("SELECT count(*) FROM bans WHERE target = ?1 AND start >= ?2 AND (end_reason IS NULL OR end_reason != 'replaced')")?
            .query_row(params![target.to_string(), secs(since)], |r| r.get(0))?;
        Ok(n.max(0) as u32)
    }

    fn bans_since(&mut self, since: SystemTime) -> Result<Vec<BanRow>, StoreError> {
        self.query_bans(
            &format!("SELECT {COLUMNS} FROM bans WHERE start >= ?1 ORDER BY start, id"),
            params![secs(since)],
        )
    }

    fn history(&mut self, target: IpNet, limit: usize) -> Result<Vec<BanRow>, StoreError> {
        self.query_bans(
            &format!(
                "SELECT {COLUMNS} FROM bans WHERE target = ?1 ORDER BY start DESC, id DESC LIMIT ?2"
            ),
            params![target.to_string(), limit as i64],
        )
    }

    fn load_checkpoint(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM checkpoints WHERE key = ?1")?
            .query_row(params![key], |r| r.get(0))
            .optional()?)
    }

    fn save_checkpoint(
        &mut self,
        key: &str,
        value: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO checkpoints (key, value, updated) VALUES (?1, ?2, ?3)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            )?
            .execute(params![key, value, secs(now)])?;
        Ok(())
    }

    fn record_observations(&mut self, obs: &[Observation]) -> Result<(), StoreError> {
        if obs.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("INSERT INTO observations (time, addr, rule, user, source) VALUES (?1, ?2, ?3, ?4, ?5)")?;
            for o in obs {
                let user = o.user.as_deref().map(|u| truncate(u, MAX_USER));
                stmt.execute(params![
                    secs(o.time),
                    o.addr.to_string(),
                    &*o.rule,
                    user,
                    &*o.source
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn observations_since(
        &mut self,
        since: SystemTime,
        limit: usize,
    ) -> Result<Vec<Observation>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT time, addr, rule, user, source FROM (
                SELECT rowid, time, addr, rule, user, source FROM observations WHERE time >= ?1 ORDER BY time DESC, rowid DESC LIMIT ?2
             ) ORDER BY time, rowid",
        )?;
        let rows = stmt.query_map(params![secs(since), limit as i64], row_to_observation)?;
        collect_observations(rows)
    }

    fn observations_of(
        &mut self,
        addr: IpAddr,
        limit: usize,
    ) -> Result<Vec<Observation>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT time, addr, rule, user, source FROM observations WHERE addr = ?1 ORDER BY time DESC, rowid DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![addr.to_string(), limit as i64], row_to_observation)?;
        collect_observations(rows)
    }

    fn prune_observations(
        &mut self,
        now: SystemTime,
        keep: Duration,
        max_rows: usize,
    ) -> Result<usize, StoreError> {
        let cutoff = secs(now) - keep.as_secs() as i64;
        let mut n = self
            .conn
            .execute("DELETE FROM observations WHERE time < ?1", params![cutoff])?;
        n += self.conn.execute(
            "DELETE FROM observations WHERE rowid <= (SELECT rowid FROM observations ORDER BY rowid DESC LIMIT 1 OFFSET ?1)",
            params![max_rows as i64],
        )?;
        Ok(n)
    }

    fn prune(&mut self, now: SystemTime, retention: Duration) -> Result<usize, StoreError> {
        let cutoff = secs(now) - retention.as_secs() as i64;
        let bans = self.conn.execute(
            "DELETE FROM bans WHERE start < ?1 AND (ended IS NOT NULL OR (expires IS NOT NULL AND expires < ?1))",
            params![cutoff],
        )?;
        let cps = self.conn.execute(
            "DELETE FROM checkpoints WHERE updated < ?1",
            params![cutoff],
        )?;
        Ok(bans + cps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(target: &str, start: u64, len: Option<u64>) -> BanRow {
        BanRow {
            id: 0,
            target: target.parse().unwrap(),
            jail: "sshd".into(),
            reason: "5 failures in 10m".into(),
            level: 0,
            detector: "threshold".into(),
            start: from_unix_secs(start),
            expires: len.map(|l| from_unix_secs(start + l)),
            ended: None,
        }
    }

    #[test]
    fn bans_round_trip_expire_end_and_count_as_history() {
        let mut s = SqliteStore::in_memory().unwrap();
        s.insert_ban(&ban("203.0.113.7/32", 1000, Some(600)))
            .unwrap();
        s.insert_ban(&ban("2001:db8::/64", 1000, None)).unwrap();
        let active = s.active_bans(from_unix_secs(1100)).unwrap();
        assert_eq!(active.len(), 2);
        assert_eq!(active[0].target.to_string(), "203.0.113.7/32");
        assert!(active[1].expires.is_none());
        // Expired by time.
        assert_eq!(s.active_bans(from_unix_secs(1601)).unwrap().len(), 1);
        // Ended by unban.
        assert_eq!(
            s.end_ban(
                "2001:db8::/64".parse().unwrap(),
                from_unix_secs(1700),
                "manual"
            )
            .unwrap(),
            1
        );
        assert!(s.active_bans(from_unix_secs(1701)).unwrap().is_empty());
        // History counts both bans of the address, replaced rows do not double count.
        s.insert_ban(&ban("203.0.113.7/32", 2000, Some(1200)))
            .unwrap();
        s.insert_ban(&ban("203.0.113.7/32", 2100, Some(1200)))
            .unwrap(); // replaces the one from 2000
        assert_eq!(
            s.prior_bans("203.0.113.7/32".parse().unwrap(), from_unix_secs(0))
                .unwrap(),
            2
        );
        assert_eq!(s.active_bans(from_unix_secs(2200)).unwrap().len(), 1);
        let h = s.history("203.0.113.7/32".parse().unwrap(), 10).unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[1].ended.as_ref().map(|e| e.1.as_str()), Some("replaced"));
    }

    #[test]
    fn checkpoints_persist_and_retention_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        {
            let mut s = SqliteStore::open(&path).unwrap();
            s.save_checkpoint("file:auth", "1:2:300", from_unix_secs(10))
                .unwrap();
            s.save_checkpoint("file:auth", "1:2:400", from_unix_secs(20))
                .unwrap();
            s.insert_ban(&ban("198.51.100.1/32", 100, Some(10)))
                .unwrap();
        }
        let mut s = SqliteStore::open(&path).unwrap();
        assert_eq!(
            s.load_checkpoint("file:auth").unwrap().as_deref(),
            Some("1:2:400")
        );
        assert_eq!(s.load_checkpoint("nope").unwrap(), None);
        let day = Duration::from_secs(86_400);
        assert_eq!(s.prune(from_unix_secs(100 + 86_400 * 2), day).unwrap(), 2);
        assert_eq!(
            s.history("198.51.100.1/32".parse().unwrap(), 10)
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn a_newer_schema_or_garbage_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let err = SqliteStore::open(&path).unwrap_err().to_string();
        assert!(err.contains("upgrade ravelin"), "{err}");
        let junk = dir.path().join("junk.db");
        std::fs::write(
            &junk,
            b"this is not a database, it is a text file of some length......",
        )
        .unwrap();
        let err = SqliteStore::open(&junk).unwrap_err().to_string();
        assert!(
            err.contains("cannot open the store") && err.contains("move the file aside"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod observation_tests {
    use super::*;

    fn obs(t: u64, addr: &str, user: Option<&str>) -> Observation {
        Observation {
            time: from_unix_secs(t),
            addr: addr.parse().unwrap(),
            user: user.map(str::to_string),
            rule: Arc::from("sshd.failed-password"),
            source: Arc::from("auth"),
        }
    }

    #[test]
    fn observations_round_trip_are_bounded_and_pruned() {
        let mut s = SqliteStore::in_memory().unwrap();
        let long = "x".repeat(1000);
        s.record_observations(&[
            obs(10, "203.0.113.1", Some("root")),
            obs(20, "2001:db8::1", None),
            obs(30, "203.0.113.1", Some(&long)),
        ])
        .unwrap();
        let all = s.observations_since(from_unix_secs(0), 100).unwrap();
        assert_eq!(
            all.iter()
                .map(|o| crate::clock::unix_secs(o.time))
                .collect::<Vec<_>>(),
            vec![10, 20, 30]
        );
        // The limit keeps the newest, still oldest first.
        let two = s.observations_since(from_unix_secs(0), 2).unwrap();
        assert_eq!(
            two.iter()
                .map(|o| crate::clock::unix_secs(o.time))
                .collect::<Vec<_>>(),
            vec![20, 30]
        );
        let mine = s
            .observations_of("203.0.113.1".parse().unwrap(), 10)
            .unwrap();
        assert_eq!(mine.len(), 2);
        assert_eq!(
            mine[0].user.as_ref().unwrap().len(),
            MAX_USER,
            "client-controlled user names are cut"
        );
        assert_eq!(mine[1].user.as_deref(), Some("root"));
        // Age and row-count limits.
        assert_eq!(
            s.prune_observations(from_unix_secs(25), Duration::from_secs(10), 100)
                .unwrap(),
            1
        );
        assert_eq!(
            s.prune_observations(from_unix_secs(25), Duration::from_secs(100), 1)
                .unwrap(),
            1
        );
        assert_eq!(
            s.observations_since(from_unix_secs(0), 100).unwrap().len(),
            1
        );
    }
}
