//! Storage of what the enclave cannot keep: the KMS-encrypted root key, the root-key check
//! value, the newest sealed snapshot of the enclave's state, the sealed key blobs and the
//! audit chain (the enclave's log: the snapshot plus the records after it is the state).
//! Everything here is encrypted by KMS, sealed or signed by the enclave; the store is
//! untrusted and the enclave (or, for the audit chain, the auditor) checks whatever comes
//! back from it.
//!
//! Two implementations of one [`Store`] interface pass one conformance suite
//! (`conformance`, feature `testing`): [`SqliteStore`], one embedded file (the default),
//! and [`PgStore`], PostgreSQL, which several replicas of one deployment share. The log has
//! one order, the database's: [`Store::apply`] appends records under their sequence
//! numbers only where none is stored, so of two replicas appending the same number one
//! wins and the other gets [`StoreError::AuditConflict`].
//!
//! Layouts are versioned ([`LAYOUT`]) and migrated at open; a database written by a later
//! release is refused with [`StoreError::Layout`].

mod error;
mod layout;
mod postgres;
mod sqlite;

#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

use async_trait::async_trait;
use strongroom_protocol::messages::{AuditRecord, Effects};

pub use error::StoreError;
pub use layout::LAYOUT;
pub use postgres::{PgOptions, PgStore};
pub use sqlite::SqliteStore;

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

/// The storage interface: the same behaviour from every backend (the conformance suite
/// checks it), and safe to use from several processes on one database.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend's name, for logs and metrics (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;
    /// The root record, if a first boot happened.
    async fn root(&self) -> Result<Option<RootRecord>, StoreError>;
    /// Records the KMS ciphertext blob of a new root key (first boot);
    /// [`StoreError::RootExists`] if one is stored already.
    async fn put_root_blob(
        &self,
        kms_key_id: &str,
        ciphertext_blob: &[u8],
    ) -> Result<(), StoreError>;
    /// Records the check value and boot audit entries the enclave returned when it
    /// unsealed; a check value other than the stored one is refused.
    async fn put_unsealed(&self, key_check: &[u8], audit: &[AuditRecord])
    -> Result<(), StoreError>;
    /// Keeps a sealed snapshot taken at position `seq` if it is newer than the stored one.
    async fn put_snapshot(&self, seq: u64, snapshot: &[u8]) -> Result<(), StoreError>;
    /// Stores what an enclave answer asks to store — a created key's blob, a destroyed
    /// key's removal, a pending request's key, audit entries — atomically: all of it or
    /// nothing. An audit entry whose number holds another line is
    /// [`StoreError::AuditConflict`]; the same line again is a no-op.
    async fn apply(&self, effects: Effects) -> Result<(), StoreError>;
    /// Stores audit entries (again), with [`apply`](Self::apply)'s rules.
    async fn put_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError>;
    /// A sealed key blob by id.
    async fn key(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` sealed key blobs in id order, after `after` if given.
    async fn key_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// The key with this Ethereum address (any case), as the enclave reported it.
    async fn key_by_address(&self, address: &str) -> Result<Option<String>, StoreError>;
    /// How many audit entries are stored without a gap from entry 0.
    async fn audit_stored(&self) -> Result<u64, StoreError>;
    /// The highest sequence number stored, gap or not.
    async fn audit_head(&self) -> Result<Option<u64>, StoreError>;
    /// Up to `limit` audit lines from `from` on, in order, with their sequence numbers.
    async fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError>;
    /// The key a pending request will sign with.
    async fn request_key(&self, request_id: &str) -> Result<Option<String>, StoreError>;
    /// Waits for the deployment's append lock and holds it until the guard is released or
    /// dropped (or its process dies). Appends do not need it (the unique sequence numbers
    /// keep them right); a replica takes it after losing a number, so that it cannot lose
    /// every time to replicas that keep deciding: among replicas that take it, one appends
    /// at a time.
    async fn lock_appends(&self) -> Result<Box<dyn AppendLock>, StoreError>;
}

/// The deployment's append lock, held ([`Store::lock_appends`]).
#[async_trait]
pub trait AppendLock: Send {
    /// Releases the lock (dropping the guard releases it too, less promptly).
    async fn release(self: Box<Self>) -> Result<(), StoreError>;
}

/// Opens the store a location names: `postgres://…` or `postgresql://…` (a PostgreSQL
/// connection URL, see [`PgOptions`]), `sqlite:PATH`, or a plain file path (SQLite).
pub async fn open(location: &str) -> Result<Arc<dyn Store>, StoreError> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        let options = PgOptions::from_url(location)?;
        Ok(Arc::new(PgStore::connect(options).await?))
    } else {
        let path = location.strip_prefix("sqlite:").unwrap_or(location);
        if path.is_empty() {
            return Err(StoreError::Config("an empty database path".into()));
        }
        let path = std::path::PathBuf::from(path);
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
            .await
            .map_err(|e| StoreError::Backend(format!("opening SQLite: {e}")))??;
        Ok(Arc::new(store))
    }
}

/// Where a location points, without its password (for logs and errors).
pub fn redact(location: &str) -> String {
    match location.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((credentials, host)) => {
                let user = credentials.split(':').next().unwrap_or("");
                format!("{scheme}://{user}@{host}")
            }
            None => location.to_string(),
        },
        None => location.to_string(),
    }
}

/// Whether an unseal's check value is to be written: yes where none is stored, no where
/// the same one is; another one, or no root record at all, is refused.
fn check_unsealed(stored: Option<Option<Vec<u8>>>, key_check: &[u8]) -> Result<bool, StoreError> {
    match stored {
        None => Err(StoreError::Backend("no root record to update".into())),
        Some(None) => Ok(true),
        Some(Some(k)) if k == key_check => Ok(false),
        Some(Some(_)) => Err(StoreError::Backend(
            "the enclave unsealed with a root key whose check value differs from the stored one"
                .into(),
        )),
    }
}

fn to_i64(n: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Backend(format!("{what} {n} is out of range")))
}

fn to_u64(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Backend(format!("stored {what} {n} is negative")))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact("postgres://app:s3cret@db.example:5432/strongroom"),
            "postgres://app@db.example:5432/strongroom"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact("data/strongroom.sqlite"), "data/strongroom.sqlite");
    }
}
