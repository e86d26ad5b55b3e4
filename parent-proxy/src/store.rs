//! Storage of what the enclave cannot keep: the KMS-encrypted root key, the root-key check
//! value, the newest sealed snapshot of the enclave's state, the sealed key blobs and the
//! audit chain (the enclave's log: the snapshot plus the records after it is the state). Everything
//! here is encrypted by KMS, sealed or signed by the enclave; the store is untrusted and the
//! enclave (or, for the audit chain, the auditor) checks whatever comes back from it.

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OptionalExtension, params};
use strongroom_protocol::messages::{AuditRecord, Effects};

/// A storage failure.
#[derive(Clone, Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreError(String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e.to_string())
    }
}

/// What the proxy keeps about the root key between boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootRecord {
    /// The KMS key the blob belongs to.
    pub kms_key_id: String,
    /// KMS `CiphertextBlob` of the root key.
    pub ciphertext_blob: Vec<u8>,
    /// Root-key check value, once the enclave has returned it.
    pub key_check: Option<Vec<u8>>,
    /// The newest sealed snapshot of the enclave's state, once one was taken.
    pub snapshot: Option<Vec<u8>>,
    /// Its position: the sequence number of the first record after it.
    pub snapshot_seq: u64,
}

/// A small storage interface, so a PostgreSQL backend can sit beside SQLite.
pub trait Store: Send + Sync + 'static {
    /// The root record, if a first boot happened.
    fn root(&self) -> Result<Option<RootRecord>, StoreError>;
    /// Records the KMS ciphertext blob of a new root key (first boot).
    fn put_root_blob(&self, kms_key_id: &str, ciphertext_blob: &[u8]) -> Result<(), StoreError>;
    /// Records the check value and boot audit entry the enclave returned when it unsealed.
    fn put_unsealed(&self, key_check: &[u8], audit: &[AuditRecord]) -> Result<(), StoreError>;
    /// Keeps a sealed snapshot taken at position `seq` if it is newer than the stored one.
    fn put_snapshot(&self, seq: u64, snapshot: &[u8]) -> Result<(), StoreError>;
    /// Queues what an enclave answer asks to store — a created key's blob, a destroyed
    /// key's removal, a pending request's key, audit entries — for the next group commit,
    /// which applies it atomically; the result arrives once it is on disk.
    fn apply(&self, effects: Effects) -> Commit;
    /// Stores audit entries (again): one already stored with the same line is skipped,
    /// one stored with a different line is an error (two chains: a state rollback).
    fn put_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError>;
    /// A sealed key blob by id.
    fn key(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` sealed key blobs in id order, after `after` if given.
    fn key_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// The key with this Ethereum address (any case), as the enclave reported it.
    fn key_by_address(&self, address: &str) -> Result<Option<String>, StoreError>;
    /// How many audit entries are stored without a gap from entry 0.
    fn audit_stored(&self) -> Result<u64, StoreError>;
    /// Up to `limit` audit lines from `from` on, in order, with their sequence numbers.
    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError>;
    /// The key a pending request will sign with.
    fn request_key(&self, request_id: &str) -> Result<Option<String>, StoreError>;
}

/// Where the result of one queued [`Store::apply`] arrives: await it, or
/// `blocking_recv` it outside async code.
pub type Commit = tokio::sync::oneshot::Receiver<Result<(), StoreError>>;

/// An answer's effects waiting for the next commit, and where its result goes.
type Waiting = (
    Effects,
    tokio::sync::oneshot::Sender<Result<(), StoreError>>,
);

/// How long a connection waits for SQLite's file lock before an operation fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The most answers one commit takes; the rest wait for the next (bounds a transaction).
const MAX_BATCH: usize = 256;

/// The embedded default: one SQLite file in WAL mode, with a connection for reads (which
/// WAL lets run while a commit waits for the disk) and one for writes, used by a commit
/// thread that groups every answer queued while the previous commit was syncing.
pub struct SqliteStore {
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

/// Layout version, in SQLite's `user_version` (4: the enclave's state as a log; `state`
/// holds a snapshot whose position is `state_seq`).
const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS root (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    kms_key_id TEXT NOT NULL,
    ciphertext_blob BLOB NOT NULL,
    key_check BLOB,
    state BLOB,
    state_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    sealed BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    address TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS keys_address ON keys (address);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    line TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL
);
";

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let has_tables: i64 = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'root'",
            [],
            |r| r.get(0),
        )?;
        if has_tables > 0 && version != SCHEMA_VERSION {
            let what = if version < SCHEMA_VERSION {
                "an earlier Strongroom release, whose enclave kept its state as one sealed blob; \
                 this release keeps it as a log of audit records and cannot read the old blob"
            } else {
                "a later Strongroom release"
            };
            return Err(StoreError(format!(
                "{} was written by {what} (layout {version}, this release reads layout \
                 {SCHEMA_VERSION}). Keep running the release that wrote it, or move it aside \
                 and start this release with a fresh data directory (a new first boot with \
                 your genesis; keys of the old deployment stay with the old database)",
                path.display()
            )));
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        // A read may meet a WAL checkpoint, a write a reader's recovery: wait, not fail.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let reader = Connection::open(path)?;
        reader.busy_timeout(BUSY_TIMEOUT)?;
        let writer = Arc::new(Mutex::new(conn));
        let (queue, pending) = mpsc::channel();
        let committer = Arc::clone(&writer);
        std::thread::Builder::new()
            .name("sqlite-commit".into())
            .spawn(move || commit_loop(&committer, &pending))
            .map_err(|e| StoreError(format!("starting the commit thread: {e}")))?;
        Ok(Self {
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
}

/// Runs `f` on the connection behind `conn`, once no one else holds it.
fn run_on<T>(
    conn: &Mutex<Connection>,
    f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut conn = conn
        .lock()
        .map_err(|_| StoreError("database lock poisoned".into()))?;
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

impl Store for SqliteStore {
    fn root(&self) -> Result<Option<RootRecord>, StoreError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT kms_key_id, ciphertext_blob, key_check, state, state_seq FROM root WHERE id = 1",
                [],
                |r| {
                    Ok(RootRecord {
                        kms_key_id: r.get(0)?,
                        ciphertext_blob: r.get(1)?,
                        key_check: r.get(2)?,
                        snapshot: r.get(3)?,
                        snapshot_seq: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                    })
                },
            )
            .optional()?)
        })
    }

    fn put_root_blob(&self, kms_key_id: &str, ciphertext_blob: &[u8]) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "INSERT INTO root (id, kms_key_id, ciphertext_blob) VALUES (1, ?1, ?2)",
                params![kms_key_id, ciphertext_blob],
            )?;
            Ok(())
        })
    }

    fn put_unsealed(&self, key_check: &[u8], audit: &[AuditRecord]) -> Result<(), StoreError> {
        self.write(|c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE root SET key_check = ?1 WHERE id = 1",
                params![key_check],
            )?;
            if n != 1 {
                return Err(StoreError("no root record to update".into()));
            }
            insert_audit(&tx, audit)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn put_snapshot(&self, seq: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "UPDATE root SET state = ?1, state_seq = ?2
                 WHERE id = 1 AND (state IS NULL OR state_seq < ?2)",
                params![snapshot, i64::try_from(seq).unwrap_or(i64::MAX)],
            )?;
            Ok(())
        })
    }

    fn put_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        self.write(|c| {
            let tx = c.transaction()?;
            insert_audit(&tx, records)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn key_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT id, sealed FROM keys WHERE id > ?1 ORDER BY id LIMIT ?2")?;
            let rows = stmt.query_map(
                params![
                    after.unwrap_or(""),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn key_by_address(&self, address: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT id FROM keys WHERE address = ?1",
                [address.to_ascii_lowercase()],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    fn audit_stored(&self) -> Result<u64, StoreError> {
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
            Ok(u64::try_from(contiguous).unwrap_or(0))
        })
    }

    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, line FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(
                params![
                    i64::try_from(from).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| Ok((u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0), r.get(1)?)),
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn apply(&self, effects: Effects) -> Commit {
        let (done, commit) = tokio::sync::oneshot::channel();
        if let Err(mpsc::SendError((_, done))) = self.queue.send((effects, done)) {
            let _ = done.send(Err(StoreError("the commit thread has stopped".into())));
        }
        commit
    }

    fn key(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            // On every signing call: parsed once per connection.
            Ok(c.prepare_cached("SELECT sealed FROM keys WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?)
        })
    }

    fn request_key(&self, request_id: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(
                c.prepare_cached("SELECT key_id FROM requests WHERE id = ?1")?
                    .query_row([request_id], |r| r.get(0))
                    .optional()?,
            )
        })
    }
}

/// Commits a batch of effects in one transaction, each under its own savepoint; one
/// result per effect (all fail if the transaction itself cannot be begun or committed).
fn commit_batch(conn: &mut Connection, batch: &[Waiting]) -> Vec<Result<(), StoreError>> {
    let all = |e: rusqlite::Error| {
        let message = e.to_string();
        batch
            .iter()
            .map(|_| Err(StoreError(message.clone())))
            .collect()
    };
    let mut tx = match conn.transaction() {
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
            "INSERT INTO keys (id, sealed, created_at, seq, address)
             VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM keys), ?4)",
            params![
                created.info.id,
                created.sealed.as_slice(),
                i64::try_from(created.info.created_at).unwrap_or(i64::MAX),
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
/// sequence number is refused.
fn insert_audit(tx: &Connection, records: &[AuditRecord]) -> Result<(), StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO audit (seq, line) VALUES (?1, ?2) ON CONFLICT (seq) DO NOTHING",
    )?;
    for r in records {
        let seq = i64::try_from(r.seq).map_err(|_| StoreError("audit seq out of range".into()))?;
        if insert.execute(params![seq, r.line])? == 0 {
            let stored: String =
                tx.query_row("SELECT line FROM audit WHERE seq = ?1", [seq], |row| {
                    row.get(0)
                })?;
            if stored != r.line {
                return Err(StoreError(format!(
                    "audit entry {} differs from the one stored under that number: the \
                     enclave's state was rolled back or two enclaves share this database",
                    r.seq
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strongroom_protocol::messages::{CreatedKey, KeyInfo, PendingRef};

    /// Queues `effects` and waits for their commit.
    fn commit(s: &SqliteStore, effects: Effects) -> Result<(), StoreError> {
        s.apply(effects).blocking_recv().unwrap()
    }

    fn temp_db() -> std::path::PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir().join(format!(
            "strongroom-store-{}-{nanos}/db.sqlite",
            std::process::id()
        ))
    }

    fn audit(seq: u64, line: &str) -> AuditRecord {
        AuditRecord {
            seq,
            line: line.into(),
        }
    }

    #[test]
    fn audit_entries_are_kept_in_order_and_never_replaced() {
        let path = temp_db();
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.audit_stored().unwrap(), 0);
        s.put_audit(&[audit(0, "e0"), audit(1, "e1")]).unwrap();
        assert_eq!(s.audit_stored().unwrap(), 2);
        // Out of order: 3 before 2.
        commit(
            &s,
            Effects {
                audit: vec![audit(3, "e3")],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.audit_stored().unwrap(), 2, "entry 2 is missing");
        s.put_audit(&[audit(2, "e2"), audit(3, "e3")]).unwrap();
        assert_eq!(
            s.audit_stored().unwrap(),
            4,
            "the same line again is a no-op"
        );
        let e = s.put_audit(&[audit(1, "forged")]).unwrap_err();
        assert!(e.to_string().contains("rolled back"), "{e}");
        // A failed batch stores nothing of itself.
        assert!(s.put_audit(&[audit(4, "e4"), audit(0, "x")]).is_err());
        assert_eq!(s.audit_stored().unwrap(), 4);
        let lines: Vec<_> = s.audit_range(1, 2).unwrap();
        assert_eq!(lines, [(1, "e1".to_string()), (2, "e2".to_string())]);
        assert!(s.audit_range(9, 10).unwrap().is_empty());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn concurrent_answers_commit_together_and_fail_alone() {
        let path = temp_db();
        let s = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
        commit(&s, created("k", b"sealed", 1)).unwrap();
        let threads: Vec<_> = (0..16u64)
            .map(|i| {
                let s = std::sync::Arc::clone(&s);
                std::thread::spawn(move || {
                    // Every fourth one also re-creates key "k": refused, and only it.
                    let mut effects = if i % 4 == 3 {
                        created("k", b"again", 2)
                    } else {
                        Effects::default()
                    };
                    effects.audit = vec![audit(i, &format!("e{i}"))];
                    (i, commit(&s, effects))
                })
            })
            .collect();
        for t in threads {
            let (i, result) = t.join().unwrap();
            assert_eq!(result.is_err(), i % 4 == 3, "answer {i}: {result:?}");
        }
        let stored: Vec<u64> = s
            .audit_range(0, 100)
            .unwrap()
            .iter()
            .map(|(q, _)| *q)
            .collect();
        let expected: Vec<u64> = (0..16).filter(|i| i % 4 != 3).collect();
        assert_eq!(
            stored, expected,
            "the refused answers' entries went with them"
        );
        assert_eq!(s.key("k").unwrap().as_deref(), Some(&b"sealed"[..]));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    fn created(id: &str, sealed: &[u8], at: u64) -> Effects {
        Effects {
            key_created: Some(CreatedKey {
                info: KeyInfo {
                    id: id.into(),
                    label: "l".into(),
                    curve: "secp256k1".into(),
                    public_key: vec![4; 65].into(),
                    address: format!("0x{id}{id}")
                        .to_ascii_uppercase()
                        .replace("0X", "0x"),
                    created_at: at,
                },
                sealed: sealed.to_vec().into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_real_file_keeps_everything_across_reopen() {
        let path = temp_db();
        {
            let s = SqliteStore::open(&path).unwrap();
            assert_eq!(s.root().unwrap(), None);
            s.put_root_blob("alias/k", b"blob").unwrap();
            assert!(
                s.put_root_blob("alias/k", b"again").is_err(),
                "one root only"
            );
            s.put_unsealed(b"kcv", &[audit(0, "boot")]).unwrap();
            s.put_snapshot(1, b"snapshot1").unwrap();
            commit(&s, created("b", b"sealed-b", 2)).unwrap();
            commit(&s, created("a", b"sealed-a", 1)).unwrap();
            assert!(commit(&s, created("a", b"dup", 3)).is_err());
            commit(
                &s,
                Effects {
                    pending_request: Some(PendingRef {
                        request_id: "r1".into(),
                        key_id: "a".into(),
                    }),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let root = s.root().unwrap().unwrap();
        assert_eq!(root.ciphertext_blob, b"blob");
        assert_eq!(root.key_check.as_deref(), Some(&b"kcv"[..]));
        assert_eq!(s.request_key("r1").unwrap().as_deref(), Some("a"));
        assert_eq!(s.request_key("r2").unwrap(), None);
        let ids: Vec<_> = s
            .key_page(None, 10)
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(ids, ["a", "b"], "id order");
        let after: Vec<_> = s.key_page(Some("a"), 10).unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(s.key_page(None, 1).unwrap().len(), 1);
        assert_eq!(s.key_by_address("0xaA").unwrap().as_deref(), Some("a"));
        assert_eq!(s.audit_range(0, 10).unwrap(), [(0, "boot".to_string())]);
        assert_eq!(root.snapshot.as_deref(), Some(&b"snapshot1"[..]));
        commit(
            &s,
            Effects {
                key_destroyed: Some("b".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.key("b").unwrap(), None);
        assert_eq!(s.key("a").unwrap().as_deref(), Some(&b"sealed-a"[..]));
        // A newer snapshot replaces the stored one; an older one taken late does not.
        s.put_snapshot(3, b"snapshot3").unwrap();
        s.put_snapshot(2, b"snapshot2").unwrap();
        let root = s.root().unwrap().unwrap();
        assert_eq!(root.snapshot.as_deref(), Some(&b"snapshot3"[..]));
        assert_eq!(root.snapshot_seq, 3);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_database_of_another_layout_is_refused() {
        let path = temp_db();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE root (id INTEGER PRIMARY KEY);")
                .unwrap();
        }
        let e = SqliteStore::open(&path).unwrap_err();
        assert!(e.to_string().contains("earlier Strongroom release"), "{e}");
        assert!(e.to_string().contains("fresh data directory"), "{e}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
