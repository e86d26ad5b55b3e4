//! A pool of framed connections to the enclave. Each connection carries one exchange at a
//! time; concurrency comes from several connections. A connection that fails in any way is
//! dropped (its framing state is unknown) and a new one is made on demand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strongroom_protocol::messages::{Request, Response};
use strongroom_protocol::{Address, AnyStream, Connection, ProtocolError};
use tokio::sync::{Mutex, Semaphore};

use crate::metrics::Metrics;

/// How long one exchange may take before the connection is abandoned.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A failure to get an answer from the enclave.
#[derive(Debug, thiserror::Error)]
pub enum EnclaveCallError {
    /// The enclave cannot be reached.
    #[error("cannot connect to the enclave at {address}: {source}")]
    Connect {
        /// Where.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The exchange failed.
    #[error("enclave exchange failed: {0}")]
    Protocol(#[from] ProtocolError),
    /// The enclave did not answer in time.
    #[error("the enclave did not answer within {0:?}")]
    Timeout(Duration),
}

/// Connections to one enclave.
pub struct EnclaveClient {
    address: Address,
    idle: Mutex<Vec<Connection<AnyStream>>>,
    permits: Semaphore,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for EnclaveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnclaveClient({})", self.address)
    }
}

impl EnclaveClient {
    /// A pool of at most `max_connections` connections to `address`.
    pub fn new(address: Address, max_connections: usize) -> Self {
        Self {
            address,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max_connections.max(1)),
            metrics: None,
        }
    }

    /// Records round trips and transport failures in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Sends one request and waits for its answer.
    pub async fn call(&self, request: &Request) -> Result<Response, EnclaveCallError> {
        let start = Instant::now();
        let outcome = self.exchange(request).await;
        if let Some(m) = &self.metrics {
            match &outcome {
                Ok(_) => m.observe_enclave(request, start.elapsed()),
                Err(e) => m.enclave_error(e),
            }
        }
        outcome
    }

    async fn exchange(&self, request: &Request) -> Result<Response, EnclaveCallError> {
        // The semaphore is never closed, so acquire only fails if it were; treat as timeout.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| EnclaveCallError::Timeout(CALL_TIMEOUT))?;
        let pooled = self.idle.lock().await.pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => Connection::new(strongroom_protocol::connect(&self.address).await.map_err(
                |source| EnclaveCallError::Connect {
                    address: self.address.to_string(),
                    source,
                },
            )?),
        };
        match tokio::time::timeout(CALL_TIMEOUT, conn.call::<Request, Response>(request)).await {
            Ok(Ok(response)) => {
                self.idle.lock().await.push(conn);
                Ok(response)
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(EnclaveCallError::Timeout(CALL_TIMEOUT)),
        }
    }
}
