//! The one error type of the storage layer.

/// A storage failure, by what the caller can do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another line is stored under this sequence number: another replica appended first
    /// (catch up and decide again), or the enclave's state was rolled back.
    #[error(
        "audit record {seq} is already stored with other contents: another replica appended \
         first, or the enclave's state was rolled back"
    )]
    AuditConflict {
        /// The sequence number taken.
        seq: u64,
    },
    /// A root key is already stored (another replica's first boot won): boot from it.
    #[error("a root key is already stored for this deployment")]
    RootExists,
    /// The database was written by another release than this one can read.
    #[error(
        "{location} has database layout {found}; this release reads layouts {oldest} to \
         {latest}. {advice}"
    )]
    Layout {
        /// The file or database.
        location: String,
        /// The layout found.
        found: i64,
        /// The oldest layout this release migrates from.
        oldest: i64,
        /// The layout this release writes.
        latest: i64,
        /// What to do.
        advice: &'static str,
    },
    /// The database cannot be reached (down, restarting, network): retry later; nothing
    /// was stored.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database location or its options are wrong.
    #[error("database configuration: {0}")]
    Config(String),
    /// Anything else the database reported.
    #[error("storage: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether retrying later can succeed without anyone changing anything (the database
    /// was unreachable).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Self::Unavailable(e.to_string())
            }
            _ => Self::Backend(e.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // A server error (it has a SQLSTATE) came from a live server; everything else is
        // the connection: closed, refused, timed out.
        match e.as_db_error() {
            Some(db) if !is_unavailable_state(db.code()) => {
                Self::Backend(format!("{} ({})", db.message(), db.code().code()))
            }
            Some(db) => Self::Unavailable(format!("{} ({})", db.message(), db.code().code())),
            None => Self::Unavailable(error_chain(&e)),
        }
    }
}

/// Server states that mean "not now" rather than "never": shutting down, starting up,
/// too many connections.
fn is_unavailable_state(code: &tokio_postgres::error::SqlState) -> bool {
    use tokio_postgres::error::SqlState;
    [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::CONNECTION_FAILURE,
        SqlState::CONNECTION_EXCEPTION,
    ]
    .contains(code)
}

/// An error and its sources in one line (tokio-postgres puts the cause in the source).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
