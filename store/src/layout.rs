//! Database layouts and the migrations between them. One numbering for both backends: a
//! layout is what this release reads and writes, and every open migrates an older layout
//! it knows forward, one step per transaction, before anything else touches the database.
//!
//! | layout | change                                                                      |
//! |--------|-----------------------------------------------------------------------------|
//! | 4      | the enclave's state as a log: `root` (root key, check value, snapshot and its position), `keys`, `audit`, `requests` |
//! | 5      | `keys.seq` dropped (written, never read, and a `MAX()+1` race between replicas); PostgreSQL starts here |

use crate::StoreError;

/// The layout this release writes.
pub const LAYOUT: i64 = 5;

/// The oldest SQLite layout this release migrates from. Earlier ones kept the enclave's
/// state as one sealed blob, which no migration can turn into a log.
pub const SQLITE_OLDEST: i64 = 4;

/// The oldest PostgreSQL layout (PostgreSQL support began with layout 5).
pub const POSTGRES_OLDEST: i64 = 5;

/// SQLite: each step brings the layout before it to its number.
pub const SQLITE_STEPS: &[(i64, &str)] = &[
    (
        4,
        "CREATE TABLE IF NOT EXISTS root (
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
        );",
    ),
    (5, "ALTER TABLE keys DROP COLUMN seq;"),
];

/// PostgreSQL: each step brings the layout before it to its number.
pub const POSTGRES_STEPS: &[(i64, &str)] = &[(
    5,
    "CREATE TABLE root (
        id SMALLINT PRIMARY KEY CHECK (id = 1),
        kms_key_id TEXT NOT NULL,
        ciphertext_blob BYTEA NOT NULL,
        key_check BYTEA,
        state BYTEA,
        state_seq BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE keys (
        id TEXT PRIMARY KEY,
        sealed BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        address TEXT NOT NULL
    );
    CREATE INDEX keys_address ON keys (address);
    CREATE TABLE audit (
        seq BIGINT PRIMARY KEY CHECK (seq >= 0),
        line TEXT NOT NULL
    );
    CREATE TABLE requests (
        id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL
    );",
)];

/// What to do about a layout this release cannot use.
pub fn check(location: &str, found: i64, oldest: i64) -> Result<(), StoreError> {
    if (oldest..=LAYOUT).contains(&found) {
        return Ok(());
    }
    let advice = if found > LAYOUT {
        "It was written by a later Strongroom release: run that release (or a later one) \
         against it; an older release cannot know what the newer one stored"
    } else {
        "It was written by an earlier Strongroom release, whose enclave kept its state as one \
         sealed blob; this release keeps it as a log of audit records and cannot read the old \
         blob. Keep running the release that wrote it, or move it aside and start this \
         release with a fresh database (a new first boot with your genesis; keys of the old \
         deployment stay with the old database)"
    };
    Err(StoreError::Layout {
        location: location.to_string(),
        found,
        oldest,
        latest: LAYOUT,
        advice,
    })
}

/// The steps to run from layout `found` (0: an empty database) to [`LAYOUT`].
pub fn steps_from(
    steps: &'static [(i64, &'static str)],
    found: i64,
) -> &'static [(i64, &'static str)] {
    let start = steps
        .iter()
        .position(|(to, _)| *to > found)
        .unwrap_or(steps.len());
    &steps[start..]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_ends_at_the_layout_this_release_writes() {
        for steps in [SQLITE_STEPS, POSTGRES_STEPS] {
            assert_eq!(steps.last().map(|s| s.0), Some(LAYOUT));
            assert!(
                steps.windows(2).all(|w| w[1].0 == w[0].0 + 1),
                "one step each"
            );
        }
        assert_eq!(steps_from(SQLITE_STEPS, 0).len(), 2);
        assert_eq!(steps_from(SQLITE_STEPS, 4).len(), 1);
        assert!(steps_from(SQLITE_STEPS, LAYOUT).is_empty());
    }

    #[test]
    fn layouts_outside_the_range_are_refused_with_advice() {
        assert!(check("db", LAYOUT, SQLITE_OLDEST).is_ok());
        assert!(check("db", 4, SQLITE_OLDEST).is_ok());
        let newer = check("db", LAYOUT + 1, SQLITE_OLDEST).unwrap_err();
        assert!(
            newer.to_string().contains("later Strongroom release"),
            "{newer}"
        );
        let older = check("db", 3, SQLITE_OLDEST).unwrap_err();
        assert!(
            older.to_string().contains("earlier Strongroom release"),
            "{older}"
        );
        assert!(check("db", 4, POSTGRES_OLDEST).is_err());
    }
}
