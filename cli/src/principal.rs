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

/// An admin key given with `--admin-key FILE`.
pub fn admin_key(path: &Path) -> Result<PrincipalKeySource> {
    Ok(PrincipalKeySource {
        key: load_key_file(path, "admin key")?,
        source: format!("--admin-key {}", path.display()),
    })
}

/// Where the principal key comes from, resolved only when a command needs a stamp.
#[derive(Clone)]
pub struct PrincipalKeyChoice {
    /// `--principal-key`.
    pub flag: Option<PathBuf>,
    /// `STRONGROOM_PRINCIPAL_KEY`, if set and not empty.
    pub env: Option<OsString>,
    /// `--data-dir` (for the development key).
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for PrincipalKeyChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The environment value may be the key itself: never shown.
        f.debug_struct("PrincipalKeyChoice")
            .field("flag", &self.flag)
            .field("env", &self.env.as_ref().map(|_| "<set>"))
            .field("data_dir", &self.data_dir)
            .finish()
    }
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

    /// The admin key if one was given, else the principal key.
    pub fn load_or_admin(&self, admin: Option<&Path>) -> Result<PrincipalKeySource> {
        match admin {
            Some(path) => admin_key(path),
            None => self.load(),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::temp_dir;

    fn key_file(path: &Path, seed: u8) -> String {
        let key = SigningKey::ed25519_from_seed(&[seed; 32]);
        std::fs::write(path, key.to_pkcs8_pem().as_bytes()).unwrap();
        key.public().id().to_string()
    }

    fn id(choice: &PrincipalKeyChoice) -> String {
        choice.load().unwrap().key.public().id().to_string()
    }

    #[test]
    fn flag_then_environment_then_dev_key() {
        let dir = temp_dir("precedence");
        std::fs::create_dir_all(dir.join("dev")).unwrap();
        let dev = key_file(&dev_principal_key(&dir), 1);
        let flag = key_file(&dir.join("flag.pem"), 2);
        let env_file = key_file(&dir.join("env.pem"), 3);
        let env_text_key = SigningKey::ed25519_from_seed(&[4; 32]);
        let env_text = env_text_key.to_pkcs8_pem().to_string();

        let mut choice = PrincipalKeyChoice {
            flag: Some(dir.join("flag.pem")),
            env: Some(dir.join("env.pem").into_os_string()),
            data_dir: dir.clone(),
        };
        assert_eq!(id(&choice), flag);
        assert!(choice.load().unwrap().source.starts_with("--principal-key"));
        choice.flag = None;
        assert_eq!(id(&choice), env_file);
        choice.env = Some(env_text.clone().into());
        assert_eq!(id(&choice), env_text_key.public().id());
        assert_eq!(
            choice.load().unwrap().source,
            "STRONGROOM_PRINCIPAL_KEY (key text)"
        );
        // Hex key text works too.
        choice.env = Some(hex::encode([5u8; 32]).into());
        assert_eq!(
            id(&choice),
            SigningKey::ed25519_from_seed(&[5; 32]).public().id()
        );
        choice.env = None;
        assert_eq!(id(&choice), dev);
        assert!(choice.load().unwrap().source.contains("development key"));

        // A flag naming a missing file is an error, not a fall-back to the others.
        choice.flag = Some(dir.join("missing.pem"));
        let err = format!("{:#}", choice.load().unwrap_err());
        assert!(err.contains("missing.pem"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_key_names_the_three_ways_to_give_one() {
        let dir = temp_dir("nokey");
        let choice = PrincipalKeyChoice {
            flag: None,
            env: None,
            data_dir: dir.clone(),
        };
        let err = choice.load().unwrap_err().to_string();
        for way in ["--principal-key", PRINCIPAL_KEY_ENV, "strongroom dev init"] {
            assert!(err.contains(way), "{err}");
        }
        assert!(err.contains(&dev_principal_key(&dir).display().to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_environment_value_is_not_quoted() {
        let dir = temp_dir("badenv");
        let secret = "not-a-key-but-maybe-secret";
        let choice = PrincipalKeyChoice {
            flag: None,
            env: Some(secret.into()),
            data_dir: dir.clone(),
        };
        let err = format!("{:#}", choice.load().unwrap_err());
        assert!(err.contains(PRINCIPAL_KEY_ENV), "{err}");
        assert!(!err.contains(secret), "{err}");
        assert!(!format!("{choice:?}").contains(secret));
        // A bad key file is named by path, and its content is not quoted.
        let bad = dir.join("bad.pem");
        std::fs::write(&bad, format!("{}\n", "ab".repeat(31))).unwrap();
        let choice = PrincipalKeyChoice {
            flag: Some(bad.clone()),
            env: None,
            data_dir: dir.clone(),
        };
        let err = format!("{:#}", choice.load().unwrap_err());
        assert!(err.contains("bad.pem"), "{err}");
        assert!(!err.contains("abab"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
