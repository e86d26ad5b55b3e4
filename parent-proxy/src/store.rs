//! Storage of what the enclave cannot keep: the KMS-encrypted root key, the root-key check
//! value, the sealed enclave state and the sealed key blobs. Everything here is either
//! encrypted by KMS or sealed by the enclave; the store is untrusted and the enclave checks
//! whatever comes back from it.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
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
    /// Latest sealed enclave state, once the enclave has returned it.
    pub state: Option<Vec<u8>>,
}

/// A small storage interface, so a PostgreSQL backend can sit beside SQLite.
pub trait Store: Send + Sync + 'static {
    /// The root record, if a first boot happened.
    fn root(&self) -> Result<Option<RootRecord>, StoreError>;
    /// Records the KMS ciphertext blob of a new root key (first boot).
    fn put_root_blob(&self, kms_key_id: &str, ciphertext_blob: &[u8]) -> Result<(), StoreError>;
    /// Records the check value and state the enclave returned when it unsealed.
    fn put_unsealed(&self, key_check: &[u8], state: &[u8]) -> Result<(), StoreError>;
    /// Stores a new sealed key blob.
    fn insert_key(&self, id: &str, sealed: &[u8], created_at: u64) -> Result<(), StoreError>;
    /// A sealed key blob by id.
    fn key(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// All sealed key blobs, oldest first.
    fn keys(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Records a destruction: the new state and the blob's removal, atomically.
    fn destroy_key(&self, id: &str, state: &[u8]) -> Result<(), StoreError>;
}

/// The embedded default: one SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS root (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    kms_key_id TEXT NOT NULL,
    ciphertext_blob BLOB NOT NULL,
    key_check BLOB,
    state BLOB
);
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    sealed BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    seq INTEGER NOT NULL
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
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StoreError("database lock poisoned".into()))?;
        f(&mut conn)
    }
}

impl Store for SqliteStore {
    fn root(&self) -> Result<Option<RootRecord>, StoreError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT kms_key_id, ciphertext_blob, key_check, state FROM root WHERE id = 1",
                [],
                |r| {
                    Ok(RootRecord {
                        kms_key_id: r.get(0)?,
                        ciphertext_blob: r.get(1)?,
                        key_check: r.get(2)?,
                        state: r.get(3)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn put_root_blob(&self, kms_key_id: &str, ciphertext_blob: &[u8]) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO root (id, kms_key_id, ciphertext_blob) VALUES (1, ?1, ?2)",
                params![kms_key_id, ciphertext_blob],
            )?;
            Ok(())
        })
    }

    fn put_unsealed(&self, key_check: &[u8], state: &[u8]) -> Result<(), StoreError> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE root SET key_check = ?1, state = ?2 WHERE id = 1",
                params![key_check, state],
            )?;
            if n != 1 {
                return Err(StoreError("no root record to update".into()));
            }
            Ok(())
        })
    }

    fn insert_key(&self, id: &str, sealed: &[u8], created_at: u64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO keys (id, sealed, created_at, seq)
                 VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM keys))",
                params![id, sealed, i64::try_from(created_at).unwrap_or(i64::MAX)],
            )?;
            Ok(())
        })
    }

    fn key(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            Ok(
                c.query_row("SELECT sealed FROM keys WHERE id = ?1", [id], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    fn keys(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT id, sealed FROM keys ORDER BY seq")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn destroy_key(&self, id: &str, state: &[u8]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("UPDATE root SET state = ?1 WHERE id = 1", [state])?;
            tx.execute("DELETE FROM keys WHERE id = ?1", [id])?;
            tx.commit()?;
            Ok(())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
            s.put_unsealed(b"kcv", b"state1").unwrap();
            s.insert_key("b", b"sealed-b", 2).unwrap();
            s.insert_key("a", b"sealed-a", 1).unwrap();
            assert!(s.insert_key("a", b"dup", 3).is_err());
        }
        let s = SqliteStore::open(&path).unwrap();
        let root = s.root().unwrap().unwrap();
        assert_eq!(root.ciphertext_blob, b"blob");
        assert_eq!(root.key_check.as_deref(), Some(&b"kcv"[..]));
        let ids: Vec<_> = s.keys().unwrap().into_iter().map(|(i, _)| i).collect();
        assert_eq!(ids, ["b", "a"], "insertion order");
        s.destroy_key("b", b"state2").unwrap();
        assert_eq!(s.key("b").unwrap(), None);
        assert_eq!(s.key("a").unwrap().as_deref(), Some(&b"sealed-a"[..]));
        assert_eq!(
            s.root().unwrap().unwrap().state.as_deref(),
            Some(&b"state2"[..])
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
