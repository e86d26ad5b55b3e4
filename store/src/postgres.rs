//! PostgreSQL: the store that replicas of one deployment share (Amazon RDS or Aurora on
//! AWS). `tokio-postgres` with a `deadpool-postgres` pool: the proxy is asynchronous, so
//! its requests wait on the database without holding a thread each, and one pooled
//! connection per concurrent request keeps statements prepared across requests.
//!
//! The log's one order is the database's: `audit.seq` is the primary key, so of two
//! replicas appending the same number, one insert wins and the other — once the winner
//! commits — finds another line there: [`StoreError::AuditConflict`], its whole
//! transaction (key blob, request, records) rolled back.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use strongroom_protocol::messages::{AuditRecord, Effects};
use tokio_postgres::NoTls;

use crate::error::error_chain;
use crate::layout::{self, POSTGRES_OLDEST, POSTGRES_STEPS};
use crate::{AppendLock, RootRecord, Store, StoreError, redact, to_i64, to_u64};

/// Connections the pool opens at most, by default.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// How long a request waits for a connection (the database down or every connection busy)
/// before it fails as unavailable.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// The advisory lock that serialises migrations between replicas starting at once.
const MIGRATION_LOCK: i64 = 0x5354_524f_4e47; // "STRONG"

/// The session advisory lock of [`Store::lock_appends`].
const APPEND_LOCK: i64 = 0x5354_524f_4e48;

/// How to reach the database.
#[derive(Clone)]
pub struct PgOptions {
    config: tokio_postgres::Config,
    location: String,
    /// Connections in the pool.
    pub pool_size: usize,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("location", &self.location)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl PgOptions {
    /// From a libpq connection URL, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?…]`
    /// (the parameters tokio-postgres knows: `connect_timeout`, `application_name`,
    /// `target_session_attrs`, `options`, …). TLS is not built in: `sslmode=require` is
    /// refused rather than silently dropped.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let location = redact(url);
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Config(format!("{location}: {e}")))?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(StoreError::Config(format!(
                "{location}: sslmode=require, but this release speaks to PostgreSQL without \
                 TLS; reach the database over a private network path (docs/deploy.md) and use \
                 sslmode=disable or prefer"
            )));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("strongroom-proxy");
        }
        Ok(Self {
            config,
            location,
            pool_size: DEFAULT_POOL_SIZE,
        })
    }
}

/// A PostgreSQL database.
pub struct PgStore {
    pool: Pool,
    location: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgStore({})", self.location)
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => e.into(),
        other => StoreError::Unavailable(error_chain(&other)),
    }
}

impl PgStore {
    /// Connects and migrates the layout (under an advisory lock, so replicas starting at
    /// once migrate once).
    pub async fn connect(options: PgOptions) -> Result<Self, StoreError> {
        let manager = Manager::from_config(
            options.config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let store = Self {
            pool,
            location: options.location,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS strongroom_layout (
                id SMALLINT PRIMARY KEY CHECK (id = 1),
                layout BIGINT NOT NULL
            )",
        )
        .await?;
        let found: i64 = tx
            .query_opt("SELECT layout FROM strongroom_layout WHERE id = 1", &[])
            .await?
            .map_or(0, |r| r.get(0));
        if found != 0 {
            layout::check(&self.location, found, POSTGRES_OLDEST)?;
        }
        for (to, sql) in layout::steps_from(POSTGRES_STEPS, found) {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO strongroom_layout (id, layout) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET layout = EXCLUDED.layout",
                &[to],
            )
            .await?;
            tracing::info!(location = %self.location, layout = to, "database layout migrated");
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn root(&self) -> Result<Option<RootRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT kms_key_id, ciphertext_blob, key_check, state, state_seq
                 FROM root WHERE id = 1",
                &[],
            )
            .await?;
        row.map(|r| {
            Ok(RootRecord {
                kms_key_id: r.try_get(0)?,
                ciphertext_blob: r.try_get(1)?,
                key_check: r.try_get(2)?,
                snapshot: r.try_get(3)?,
                snapshot_seq: to_u64(r.try_get(4)?, "snapshot position")?,
            })
        })
        .transpose()
    }

    async fn put_root_blob(
        &self,
        kms_key_id: &str,
        ciphertext_blob: &[u8],
    ) -> Result<(), StoreError> {
        let n = self
            .client()
            .await?
            .execute(
                "INSERT INTO root (id, kms_key_id, ciphertext_blob) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO NOTHING",
                &[&kms_key_id, &ciphertext_blob],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::RootExists);
        }
        Ok(())
    }

    async fn put_unsealed(
        &self,
        key_check: &[u8],
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let stored: Option<Option<Vec<u8>>> = tx
            .query_opt("SELECT key_check FROM root WHERE id = 1 FOR UPDATE", &[])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        if crate::check_unsealed(stored, key_check)? {
            tx.execute("UPDATE root SET key_check = $1 WHERE id = 1", &[&key_check])
                .await?;
        }
        insert_audit(&tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn put_snapshot(&self, seq: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        let seq = to_i64(seq, "snapshot position")?;
        self.client()
            .await?
            .execute(
                "UPDATE root SET state = $1, state_seq = $2
                 WHERE id = 1 AND (state IS NULL OR state_seq < $2)",
                &[&snapshot, &seq],
            )
            .await?;
        Ok(())
    }

    async fn apply(&self, effects: Effects) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(created) = &effects.key_created {
            let statement = tx
                .prepare_cached(
                    "INSERT INTO keys (id, sealed, created_at, address) VALUES ($1, $2, $3, $4)",
                )
                .await?;
            tx.execute(
                &statement,
                &[
                    &created.info.id,
                    &created.sealed.as_slice(),
                    &to_i64(created.info.created_at, "creation time")?,
                    &created.info.address.to_ascii_lowercase(),
                ],
            )
            .await?;
        }
        if let Some(id) = &effects.key_destroyed {
            tx.execute("DELETE FROM keys WHERE id = $1", &[id]).await?;
        }
        if let Some(pending) = &effects.pending_request {
            tx.execute(
                "INSERT INTO requests (id, key_id) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET key_id = EXCLUDED.key_id",
                &[&pending.request_id, &pending.key_id],
            )
            .await?;
        }
        insert_audit(&tx, &effects.audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn put_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        insert_audit(&tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn key(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT sealed FROM keys WHERE id = $1")
            .await?;
        Ok(client
            .query_opt(&statement, &[&id])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    async fn key_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, sealed FROM keys WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after.unwrap_or(""), &limit],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn key_by_address(&self, address: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT id FROM keys WHERE address = $1")
            .await?;
        Ok(client
            .query_opt(&statement, &[&address.to_ascii_lowercase()])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    async fn audit_stored(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COUNT(*), MAX(seq), EXISTS (SELECT 1 FROM audit WHERE seq = 0) FROM audit",
                &[],
            )
            .await?;
        let (count, max, has_zero): (i64, Option<i64>, bool) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let contiguous = match max {
            _ if !has_zero => 0,
            Some(m) if m + 1 == count => count,
            // A gap: one past the first entry whose successor is missing.
            _ => client
                .query_one(
                    "SELECT MIN(a.seq) + 1 FROM audit a
                     WHERE NOT EXISTS (SELECT 1 FROM audit b WHERE b.seq = a.seq + 1)",
                    &[],
                )
                .await?
                .try_get(0)?,
        };
        to_u64(contiguous, "audit count")
    }

    async fn audit_head(&self) -> Result<Option<u64>, StoreError> {
        let max: Option<i64> = self
            .client()
            .await?
            .query_one("SELECT MAX(seq) FROM audit", &[])
            .await?
            .try_get(0)?;
        max.map(|m| to_u64(m, "audit seq")).transpose()
    }

    async fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT seq, line FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2")
            .await?;
        let rows = client.query(&statement, &[&from, &limit]).await?;
        rows.iter()
            .map(|r| Ok((to_u64(r.try_get(0)?, "audit seq")?, r.try_get(1)?)))
            .collect()
    }

    async fn lock_appends(&self) -> Result<Box<dyn AppendLock>, StoreError> {
        let client = self.client().await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&APPEND_LOCK])
            .await?;
        Ok(Box::new(PgAppendLock(Some(client))))
    }

    async fn request_key(&self, request_id: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT key_id FROM requests WHERE id = $1")
            .await?;
        Ok(client
            .query_opt(&statement, &[&request_id])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }
}

/// The session lock, on a pooled connection of its own.
struct PgAppendLock(Option<deadpool_postgres::Object>);

#[async_trait]
impl AppendLock for PgAppendLock {
    async fn release(mut self: Box<Self>) -> Result<(), StoreError> {
        if let Some(client) = self.0.take() {
            client
                .execute("SELECT pg_advisory_unlock($1)", &[&APPEND_LOCK])
                .await?;
        }
        Ok(())
    }
}

impl Drop for PgAppendLock {
    fn drop(&mut self) {
        // Not released: close the connection instead of returning it to the pool, and the
        // server drops the session's lock with it.
        if let Some(client) = self.0.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// Inserts audit lines in one statement; the same line again is a no-op, another line
/// under a stored sequence number is [`StoreError::AuditConflict`]. Under READ COMMITTED an
/// insert that meets a concurrent uncommitted one waits for it, so the comparison below
/// sees the winner's line.
async fn insert_audit(
    tx: &deadpool_postgres::Transaction<'_>,
    records: &[AuditRecord],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let seqs = records
        .iter()
        .map(|r| to_i64(r.seq, "audit seq"))
        .collect::<Result<Vec<_>, _>>()?;
    let lines: Vec<&str> = records.iter().map(|r| r.line.as_str()).collect();
    let insert = tx
        .prepare_cached(
            "INSERT INTO audit (seq, line) SELECT * FROM unnest($1::BIGINT[], $2::TEXT[])
             ON CONFLICT (seq) DO NOTHING RETURNING seq",
        )
        .await?;
    let inserted = tx.query(&insert, &[&seqs, &lines]).await?;
    if inserted.len() == records.len() {
        return Ok(());
    }
    let inserted: std::collections::HashSet<i64> = inserted
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    for (record, seq) in records.iter().zip(&seqs) {
        if inserted.contains(seq) {
            continue;
        }
        let stored: Option<String> = tx
            .query_opt("SELECT line FROM audit WHERE seq = $1", &[seq])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        if stored.as_deref() != Some(record.line.as_str()) {
            return Err(StoreError::AuditConflict { seq: record.seq });
        }
    }
    Ok(())
}
