//! Which key stamps requests: `--principal-key FILE`, else `STRONGROOM_PRINCIPAL_KEY` (a
//! file, or the key text itself), else the mock-mode development key
//! `DATA_DIR/dev/principal.key`. Key text never appears in messages.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use strongroom_auth::SigningKey;
use zeroize::Zeroizing;

/// The environment variable naming the principal key (a file path, or the key text).
pub const PRINCIPAL_KEY_ENV: &str = "STRONGROOM_PRINCIPAL_KEY";

/// The development principal key under the data directory, written by `strongroom dev init`.
pub fn dev_principal_key(data_dir: &Path) -> PathBuf {
    data_dir.join("dev").join("principal.key")
}

/// A loaded key and where it came from (for messages).
pub struct PrincipalKeySource {
    /// The key.
    pub key: SigningKey,
    /// Where it came from: a flag and path, the environment, the dev key.
    pub source: String,
}

impl std::fmt::Debug for PrincipalKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} from {}", self.key, self.source)
    }
}

/// Reads a key file (`-`: standard input).
pub fn load_key_file(path: &Path, what: &str) -> Result<SigningKey> {
    let text = if path == Path::new("-") {
        let mut text = Zeroizing::new(String::new());
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .with_context(|| format!("reading the {what} from standard input"))?;
        text
    } else {
        Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the {what} file {}", path.display()))?,
        )
    };
    SigningKey::from_text(&text)
        .with_context(|| format!("the {what} file {} holds no usable key", path.display()))
}

/// Where the principal key comes from, resolved only when a command needs a stamp.
#[derive(Clone, Debug)]
pub struct PrincipalKeyChoice {
    /// `--principal-key`.
    pub flag: Option<PathBuf>,
    /// `STRONGROOM_PRINCIPAL_KEY`, if set and not empty.
    pub env: Option<OsString>,
    /// `--data-dir` (for the development key).
    pub data_dir: PathBuf,
}

impl PrincipalKeyChoice {
    /// The choice given by the command line and the process environment.
    pub fn from_env(flag: Option<PathBuf>, data_dir: PathBuf) -> Self {
        Self {
            flag,
            env: std::env::var_os(PRINCIPAL_KEY_ENV).filter(|v| !v.is_empty()),
            data_dir,
        }
    }

    /// Loads the key: the flag, else the environment, else the development key.
    pub fn load(&self) -> Result<PrincipalKeySource> {
        if let Some(path) = &self.flag {
            return Ok(PrincipalKeySource {
                key: load_key_file(path, "principal key")?,
                source: format!("--principal-key {}", path.display()),
            });
        }
        if let Some(value) = &self.env {
            let path = Path::new(value);
            if path.is_file() {
                return Ok(PrincipalKeySource {
                    key: load_key_file(path, "principal key")
                        .with_context(|| format!("{PRINCIPAL_KEY_ENV} names a file"))?,
                    source: format!("{PRINCIPAL_KEY_ENV} (file {})", path.display()),
                });
            }
            // Not a file: the key itself. The value is not quoted, as it may be a key.
            let text = Zeroizing::new(value.to_str().map(str::to_owned).ok_or_else(|| {
                anyhow!("{PRINCIPAL_KEY_ENV} names no existing file and is not key text")
            })?);
            let key = SigningKey::from_text(&text).map_err(|e| {
                anyhow!(
                    "{PRINCIPAL_KEY_ENV} names no existing file, and as key text: {e} (the \
                     value is not shown, as it may be a key)"
                )
            })?;
            return Ok(PrincipalKeySource {
                key,
                source: format!("{PRINCIPAL_KEY_ENV} (key text)"),
            });
        }
        let dev = dev_principal_key(&self.data_dir);
        if dev.is_file() {
            return Ok(PrincipalKeySource {
                key: load_key_file(&dev, "development principal key")?,
                source: format!("the development key {}", dev.display()),
            });
        }
        bail!(
            "this command is signed with a principal key, and none was given: pass \
             --principal-key FILE, set {PRINCIPAL_KEY_ENV} (a file or the key itself), or, in \
             mock mode, run `strongroom dev init` to create {} (--data-dir or \
             STRONGROOM_DATA_DIR chooses the data directory)",
            dev.display()
        )
    }
}
