//! `strongroom dev …`: development keys and the mock-mode genesis document, and key tools
//! operators need to write genesis documents and policies.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};
use sha2::Digest as _;
use strongroom_auth::{Algorithm, PrincipalKey, SigningKey};
use zeroize::Zeroize as _;

use crate::principal::{dev_principal_key, load_key_file};

/// Admin keys `dev init` makes.
const DEV_ADMINS: usize = 3;
/// Approvals the development admin set needs.
const DEV_THRESHOLD: u32 = 2;

/// Developer subcommands.
#[derive(Subcommand)]
pub enum DevCommand {
    /// Create mock-mode development keys (three admins, threshold 2, one principal) and the
    /// genesis document in DIR/dev; existing keys are kept. Prints the paths.
    Init {
        /// The data directory [default: --data-dir].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Replace existing keys (data sealed under the old genesis stops accepting them).
        #[arg(long)]
        force: bool,
    },
    /// Generate a principal or admin key into FILE (PKCS#8 PEM, mode 0600); prints its key
    /// id and its policy key spec.
    Key {
        /// Where to write the private key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The key's algorithm.
        #[arg(long, value_enum, default_value_t = KeyAlgorithm::Ed25519)]
        algorithm: KeyAlgorithm,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print the key id and policy key spec of a private key file (`-`: standard input).
    Pubkey {
        /// The private key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
}

/// A principal key algorithm, as the command line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyAlgorithm {
    /// Ed25519.
    Ed25519,
    /// ECDSA over P-256.
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
}

impl From<KeyAlgorithm> for Algorithm {
    fn from(a: KeyAlgorithm) -> Self {
        match a {
            KeyAlgorithm::Ed25519 => Algorithm::Ed25519,
            KeyAlgorithm::EcdsaP256 => Algorithm::EcdsaP256,
        }
    }
}

/// Runs a dev subcommand.
pub fn run(data_dir: &Path, cmd: DevCommand) -> Result<()> {
    match cmd {
        DevCommand::Init { dir, force } => {
            let dir = dir.unwrap_or_else(|| data_dir.to_path_buf());
            crate::client::print_text(&init(&dir, force)?)?;
            Ok(())
        }
        DevCommand::Key {
            out,
            algorithm,
            force,
        } => {
            let key = SigningKey::generate(algorithm.into())?;
            write_key(&out, &key, force)?;
            eprintln!("wrote {}", out.display());
            crate::client::print_text(&describe_key(&key.public()))?;
            Ok(())
        }
        DevCommand::Pubkey { key } => {
            let key = load_key_file(&key, "key")?;
            crate::client::print_text(&describe_key(&key.public()))?;
            Ok(())
        }
    }
}

/// The policy key spec: `{"algorithm": …, "public": …}`.
pub fn key_spec(key: &PrincipalKey) -> Value {
    json!({ "algorithm": key.algorithm().name(), "public": key.public_hex() })
}

/// `id: …` then the key spec as one line of JSON, ready to paste into a document.
fn describe_key(key: &PrincipalKey) -> String {
    format!("id: {}\n{}\n", key.id(), key_spec(key))
}

/// The chain the development policy tells JSON-RPC clients (Sepolia).
pub const DEV_CHAIN_ID: u64 = 11_155_111;

/// The development genesis document: the admin set and a policy that lets the principal
/// `dev` create keys and sign on mainnet and Sepolia within modest limits.
pub fn dev_genesis(admins: &[PrincipalKey], principal: &PrincipalKey) -> Value {
    let allow = |name: &str, action: &str| json!({"name": name, "effect": "allow", "principals": ["dev"], "actions": [action]});
    json!({
        "version": 1,
        "admins": {
            "threshold": DEV_THRESHOLD,
            "keys": admins.iter().map(key_spec).collect::<Vec<_>>(),
        },
        "policy": {
            "version": 1,
            "chain_id": DEV_CHAIN_ID,
            "principals": [{"id": "dev", "roles": ["signer"], "keys": [key_spec(principal)]}],
            "rules": [
                allow("dev-create-keys", "create_key"),
                {
                    "name": "dev-transactions", "effect": "allow", "principals": ["dev"],
                    "actions": ["sign_transaction"],
                    "conditions": {
                        "chain_ids": [1, 11155111],
                        "max_value": "1 ether",
                        "velocity": [{"scope": "key", "window": "24h", "max_value": "5 ether"}],
                    },
                },
                // Any typed data the enclave cannot read the effect of (mock mode is for
                // trying things); permits and other value-moving structures still need
                // their spender listed, and none is.
                {
                    "name": "dev-typed-data", "effect": "allow", "principals": ["dev"],
                    "actions": ["sign_typed_data"],
                    "conditions": {"typed_data": {"allow_unknown_types": true}},
                },
                allow("dev-messages", "sign_message"),
                allow("dev-digests", "sign_digest"),
            ],
        },
    })
}

/// The admin key files `dev init` writes, in order.
pub fn dev_admin_keys(data_dir: &Path) -> Vec<PathBuf> {
    (1..=DEV_ADMINS)
        .map(|i| data_dir.join("dev").join(format!("admin-{i}.key")))
        .collect()
}

/// `dev init`: makes or reuses the keys, writes the genesis; returns the report to print.
pub fn init(data_dir: &Path, force: bool) -> Result<String> {
    let dev = data_dir.join("dev");
    create_private_dir(&dev)?;
    let mut paths = dev_admin_keys(data_dir);
    paths.push(dev_principal_key(data_dir));
    let existing: Vec<&PathBuf> = paths.iter().filter(|p| p.exists()).collect();
    let reuse = !force && existing.len() == paths.len();
    if !force && !reuse && !existing.is_empty() {
        bail!(
            "some development keys exist and others do not ({}); pass --force to replace \
             them all",
            existing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut keys = Vec::with_capacity(paths.len());
    for path in &paths {
        let key = if reuse {
            load_key_file(path, "development key")
                .context("pass --force to replace the development keys")?
        } else {
            let key = SigningKey::generate(Algorithm::Ed25519)?;
            write_key(path, &key, force)?;
            key
        };
        keys.push(key.public());
    }
    let genesis_path = dev.join("genesis.json");
    let write_genesis = !reuse || !genesis_path.exists();
    if write_genesis {
        let (principal, admins) = keys.split_last().context("no keys")?;
        let text = serde_json::to_string_pretty(&dev_genesis(admins, principal))?;
        std::fs::write(&genesis_path, format!("{text}\n"))
            .with_context(|| format!("writing {}", genesis_path.display()))?;
    }
    if force && !existing.is_empty() {
        eprintln!(
            "replaced the development keys: a data directory already sealed under the old \
             genesis will not accept them; start from an empty one"
        );
    }
    let verb = if reuse { "kept" } else { "wrote" };
    let mut report = String::new();
    for (path, key) in paths.iter().zip(&keys) {
        report.push_str(&format!("{verb} {} (key {})\n", path.display(), key.id()));
    }
    let verb = if write_genesis { "wrote" } else { "kept" };
    report.push_str(&format!("{verb} {}\n", genesis_path.display()));
    report.push_str(&rpc_token(&dev, force)?);
    Ok(report)
}

/// The development JSON-RPC bearer token (`dev/rpc-token`) and the proxy's token file
/// binding its SHA-256 to the development principal key (`dev/rpc-tokens`).
fn rpc_token(dev: &Path, force: bool) -> Result<String> {
    let token_path = dev.join("rpc-token");
    let table_path = dev.join("rpc-tokens");
    if !force && token_path.exists() && table_path.exists() {
        return Ok(format!(
            "kept {} and {}\n",
            token_path.display(),
            table_path.display()
        ));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let token = zeroize::Zeroizing::new(hex::encode(bytes));
    bytes.zeroize();
    let digest = sha2::Sha256::digest(token.as_bytes());
    write_private(
        &token_path,
        format!("{}\n", token.as_str()).as_bytes(),
        true,
    )?;
    write_private(
        &table_path,
        format!(
            "# JSON-RPC bearer tokens: sha256:<hex of SHA-256(token)> <principal key file>\n\
             # (relative paths are relative to this file). Written by `strongroom dev init`.\n\
             sha256:{} principal.key\n",
            hex::encode(digest)
        )
        .as_bytes(),
        true,
    )?;
    Ok(format!(
        "wrote {} and {}\n",
        token_path.display(),
        table_path.display()
    ))
}

/// Creates a directory only its owner can enter (and tightens an existing one).
fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// Writes a key as PKCS#8 PEM, readable by its owner only; refuses to replace a file
/// unless `force`.
pub fn write_key(path: &Path, key: &SigningKey, force: bool) -> Result<()> {
    write_private(path, key.to_pkcs8_pem().as_bytes(), force)
}

/// Writes a new file only its owner can read (replacing an existing one if `force`).
fn write_private(path: &Path, contents: &[u8], force: bool) -> Result<()> {
    if force && path.exists() {
        // Removed first so the new file is created with the restrictive mode below.
        std::fs::remove_file(path).with_context(|| format!("replacing {}", path.display()))?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        if path.exists() {
            format!("{} exists; pass --force to replace it", path.display())
        } else {
            format!("creating {}", path.display())
        }
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::temp_dir;

    fn genesis(dir: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(dir.join("dev/genesis.json")).unwrap()).unwrap()
    }

    fn spec_of(path: &Path) -> Value {
        key_spec(&load_key_file(path, "key").unwrap().public())
    }

    #[test]
    fn init_writes_keys_and_a_genesis_of_the_right_shape() {
        let dir = temp_dir("devinit");
        let report = init(&dir, false).unwrap();
        let g = genesis(&dir);
        assert_eq!(g["version"], 1);
        assert_eq!(g["admins"]["threshold"], 2);
        let admins = dev_admin_keys(&dir);
        let listed: Vec<Value> = admins.iter().map(|p| spec_of(p)).collect();
        assert_eq!(g["admins"]["keys"], Value::Array(listed));
        let principal = spec_of(&dev_principal_key(&dir));
        assert_eq!(principal["algorithm"], "ed25519");
        assert_eq!(principal["public"].as_str().unwrap().len(), 64);
        let policy = &g["policy"];
        assert_eq!(policy["version"], 1);
        assert_eq!(
            policy["principals"],
            json!([{"id": "dev", "roles": ["signer"], "keys": [principal]}])
        );
        let rules = policy["rules"].as_array().unwrap();
        let names: Vec<&str> = rules.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "dev-create-keys",
                "dev-transactions",
                "dev-typed-data",
                "dev-messages",
                "dev-digests"
            ]
        );
        assert_eq!(
            rules[1],
            json!({"name": "dev-transactions", "effect": "allow", "principals": ["dev"],
                   "actions": ["sign_transaction"],
                   "conditions": {"chain_ids": [1, 11155111], "max_value": "1 ether",
                                  "velocity": [{"scope": "key", "window": "24h",
                                                "max_value": "5 ether"}]}})
        );
        for rule in rules {
            assert_eq!(rule["effect"], "allow");
            assert_eq!(rule["principals"], json!(["dev"]));
        }
        // The policy is the one policy/examples/dev-genesis.json shows, up to the key.
        let example: Value =
            serde_json::from_str(include_str!("../../policy/examples/dev-genesis.json")).unwrap();
        let mut ours = policy.clone();
        ours["principals"][0]["keys"] = example["principals"][0]["keys"].clone();
        assert_eq!(ours, example);
        // And the policy engine accepts it, with our key as the principal's.
        let parsed =
            strongroom_policy::Policy::from_json(&serde_json::to_vec(policy).unwrap()).unwrap();
        assert_eq!(parsed.principals().len(), 1);
        assert_eq!(
            parsed.principals()[0].keys[0],
            load_key_file(&dev_principal_key(&dir), "k")
                .unwrap()
                .public()
        );
        for spec in g["admins"]["keys"].as_array().unwrap() {
            let spec: strongroom_policy::KeySpec = serde_json::from_value(spec.clone()).unwrap();
            spec.to_key().unwrap();
        }

        for path in admins.iter().chain([&dev_principal_key(&dir)]) {
            assert!(
                report.contains(&format!("wrote {}", path.display())),
                "{report}"
            );
        }
        assert!(report.contains("genesis.json"), "{report}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.join("dev")), 0o700);
            for path in admins.iter().chain([&dev_principal_key(&dir)]) {
                assert_eq!(mode(path), 0o600, "{}", path.display());
            }
        }
        // Distinct keys.
        let mut publics: Vec<String> = g["admins"]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .chain([&principal])
            .map(|k| k["public"].as_str().unwrap().to_string())
            .collect();
        publics.sort();
        publics.dedup();
        assert_eq!(publics.len(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn init_writes_a_private_rpc_token_bound_to_the_principal_key() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = temp_dir("devtoken");
        init(&dir, false).unwrap();
        let token = std::fs::read_to_string(dir.join("dev/rpc-token")).unwrap();
        let token = token.trim();
        assert_eq!(token.len(), 64);
        let table = std::fs::read_to_string(dir.join("dev/rpc-tokens")).unwrap();
        let line = table.lines().find(|l| !l.starts_with('#')).unwrap();
        let digest = hex::encode(sha2::Sha256::digest(token.as_bytes()));
        assert_eq!(line, format!("sha256:{digest} principal.key"));
        for name in ["rpc-token", "rpc-tokens"] {
            let mode = std::fs::metadata(dir.join("dev").join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{name} is private");
        }
        // Kept on a second run, so a running proxy's table stays valid.
        init(&dir, false).unwrap();
        let again = std::fs::read_to_string(dir.join("dev/rpc-token")).unwrap();
        assert_eq!(again.trim(), token);
    }

    #[test]
    fn init_reuses_keys_refuses_partial_sets_and_force_replaces() {
        let dir = temp_dir("devreuse");
        init(&dir, false).unwrap();
        let first = genesis(&dir);
        // Run again: same keys, genesis kept.
        let report = init(&dir, false).unwrap();
        assert!(report.contains("kept"), "{report}");
        assert!(!report.contains("wrote"), "{report}");
        assert_eq!(genesis(&dir), first);
        // A missing genesis is written again from the kept keys.
        std::fs::remove_file(dir.join("dev/genesis.json")).unwrap();
        init(&dir, false).unwrap();
        assert_eq!(genesis(&dir), first);
        // One key missing: refused, nothing changed.
        std::fs::remove_file(dir.join("dev/admin-2.key")).unwrap();
        let err = init(&dir, false).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        assert!(!dir.join("dev/admin-2.key").exists());
        assert_eq!(genesis(&dir), first);
        // --force: all new.
        init(&dir, true).unwrap();
        let second = genesis(&dir);
        assert_ne!(second["admins"], first["admins"]);
        assert_ne!(
            second["policy"]["principals"],
            first["policy"]["principals"]
        );
        assert_eq!(
            second["policy"]["principals"][0]["keys"][0],
            spec_of(&dev_principal_key(&dir))
        );
        // An unreadable key: refused, pointing at --force.
        std::fs::write(dev_principal_key(&dir), "garbage").unwrap();
        let err = format!("{:#}", init(&dir, false).unwrap_err());
        assert!(err.contains("--force"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_key_refuses_to_overwrite_unless_forced() {
        let dir = temp_dir("writekey");
        let path = dir.join("k.pem");
        let a = SigningKey::generate(Algorithm::EcdsaP256).unwrap();
        write_key(&path, &a, false).unwrap();
        let b = SigningKey::generate(Algorithm::EcdsaP256).unwrap();
        let err = format!("{:#}", write_key(&path, &b, false).unwrap_err());
        assert!(err.contains("--force"), "{err}");
        assert_eq!(load_key_file(&path, "k").unwrap().public(), a.public());
        write_key(&path, &b, true).unwrap();
        assert_eq!(load_key_file(&path, "k").unwrap().public(), b.public());
        let described = describe_key(&b.public());
        let mut lines = described.lines();
        assert_eq!(lines.next().unwrap(), format!("id: {}", b.public().id()));
        let spec: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(spec["algorithm"], "ecdsa-p256");
        assert_eq!(spec["public"], b.public().public_hex());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
