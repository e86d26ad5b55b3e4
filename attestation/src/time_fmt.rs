//! RFC 3339 rendering of times for messages and JSON output.

use std::time::SystemTime;

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Formats a time as RFC 3339 UTC (falls back to seconds since the epoch if out of range).
pub fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| format!("{:?}", t.duration_since(SystemTime::UNIX_EPOCH)))
}

/// Converts a document timestamp (milliseconds since the epoch) to a `SystemTime`.
pub fn from_millis(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}
