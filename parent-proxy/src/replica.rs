//! The proxy's side of a replica (`--replica NAME`): one of several parent instances, each
//! with its enclave, sharing one deployment's log through the database.
//!
//! A call the enclave decides with records comes back as `Append`: the proxy stores the
//! records (and the blobs they name) in one transaction, where the database takes each
//! number once. Stored: `Appended`, and the enclave releases the answer. Another replica
//! took a number: the proxy feeds the enclave the records stored from there
//! (`CatchUp`) and has it decide again (`Redecide`). Storing failed: `Abandon`, and the
//! client gets a retriable 503. One decision is in flight per replica at a time (the
//! enclave holds one between decision and release); reads go straight through.
//!
//! Between calls a background task keeps the enclave within [`KEEP_UP_EVERY`] of the
//! database's head, so reads answered here name a recent head and a decision rarely starts
//! behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use strongroom_protocol::messages::{Answer, Call, Request, Response};
use strongroom_store::{AppendLock, Store, StoreError};
use tokio::sync::Mutex;

use crate::enclave_client::EnclaveClient;
use crate::metrics::Metrics;
use crate::unseal::{UnsealError, call as ask, send_records};

/// How often a decision may lose its place to other replicas before the client is told to
/// try again (each loss means another replica decided meanwhile).
pub const MAX_ATTEMPTS: u32 = 32;

/// How long after losing a number a replica takes the append lock before deciding: while
/// replicas decide at once, they take turns instead of racing (a race they keep losing
/// costs a decision each time); when they stop, the lock's round trips stop too.
pub const CONTENDED_FOR: Duration = Duration::from_secs(10);

/// How often the background task compares the enclave with the database's head.
pub const KEEP_UP_EVERY: Duration = Duration::from_millis(250);

/// One replica: its name and where its enclave stands in the log.
#[derive(Debug)]
pub struct Replica {
    /// The name its enclave's boot records carry.
    pub name: String,
    /// One decision in flight at a time.
    turn: Mutex<()>,
    /// The enclave's next sequence number, as last seen.
    next: AtomicU64,
    /// Whether this process has met its enclave since it (the enclave) booted.
    adopted: AtomicBool,
    /// Until when (Unix ms) decisions take the append lock first: a number was lost.
    contended_until: AtomicU64,
}

/// Why a replica's call or catch-up failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// Talking to the enclave, or what it answered.
    #[error(transparent)]
    Enclave(#[from] UnsealError),
    /// Storing the records failed (not a conflict); the decision was dropped.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other replicas kept taking the numbers.
    #[error(
        "the decision lost its place to other replicas {0} times in a row; nothing was \
         released: try again"
    )]
    Contended(u32),
}

impl Replica {
    /// A replica named `name` (checked by the enclave at unseal).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            turn: Mutex::new(()),
            next: AtomicU64::new(0),
            adopted: AtomicBool::new(false),
            contended_until: AtomicU64::new(0),
        }
    }

    /// The enclave's next sequence number, as last seen.
    pub fn next(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Notes the enclave's next sequence number.
    pub fn at(&self, next: u64) {
        self.next.store(next, Ordering::SeqCst);
    }

    /// The enclave booted (this process unsealed it): nothing of an earlier process waits
    /// in it.
    pub fn booted(&self, next: u64) {
        self.at(next);
        self.adopted.store(true, Ordering::SeqCst);
    }

    /// Relays a call and sees its decision through: appended and released, or decided
    /// again after catching up, or dropped.
    pub async fn call(
        &self,
        enclave: &EnclaveClient,
        store: &dyn Store,
        metrics: &Metrics,
        call: Call,
        stamped: bool,
    ) -> Result<Answer, ReplicaError> {
        // Reads are answered from the enclave's state without records; decisions take turns.
        let _turn = if stamped {
            let turn = self.turn.lock().await;
            self.adopt(enclave).await?;
            Some(turn)
        } else {
            None
        };
        // Contended (a number lost in the last CONTENDED_FOR): take the deployment's
        // append lock first and catch up under it, so this decision cannot lose.
        let mut lock: Option<Box<dyn AppendLock>> = None;
        let result = async {
            if stamped && self.contended() {
                lock = Some(store.lock_appends().await?);
                self.keep_up_locked(enclave, store, metrics).await?;
            }
            self.see_through(enclave, store, metrics, call, &mut lock)
                .await
        }
        .await;
        if result.is_err() {
            // Whatever the enclave holds of this call is dropped: its answer is never
            // released, and a record that did land is caught up like another replica's.
            let _ = ask(enclave, Request::Abandon).await;
        }
        if let Some(lock) = lock {
            let _ = lock.release().await;
        }
        result
    }

    /// Whether this replica lost a number within the last [`CONTENDED_FOR`].
    fn contended(&self) -> bool {
        unix_millis() < self.contended_until.load(Ordering::SeqCst)
    }

    /// Catches the enclave up if the database holds records beyond it.
    async fn keep_up_locked(
        &self,
        enclave: &EnclaveClient,
        store: &dyn Store,
        metrics: &Metrics,
    ) -> Result<(), ReplicaError> {
        let head = store.audit_head().await?;
        if head.is_some_and(|h| h + 1 > self.next()) {
            self.catch_up(enclave, store, metrics).await?;
        }
        Ok(())
    }

    async fn see_through(
        &self,
        enclave: &EnclaveClient,
        store: &dyn Store,
        metrics: &Metrics,
        call: Call,
        lock: &mut Option<Box<dyn AppendLock>>,
    ) -> Result<Answer, ReplicaError> {
        let mut response = ask(enclave, Request::Call(call)).await?;
        for _ in 0..MAX_ATTEMPTS {
            let effects = match response {
                Response::Answer(answer) => return Ok(answer),
                Response::Append(effects) => effects,
                other => {
                    return Err(UnsealError::Unexpected(format!(
                        "expected an answer or records to append, got {other:?}"
                    ))
                    .into());
                }
            };
            let Some((first, last)) = effects
                .audit
                .first()
                .zip(effects.audit.last())
                .map(|(f, l)| (f.seq, l.seq))
            else {
                return Err(UnsealError::Unexpected("records to append, but none".into()).into());
            };
            match store.apply(effects).await {
                Ok(()) => {
                    metrics.replica_appended();
                    self.at(last + 1);
                    response = ask(enclave, Request::Appended { seq: first }).await?;
                }
                Err(StoreError::AuditConflict { .. }) => {
                    metrics.replica_conflict();
                    self.contended_until.store(
                        unix_millis() + CONTENDED_FOR.as_millis() as u64,
                        Ordering::SeqCst,
                    );
                    if lock.is_none() {
                        *lock = Some(store.lock_appends().await?);
                    }
                    self.catch_up(enclave, store, metrics).await?;
                    response = ask(enclave, Request::Redecide).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ReplicaError::Contended(MAX_ATTEMPTS))
    }

    /// The first time this proxy meets its enclave (an enclave that kept running while an
    /// earlier proxy process died may hold that process's decision): drops any decision
    /// awaiting its append — stored or not, its answer is never released, and a stored
    /// record is caught up like another replica's — and learns where the enclave stands.
    async fn adopt(&self, enclave: &EnclaveClient) -> Result<(), ReplicaError> {
        if self.adopted.load(Ordering::SeqCst) {
            return Ok(());
        }
        match ask(enclave, Request::Abandon).await? {
            Response::CaughtUp { next_seq } => self.at(next_seq),
            other => {
                return Err(UnsealError::Unexpected(format!(
                    "expected the enclave's position, got {other:?}"
                ))
                .into());
            }
        }
        self.adopted.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Feeds the enclave the stored records from where it stands (it says where: this
    /// proxy may have restarted beside an enclave that kept running).
    async fn catch_up(
        &self,
        enclave: &EnclaveClient,
        store: &dyn Store,
        metrics: &Metrics,
    ) -> Result<(), ReplicaError> {
        let from = match ask(
            enclave,
            Request::CatchUp {
                records: Vec::new(),
            },
        )
        .await?
        {
            Response::CaughtUp { next_seq } => next_seq,
            other => {
                return Err(UnsealError::Unexpected(format!(
                    "expected the enclave's position, got {other:?}"
                ))
                .into());
            }
        };
        let next = send_records(enclave, store, from, true).await?;
        metrics.replica_caught_up(next.saturating_sub(from));
        self.at(next);
        Ok(())
    }

    /// Brings the enclave up to the database's head, between decisions; reports the lag.
    pub async fn keep_up(
        &self,
        enclave: &EnclaveClient,
        store: &dyn Store,
        metrics: &Metrics,
    ) -> Result<(), ReplicaError> {
        let head = store.audit_head().await?;
        let next = self.next();
        let behind = head.map_or(0, |h| (h + 1).saturating_sub(next));
        metrics.replica_lag(behind);
        if behind == 0 {
            return Ok(());
        }
        let _turn = self.turn.lock().await;
        self.adopt(enclave).await?;
        self.catch_up(enclave, store, metrics).await?;
        metrics.replica_lag(head.map_or(0, |h| (h + 1).saturating_sub(self.next())));
        Ok(())
    }

    /// The background task: [`keep_up`](Self::keep_up) every [`KEEP_UP_EVERY`] while the
    /// enclave is ready (`ready()`).
    pub async fn keep_up_forever(
        self: Arc<Self>,
        enclave: Arc<EnclaveClient>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        ready: impl Fn() -> bool + Send + 'static,
    ) {
        loop {
            tokio::time::sleep(KEEP_UP_EVERY).await;
            if !ready() {
                continue;
            }
            if let Err(e) = self.keep_up(&enclave, store.as_ref(), &metrics).await {
                tracing::warn!(error = %e, "catching up with the other replicas failed");
            }
        }
    }
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
