//! The embedded default: one SQLite file in WAL mode, with a connection for reads (which
//! WAL lets run while a commit waits for the disk) and one for writes, used by a commit
//! thread that groups every answer queued while the previous commit was syncing. Several
//! processes may open one file (SQLite's lock orders them); the conformance suite does.

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use strongroom_protocol::messages::{AuditRecord, Effects};

use crate::layout::{self, SQLITE_OLDEST, SQLITE_STEPS};
use crate::{AppendLock, RootRecord, Store, StoreError, to_i64, to_u64};

/// An answer's effects waiting for the next commit, and where its result goes.
type Waiting = (
    Effects,
    tokio::sync::oneshot::Sender<Result<(), StoreError>>,
);

/// How long a connection waits for SQLite's file lock before an operation fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The most answers one commit takes; the rest wait for the next (bounds a transaction).
const MAX_BATCH: usize = 256;

/// One SQLite file.
pub struct SqliteStore {
    /// `<file>.append-lock`: an exclusive file lock between processes sharing the file.
    lock_path: std::path::PathBuf,
    reader: Mutex<Connection>,
    writer: Arc<Mutex<Connection>>,
    /// The commit thread's queue.
    queue: mpsc::Sender<Waiting>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and migrates its layout.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("{}: {e}", dir.display())))?;
        }
        let location = path.display().to_string();
        let mut conn = Connection::open(path)?;
        // A read may meet a WAL checkpoint, a write a reader's recovery: wait, not fail.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
        migrate(&mut conn, &location)?;
        let reader = Connection::open(path)?;
        reader.busy_timeout(BUSY_TIMEOUT)?;
        let writer = Arc::new(Mutex::new(conn));
        let (queue, pending) = mpsc::channel();
        let committer = Arc::clone(&writer);
        std::thread::Builder::new()
            .name("sqlite-commit".into())
            .spawn(move || commit_loop(&committer, &pending))
            .map_err(|e| StoreError::Backend(format!("starting the commit thread: {e}")))?;
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".append-lock");
        Ok(Self {
            lock_path: lock_path.into(),
            reader: Mutex::new(reader),
            writer,
            queue,
        })
    }

    /// Runs `f` on the read connection.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        run_on(&self.reader, f)
    }

    /// Runs `f` on the write connection (between group commits).
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        run_on(&self.writer, f)
    }

    /// Sets the layout number a database claims (tests: a database from another release).
    #[cfg(feature = "testing")]
    pub fn set_layout(path: &Path, layout: i64) -> Result<(), StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "user_version", layout)?;
        Ok(())
    }
}

/// Brings the file to [`layout::LAYOUT`]: each step in its own write transaction, the
/// layout read again under the lock, so processes opening one file at once migrate it once.
fn migrate(conn: &mut Connection, location: &str) -> Result<(), StoreError> {
    let found = layout_of(conn)?;
    if found != 0 {
        layout::check(location, found, SQLITE_OLDEST)?;
    }
    for (to, sql) in layout::steps_from(SQLITE_STEPS, found) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = layout_of(&tx)?;
        if now >= *to {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", to)?;
        tx.commit()?;
        tracing::info!(location, layout = to, "database layout migrated");
    }
    Ok(())
}

/// The layout in `user_version`; 0 for a file without Strongroom's tables, and also for
/// one with tables but no number (the layouts before numbering, refused by the check).
fn layout_of(conn: &Connection) -> Result<i64, StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let has_tables: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'root'",
        [],
        |r| r.get(0),
    )?;
    Ok(if has_tables > 0 && version == 0 {
        -1
    } else {
        version
    })
}

/// Runs `f` on the connection behind `conn`, once no one else holds it.
fn run_on<T>(
    conn: &Mutex<Connection>,
    f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut conn = conn
        .lock()
        .map_err(|_| StoreError::Backend("database lock poisoned".into()))?;
    f(&mut conn)
}

/// The commit thread: takes every answer queued since the last commit (at most
/// [`MAX_BATCH`]) into one transaction, so one fsync serves them all. Ends when the store
/// is dropped.
fn commit_loop(writer: &Mutex<Connection>, pending: &mpsc::Receiver<Waiting>) {
    while let Ok(first) = pending.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let results = run_on(writer, |conn| Ok(commit_batch(conn, &batch)))
            .unwrap_or_else(|e| batch.iter().map(|_| Err(e.clone())).collect());
        for ((_, done), result) in batch.into_iter().zip(results) {
            // The answer may have been given up on (its client left); nothing to tell.
            let _ = done.send(result);
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn root(&self) -> Result<Option<RootRecord>, StoreError> {
        self.with(|c| {
            let row = c
                .query_row(
                    "SELECT kms_key_id, ciphertext_blob, key_check, state, state_seq
                     FROM root WHERE id = 1",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, Vec<u8>>(1)?,
                            r.get::<_, Option<Vec<u8>>>(2)?,
                            r.get::<_, Option<Vec<u8>>>(3)?,
                            r.get::<_, i64>(4)?,
                        ))
                    },
                )
                .optional()?;
            row.map(|(kms_key_id, ciphertext_blob, key_check, snapshot, seq)| {
                Ok(RootRecord {
                    kms_key_id,
                    ciphertext_blob,
                    key_check,
                    snapshot,
                    snapshot_seq: to_u64(seq, "snapshot position")?,
                })
            })
            .transpose()
        })
    }

    async fn put_root_blob(
        &self,
        kms_key_id: &str,
        ciphertext_blob: &[u8],
    ) -> Result<(), StoreError> {
        self.write(|c| {
            let n = c.execute(
                "INSERT INTO root (id, kms_key_id, ciphertext_blob) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO NOTHING",
                params![kms_key_id, ciphertext_blob],
            )?;
            if n == 0 {
                return Err(StoreError::RootExists);
            }
            Ok(())
        })
    }

    async fn put_unsealed(
        &self,
        key_check: &[u8],
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored: Option<Option<Vec<u8>>> = tx
                .query_row("SELECT key_check FROM root WHERE id = 1", [], |r| r.get(0))
                .optional()?;
            if crate::check_unsealed(stored, key_check)? {
                tx.execute(
                    "UPDATE root SET key_check = ?1 WHERE id = 1",
                    params![key_check],
                )?;
            }
            insert_audit(&tx, audit)?;
            tx.commit()?;
            Ok(())
        })
    }

    async fn put_snapshot(&self, seq: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        let seq = to_i64(seq, "snapshot position")?;
        self.write(|c| {
            c.execute(
                "UPDATE root SET state = ?1, state_seq = ?2
                 WHERE id = 1 AND (state IS NULL OR state_seq < ?2)",
                params![snapshot, seq],
            )?;
            Ok(())
        })
    }

    async fn apply(&self, effects: Effects) -> Result<(), StoreError> {
        let (done, commit) = tokio::sync::oneshot::channel();
        if let Err(mpsc::SendError((_, done))) = self.queue.send((effects, done)) {
            let _ = done.send(Err(StoreError::Backend(
                "the commit thread has stopped".into(),
            )));
        }
        commit
            .await
            .map_err(|_| StoreError::Backend("the commit thread has stopped".into()))?
    }

    async fn put_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            insert_audit(&tx, records)?;
            tx.commit()?;
            Ok(())
        })
    }

    async fn key(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            // On every signing call: parsed once per connection.
            Ok(c.prepare_cached("SELECT sealed FROM keys WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?)
        })
    }

    async fn key_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT id, sealed FROM keys WHERE id > ?1 ORDER BY id LIMIT ?2")?;
            let rows = stmt.query_map(params![after.unwrap_or(""), limit], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn key_by_address(&self, address: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(c.prepare_cached("SELECT id FROM keys WHERE address = ?1")?
                .query_row([address.to_ascii_lowercase()], |r| r.get(0))
                .optional()?)
        })
    }

    async fn audit_stored(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            let (count, max): (i64, Option<i64>) =
                c.query_row("SELECT COUNT(*), MAX(seq) FROM audit", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let has_zero = c
                .query_row("SELECT 1 FROM audit WHERE seq = 0", [], |_| Ok(()))
                .optional()?
                .is_some();
            let contiguous = match max {
                _ if !has_zero => 0,
                Some(m) if m + 1 == count => count,
                // A gap: one past the first entry whose successor is missing.
                _ => c.query_row(
                    "SELECT MIN(a.seq) + 1 FROM audit a
                     WHERE NOT EXISTS (SELECT 1 FROM audit b WHERE b.seq = a.seq + 1)",
                    [],
                    |r| r.get(0),
                )?,
            };
            to_u64(contiguous, "audit count")
        })
    }

    async fn audit_head(&self) -> Result<Option<u64>, StoreError> {
        self.with(|c| {
            let max: Option<i64> = c.query_row("SELECT MAX(seq) FROM audit", [], |r| r.get(0))?;
            max.map(|m| to_u64(m, "audit seq")).transpose()
        })
    }

    async fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, line FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![from, limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            rows.map(|row| {
                let (seq, line) = row?;
                Ok((to_u64(seq, "audit seq")?, line))
            })
            .collect()
        })
    }

    async fn lock_appends(&self) -> Result<Box<dyn AppendLock>, StoreError> {
        let path = self.lock_path.clone();
        let file = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
            file.lock()
                .map_err(|e| StoreError::Backend(format!("locking {}: {e}", path.display())))?;
            Ok::<_, StoreError>(file)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
        Ok(Box::new(FileLock(file)))
    }

    async fn request_key(&self, request_id: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(
                c.prepare_cached("SELECT key_id FROM requests WHERE id = ?1")?
                    .query_row([request_id], |r| r.get(0))
                    .optional()?,
            )
        })
    }
}

/// A held file lock; closing the file releases it.
struct FileLock(std::fs::File);

#[async_trait]
impl AppendLock for FileLock {
    async fn release(self: Box<Self>) -> Result<(), StoreError> {
        self.0
            .unlock()
            .map_err(|e| StoreError::Backend(format!("unlocking: {e}")))
    }
}

/// Commits a batch of effects in one transaction, each under its own savepoint; one
/// result per effect (all fail if the transaction itself cannot be begun or committed).
fn commit_batch(conn: &mut Connection, batch: &[Waiting]) -> Vec<Result<(), StoreError>> {
    let all = |e: rusqlite::Error| {
        let e = StoreError::from(e);
        batch.iter().map(|_| Err(e.clone())).collect()
    };
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return all(e),
    };
    let mut results = Vec::with_capacity(batch.len());
    for (effects, _) in batch {
        let result = tx.savepoint().map_err(StoreError::from).and_then(|sp| {
            apply_effects(&sp, effects)?;
            sp.commit().map_err(StoreError::from)
        });
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => all(e),
    }
}

/// Stores what one answer asks to store.
fn apply_effects(tx: &Connection, effects: &Effects) -> Result<(), StoreError> {
    if let Some(created) = &effects.key_created {
        tx.execute(
            "INSERT INTO keys (id, sealed, created_at, address) VALUES (?1, ?2, ?3, ?4)",
            params![
                created.info.id,
                created.sealed.as_slice(),
                to_i64(created.info.created_at, "creation time")?,
                created.info.address.to_ascii_lowercase(),
            ],
        )?;
    }
    if let Some(id) = &effects.key_destroyed {
        tx.execute("DELETE FROM keys WHERE id = ?1", [id])?;
    }
    if let Some(pending) = &effects.pending_request {
        tx.execute(
            "INSERT OR REPLACE INTO requests (id, key_id) VALUES (?1, ?2)",
            params![pending.request_id, pending.key_id],
        )?;
    }
    insert_audit(tx, &effects.audit)?;
    Ok(())
}

/// Inserts audit lines; the same line again is a no-op, another line under a stored
/// sequence number is [`StoreError::AuditConflict`].
fn insert_audit(tx: &Connection, records: &[AuditRecord]) -> Result<(), StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO audit (seq, line) VALUES (?1, ?2) ON CONFLICT (seq) DO NOTHING",
    )?;
    for r in records {
        let seq = to_i64(r.seq, "audit seq")?;
        if insert.execute(params![seq, r.line])? == 0 {
            let stored: String =
                tx.query_row("SELECT line FROM audit WHERE seq = ?1", [seq], |row| {
                    row.get(0)
                })?;
            if stored != r.line {
                return Err(StoreError::AuditConflict { seq: r.seq });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_layout_4_file_is_migrated_with_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SQLITE_STEPS[0].1).unwrap();
            c.execute(
                "INSERT INTO keys (id, sealed, created_at, seq, address) VALUES ('a', x'01', 1, 1, '0xaa')",
                [],
            )
            .unwrap();
            c.pragma_update(None, "user_version", 4).unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.key("a").await.unwrap(), Some(vec![1]));
        let layout: i64 = s
            .with(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(layout, layout::LAYOUT);
        drop(s);
        SqliteStore::open(&path).unwrap();
    }

    #[test]
    fn a_file_of_an_unnumbered_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE root (id INTEGER PRIMARY KEY);")
            .unwrap();
        let e = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(e, StoreError::Layout { found: -1, .. }), "{e}");
        assert!(e.to_string().contains("earlier Strongroom release"), "{e}");
        assert!(e.to_string().contains("fresh database"), "{e}");
    }
}
