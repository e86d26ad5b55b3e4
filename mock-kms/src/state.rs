//! Persistent state: keys (material, metadata, policy) and aliases, in one JSON file written
//! atomically, so that a restarted mock decrypts the blobs it issued before.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;
use crate::blob::KeyMaterial;
use crate::error::ApiError;
use crate::policy::Policy;

/// Name of the state file inside the state directory.
pub const STATE_FILE: &str = "mock-kms-state.json";
const TEMP_FILE: &str = ".mock-kms-state.json.tmp";
const FORMAT: u32 = 1;
/// Refuse to read a state file larger than this (it holds a few keys, not gigabytes).
const MAX_STATE_FILE_LEN: u64 = 64 * 1024 * 1024;

/// One KMS key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyRecord {
    pub(crate) material: KeyMaterial,
    /// Seconds since the Unix epoch, with milliseconds.
    pub(crate) creation_date: f64,
    pub(crate) description: String,
    /// The key policy document as given (KMS returns it verbatim from `GetKeyPolicy`).
    pub(crate) policy: String,
}

/// One alias.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AliasRecord {
    pub(crate) target_key_id: String,
    pub(crate) creation_date: f64,
    pub(crate) last_updated_date: f64,
}

/// Everything the mock remembers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct State {
    format: u32,
    /// By key id.
    pub(crate) keys: BTreeMap<String, KeyRecord>,
    /// By full alias name (`alias/...`).
    pub(crate) aliases: BTreeMap<String, AliasRecord>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            format: FORMAT,
            keys: BTreeMap::new(),
            aliases: BTreeMap::new(),
        }
    }
}

/// The state and the file it lives in. Mutations are serialised by the lock and saved before
/// they become visible, so a failed save changes nothing. One process per state directory.
pub(crate) struct Store {
    dir: PathBuf,
    path: PathBuf,
    state: Mutex<State>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::StateIo {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// Opens the state in `dir`, creating the directory (mode 0700) and starting empty if
    /// there is no state file yet.
    pub(crate) fn open(dir: &Path) -> Result<Self, Error> {
        create_private_dir(dir)?;
        let path = dir.join(STATE_FILE);
        let state = match fs::File::open(&path) {
            Ok(file) => load(&path, file)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            path,
            state: Mutex::new(state),
        })
    }

    /// Runs `f` on the current state.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T, ApiError> {
        let state = self
            .state
            .lock()
            .map_err(|_| ApiError::internal(Error::Internal("state lock poisoned")))?;
        Ok(f(&state))
    }

    /// Applies `f` to a copy of the state, saves the copy, then makes it current.
    pub(crate) fn update<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| ApiError::internal(Error::Internal("state lock poisoned")))?;
        let mut next = state.clone();
        let out = f(&mut next)?;
        self.save(&next).map_err(ApiError::internal)?;
        *state = next;
        Ok(out)
    }

    fn save(&self, state: &State) -> Result<(), Error> {
        // Serialise into a buffer of exactly the right size, so no reallocation leaves a copy
        // of key material behind in freed memory; the buffer is wiped on drop.
        let mut counter = ByteCounter(0);
        serde_json::to_writer_pretty(&mut counter, state)
            .map_err(|e| Error::Internal(leak_free_json_error(&e)))?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(counter.0));
        serde_json::to_writer_pretty(&mut *bytes, state)
            .map_err(|e| Error::Internal(leak_free_json_error(&e)))?;

        let temp = self.dir.join(TEMP_FILE);
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temp).map_err(io_err(&temp))?;
        file.write_all(&bytes).map_err(io_err(&temp))?;
        file.sync_all().map_err(io_err(&temp))?;
        drop(file);
        fs::rename(&temp, &self.path).map_err(io_err(&self.path))?;
        // Make the rename itself durable.
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }
}

fn leak_free_json_error(_: &serde_json::Error) -> &'static str {
    // serde_json errors on serialisation carry no key material, but a static message keeps
    // the error type simple and certainly secret-free.
    "could not serialise the state"
}

struct ByteCounter(usize);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_err(dir))
}

fn load(path: &Path, file: fs::File) -> Result<State, Error> {
    let format_err = |reason: String| Error::StateFormat {
        path: path.to_path_buf(),
        reason,
    };
    let len = file.metadata().map_err(io_err(path))?.len();
    if len > MAX_STATE_FILE_LEN {
        return Err(format_err(format!(
            "{len} bytes, more than {MAX_STATE_FILE_LEN}"
        )));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(usize::try_from(len).unwrap_or(0)));
    file.take(MAX_STATE_FILE_LEN)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    let state: State = serde_json::from_slice(&bytes).map_err(|e| {
        // Position only: the message of a serde error may quote part of the input.
        format_err(format!(
            "not a mock KMS state file (JSON error at line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if state.format != FORMAT {
        return Err(format_err(format!(
            "format {} is not supported (expected {FORMAT})",
            state.format
        )));
    }
    for (id, key) in &state.keys {
        Policy::parse(&key.policy).map_err(|e| format_err(format!("policy of key {id}: {e}")))?;
    }
    for (alias, record) in &state.aliases {
        if !state.keys.contains_key(&record.target_key_id) {
            return Err(format_err(format!(
                "alias {alias} targets unknown key {}",
                record.target_key_id
            )));
        }
    }
    Ok(state)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::policy::default_policy;

    fn key() -> KeyRecord {
        KeyRecord {
            material: KeyMaterial::generate().unwrap(),
            creation_date: 1.5,
            description: "d".into(),
            policy: default_policy("111122223333"),
        }
    }

    #[test]
    fn saved_state_reloads_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .update(|s| {
                s.keys.insert("k1".into(), key());
                Ok(())
            })
            .unwrap();
        let again = Store::open(dir.path()).unwrap();
        assert!(again.read(|s| s.keys.contains_key("k1")).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(STATE_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!dir.path().join(TEMP_FILE).exists());
    }

    #[test]
    fn failed_update_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let result: Result<(), ApiError> = store.update(|s| {
            s.keys.insert("k1".into(), key());
            Err(ApiError::bare(crate::error::Code::Validation))
        });
        assert!(result.is_err());
        assert!(store.read(|s| s.keys.is_empty()).unwrap());
        assert!(!dir.path().join(STATE_FILE).exists());
    }

    #[test]
    fn corrupt_or_inconsistent_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        for text in [
            "not json".to_string(),
            r#"{"format": 2, "keys": {}, "aliases": {}}"#.to_string(),
            r#"{"format": 1, "keys": {}, "aliases": {"alias/a": {"target_key_id": "nope", "creation_date": 1, "last_updated_date": 1}}}"#.to_string(),
        ] {
            fs::write(&path, text).unwrap();
            assert!(matches!(
                Store::open(dir.path()),
                Err(Error::StateFormat { .. })
            ));
        }
    }
}
