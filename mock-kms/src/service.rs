//! The KMS operations: request decoding, key resolution, authorisation and cryptography.
//! HTTP lives in `server.rs`; everything here is synchronous.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::Error;
use crate::attest::{Recipient, RootSource, verify_recipient};
use crate::blob::{self, KeyMaterial};
use crate::error::{ApiError, Code};
use crate::policy::{Decision, Policy, RequestContext, default_policy};
use crate::state::{AliasRecord, KeyRecord, State, Store};

/// Default region in key ARNs.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Default account id in key ARNs (the documentation's example account).
pub const DEFAULT_ACCOUNT_ID: &str = "111122223333";
/// Default maximum age of a `Recipient` attestation document.
pub const DEFAULT_MAX_DOCUMENT_AGE: Duration = Duration::from_secs(300);

/// KMS limits, from the API reference's member constraints.
const MAX_CIPHERTEXT_BLOB_LEN: usize = 6144;
const MAX_ATTESTATION_DOCUMENT_LEN: usize = 262_144;
const MAX_DESCRIPTION_LEN: usize = 8192;
const MAX_KEY_ID_LEN: usize = 2048;
const MAX_ALIAS_NAME_LEN: usize = 256;
const MAX_DATA_KEY_BYTES: usize = 1024;
const DEFAULT_LIST_LIMIT: u64 = 50;
const MAX_LIST_LIMIT: u64 = 1000;
const POLICY_NAME: &str = "default";
const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";

const KEY_SPECS: &[&str] = &[
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "ECC_NIST_EDWARDS25519",
    "SYMMETRIC_DEFAULT",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
];
const KEY_USAGES: &[&str] = &[
    "SIGN_VERIFY",
    "ENCRYPT_DECRYPT",
    "GENERATE_VERIFY_MAC",
    "KEY_AGREEMENT",
];
const ORIGINS: &[&str] = &["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"];
const ENCRYPTION_ALGORITHMS: &[&str] = &[
    "SYMMETRIC_DEFAULT",
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "SM2PKE",
];

/// How the mock KMS is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Directory holding the state file (created with mode 0700 if missing).
    pub state_dir: PathBuf,
    /// PEM file of the attestation root `Recipient` documents must chain to; `None` trusts
    /// the AWS Nitro Enclaves Root G1, as real KMS does.
    pub attestation_root: Option<PathBuf>,
    /// Oldest `Recipient` document accepted.
    pub max_document_age: Duration,
    /// Region written in ARNs.
    pub region: String,
    /// Account id written in ARNs and metadata.
    pub account_id: String,
}

impl Config {
    /// Defaults: AWS root, 5-minute document age, `us-east-1`, account `111122223333`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            attestation_root: None,
            max_document_age: DEFAULT_MAX_DOCUMENT_AGE,
            region: DEFAULT_REGION.into(),
            account_id: DEFAULT_ACCOUNT_ID.into(),
        }
    }

    /// Trust the root in this PEM file (re-read whenever it changes).
    pub fn attestation_root(mut self, path: impl Into<PathBuf>) -> Self {
        self.attestation_root = Some(path.into());
        self
    }

    /// Accept `Recipient` documents up to this age.
    pub fn max_document_age(mut self, age: Duration) -> Self {
        self.max_document_age = age;
        self
    }
}

/// The outcome of [`MockKms::ensure_key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnsuredKey {
    /// The key id the alias points to.
    pub key_id: String,
    /// The key ARN.
    pub arn: String,
    /// True if the key was created now, false if the alias already existed.
    pub created: bool,
}

/// A mock KMS: its configuration and state. Cheap to clone (shared).
#[derive(Clone)]
pub struct MockKms {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: Config,
    store: Store,
    roots: RootSource,
}

impl std::fmt::Debug for MockKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockKms")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// What an operation needs of a key, copied out of the state so no lock is held while
/// attestation documents are verified.
struct KeySnapshot {
    id: String,
    arn: String,
    material: KeyMaterial,
    policy: String,
}

fn now_epoch_seconds() -> f64 {
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    // Milliseconds since 1970 fit an f64 exactly for the next 200,000 years.
    millis as f64 / 1000.0
}

/// A random UUID (version 4), as KMS key ids and request ids are.
pub(crate) fn random_uuid() -> Result<String, Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| Error::Random)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn parse_request<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // An empty body is an empty input, as the SDK sends for operations without members.
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            Code::Serialization,
            format!("The request body could not be deserialized: {e}"),
        )
    })
}

fn required<'a>(value: &'a Option<String>, member: &str) -> Result<&'a str, ApiError> {
    value.as_deref().ok_or_else(|| ApiError::missing(member))
}

fn check_len(member: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if len < min {
        return Err(ApiError::validation(
            member,
            value,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if len > max {
        return Err(ApiError::validation(
            member,
            "...",
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn check_enum(member: &str, value: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ApiError::validation(
            member,
            value,
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        ))
    }
}

/// Decodes a base64 blob member, checking its length before decoding it.
fn decode_blob(member: &str, value: &str, max: usize) -> Result<Vec<u8>, ApiError> {
    let too_long = || {
        ApiError::validation(
            member,
            "...",
            &format!("Member must have length less than or equal to {max}"),
        )
    };
    if value.len() > max.div_ceil(3) * 4 {
        return Err(too_long());
    }
    let bytes = STANDARD.decode(value).map_err(|_| {
        ApiError::new(
            Code::Serialization,
            format!("Base64 decoding failed for member '{member}'"),
        )
    })?;
    if bytes.len() > max {
        return Err(too_long());
    }
    if bytes.is_empty() {
        return Err(ApiError::validation(
            member,
            "",
            "Member must have length greater than or equal to 1",
        ));
    }
    Ok(bytes)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecipientInfo {
    key_encryption_algorithm: Option<String>,
    attestation_document: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateKeyRequest {
    policy: Option<String>,
    description: Option<String>,
    key_usage: Option<String>,
    customer_master_key_spec: Option<String>,
    key_spec: Option<String>,
    origin: Option<String>,
    custom_key_store_id: Option<String>,
    tags: Option<Vec<Value>>,
    multi_region: Option<bool>,
    xks_key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyIdRequest {
    key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateDataKeyRequest {
    key_id: Option<String>,
    encryption_context: Option<BTreeMap<String, String>>,
    number_of_bytes: Option<i64>,
    key_spec: Option<String>,
    recipient: Option<RecipientInfo>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptRequest {
    ciphertext_blob: Option<String>,
    encryption_context: Option<BTreeMap<String, String>>,
    key_id: Option<String>,
    encryption_algorithm: Option<String>,
    recipient: Option<RecipientInfo>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyPolicyRequest {
    key_id: Option<String>,
    policy_name: Option<String>,
    policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateAliasRequest {
    alias_name: Option<String>,
    target_key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListAliasesRequest {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

/// Whether a key reference may name an alias (`DescribeKey`, `GenerateDataKey`, `Decrypt`)
/// or must name the key itself (`GetKeyPolicy`, `PutKeyPolicy`, `CreateAlias`, as the API
/// reference says: "Specify the key ID or key ARN").
#[derive(Clone, Copy, PartialEq, Eq)]
enum Aliases {
    Allowed,
    Refused,
}

impl MockKms {
    /// Opens (or creates) the state in `config.state_dir`.
    ///
    /// # Errors
    /// [`Error::StateIo`] or [`Error::StateFormat`] if the state cannot be read.
    pub fn open(config: Config) -> Result<Self, Error> {
        let store = Store::open(&config.state_dir)?;
        let roots = RootSource::new(config.attestation_root.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                roots,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    fn key_arn(&self, id: &str) -> String {
        let c = &self.inner.config;
        format!("arn:aws:kms:{}:{}:key/{id}", c.region, c.account_id)
    }

    fn alias_arn(&self, alias: &str) -> String {
        let c = &self.inner.config;
        format!("arn:aws:kms:{}:{}:{alias}", c.region, c.account_id)
    }

    /// Makes sure `alias` exists: if it does not, creates a key with `policy` and points the
    /// alias at it (atomically). An existing alias is left alone, whatever its key's policy.
    ///
    /// # Errors
    /// [`Error::MalformedPolicy`] for an invalid policy, [`Error::Kms`] for an invalid alias
    /// name, [`Error::StateIo`] if the state cannot be saved.
    pub fn ensure_key(
        &self,
        alias: &str,
        policy: &str,
        description: &str,
    ) -> Result<EnsuredKey, Error> {
        check_alias_name(alias)?;
        Policy::parse(policy)?;
        let existing = self.inner.store.read(|s| {
            s.aliases.get(alias).map(|a| {
                let id = a.target_key_id.clone();
                let same_policy = s.keys.get(&id).is_some_and(|k| k.policy == policy);
                (id, same_policy)
            })
        })?;
        if let Some((id, same_policy)) = existing {
            if !same_policy {
                tracing::warn!(%alias, key_id = %id, "alias exists with a different key policy; leaving it unchanged");
            }
            return Ok(EnsuredKey {
                arn: self.key_arn(&id),
                key_id: id,
                created: false,
            });
        }
        let record = KeyRecord {
            material: KeyMaterial::generate()?,
            creation_date: now_epoch_seconds(),
            description: description.to_string(),
            policy: policy.to_string(),
        };
        let id = random_uuid()?;
        let created = self.inner.store.update(|s| {
            if let Some(existing) = s.aliases.get(alias) {
                return Ok((existing.target_key_id.clone(), false));
            }
            s.keys.insert(id.clone(), record);
            let now = now_epoch_seconds();
            s.aliases.insert(
                alias.to_string(),
                AliasRecord {
                    target_key_id: id.clone(),
                    creation_date: now,
                    last_updated_date: now,
                },
            );
            Ok((id.clone(), true))
        })?;
        let (key_id, created) = created;
        tracing::info!(%alias, %key_id, created, "init key");
        Ok(EnsuredKey {
            arn: self.key_arn(&key_id),
            key_id,
            created,
        })
    }

    /// Runs operation `operation` (the part of `X-Amz-Target` after `TrentService.`) on a
    /// JSON request body; returns the JSON response body (empty for operations without
    /// output) or the KMS exception.
    pub(crate) fn dispatch(&self, operation: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let out = match operation {
            "CreateKey" => self.create_key(parse_request(body)?)?,
            "DescribeKey" => self.describe_key(parse_request(body)?)?,
            "GenerateDataKey" => self.generate_data_key(parse_request(body)?)?,
            "Decrypt" => self.decrypt(parse_request(body)?)?,
            "GetKeyPolicy" => self.get_key_policy(parse_request(body)?)?,
            "PutKeyPolicy" => self.put_key_policy(parse_request(body)?)?,
            "CreateAlias" => self.create_alias(parse_request(body)?)?,
            "ListAliases" => self.list_aliases(parse_request(body)?)?,
            _ => {
                return Err(ApiError::new(
                    Code::UnknownOperation,
                    format!("The mock KMS does not implement TrentService.{operation}"),
                ));
            }
        };
        Ok(match out {
            Some(value) => value.to_string().into_bytes(),
            None => Vec::new(),
        })
    }

    /// Resolves a key id, key ARN, alias name or alias ARN to a key id.
    fn resolve(
        &self,
        state: &State,
        reference: &str,
        aliases: Aliases,
    ) -> Result<String, ApiError> {
        let c = &self.inner.config;
        let arn_prefix = format!("arn:aws:kms:{}:{}:", c.region, c.account_id);
        let invalid = || ApiError::new(Code::NotFound, format!("Invalid keyId '{reference}'"));
        let (alias, key_id) = if let Some(rest) = reference.strip_prefix(&arn_prefix) {
            if let Some(id) = rest.strip_prefix("key/") {
                (None, id)
            } else if rest.starts_with("alias/") {
                (Some(rest), "")
            } else {
                return Err(invalid());
            }
        } else if reference.starts_with("arn:") {
            // Another partition, region or account: not a key of this mock.
            return Err(ApiError::new(
                Code::NotFound,
                format!("Key '{reference}' does not exist"),
            ));
        } else if reference.starts_with("alias/") {
            (Some(reference), "")
        } else {
            (None, reference)
        };
        if let Some(alias) = alias {
            if aliases == Aliases::Refused {
                return Err(invalid());
            }
            return state
                .aliases
                .get(alias)
                .map(|a| a.target_key_id.clone())
                .ok_or_else(|| {
                    ApiError::new(
                        Code::NotFound,
                        format!("Alias {} is not found.", self.alias_arn(alias)),
                    )
                });
        }
        if state.keys.contains_key(key_id) {
            Ok(key_id.to_string())
        } else if looks_like_key_id(key_id) {
            Err(ApiError::new(
                Code::NotFound,
                format!("Key '{}' does not exist", self.key_arn(key_id)),
            ))
        } else {
            Err(invalid())
        }
    }

    fn snapshot(&self, reference: &str, aliases: Aliases) -> Result<KeySnapshot, ApiError> {
        check_len("keyId", reference, 1, MAX_KEY_ID_LEN)?;
        self.inner.store.read(|s| {
            let id = self.resolve(s, reference, aliases)?;
            let key = s
                .keys
                .get(&id)
                .ok_or_else(|| ApiError::internal(Error::Internal("resolved key vanished")))?;
            Ok(KeySnapshot {
                arn: self.key_arn(&id),
                material: key.material.clone(),
                policy: key.policy.clone(),
                id,
            })
        })?
    }

    /// Evaluates the key policy; a denial is `AccessDeniedException`, worded as KMS words it,
    /// with the failing statements and conditions in the server log only.
    fn authorize(
        &self,
        key: &KeySnapshot,
        action: &str,
        context: &RequestContext,
    ) -> Result<(), ApiError> {
        let policy = Policy::parse(&key.policy).map_err(ApiError::internal)?;
        let decision = policy.evaluate(action, &key.arn, context);
        let why = match &decision {
            Decision::Allow => return Ok(()),
            Decision::ExplicitDeny { statement } => {
                tracing::warn!(key_id = %key.id, %action, %statement, "denied by a Deny statement");
                "with an explicit deny in a resource-based policy".to_string()
            }
            Decision::ImplicitDeny { reasons } => {
                for reason in reasons {
                    tracing::warn!(key_id = %key.id, %action, %reason, "no Allow statement applies");
                }
                format!("because no resource-based policy allows the {action} action")
            }
        };
        Err(ApiError::new(
            Code::AccessDenied,
            format!(
                "The caller is not authorized to perform: {action} on resource: {} {why}",
                key.arn
            ),
        ))
    }

    /// What GenerateDataKey and Decrypt check before touching key material: the recipient's
    /// attestation, then the key policy with the attestation and encryption-context
    /// conditions, then DryRun (which KMS answers only once authorised).
    fn admit(
        &self,
        key: &KeySnapshot,
        action: &str,
        recipient: Option<&RecipientInfo>,
        context: &BTreeMap<String, String>,
        dry_run_requested: Option<bool>,
    ) -> Result<Option<Recipient>, ApiError> {
        let recipient = self.recipient(recipient, action, key)?;
        let mut conditions = RequestContext::new().with_encryption_context(context);
        if let Some(r) = &recipient {
            conditions = conditions.with_attestation(&r.pcrs);
        }
        self.authorize(key, action, &conditions)?;
        if dry_run_requested == Some(true) {
            return Err(dry_run());
        }
        Ok(recipient)
    }

    fn recipient(
        &self,
        recipient: Option<&RecipientInfo>,
        action: &str,
        key: &KeySnapshot,
    ) -> Result<Option<Recipient>, ApiError> {
        let Some(info) = recipient else {
            return Ok(None);
        };
        let document = info
            .attestation_document
            .as_deref()
            .map(|d| {
                decode_blob(
                    "recipient.attestationDocument",
                    d,
                    MAX_ATTESTATION_DOCUMENT_LEN,
                )
            })
            .transpose()?;
        verify_recipient(
            &self.inner.roots,
            info.key_encryption_algorithm.as_deref(),
            document.as_deref(),
            self.inner.config.max_document_age,
            action,
            &key.arn,
        )
        .map(Some)
    }

    fn key_metadata(&self, id: &str, key: &KeyRecord) -> Value {
        json!({
            "AWSAccountId": self.inner.config.account_id,
            "KeyId": id,
            "Arn": self.key_arn(id),
            "CreationDate": key.creation_date,
            "Enabled": true,
            "Description": key.description,
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeyState": "Enabled",
            "Origin": "AWS_KMS",
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": SYMMETRIC_DEFAULT,
            "KeySpec": SYMMETRIC_DEFAULT,
            "EncryptionAlgorithms": [SYMMETRIC_DEFAULT],
            "MultiRegion": false,
        })
    }

    fn create_key(&self, req: CreateKeyRequest) -> Result<Option<Value>, ApiError> {
        let spec = match (&req.key_spec, &req.customer_master_key_spec) {
            (Some(_), Some(_)) => {
                return Err(ApiError::new(
                    Code::Validation,
                    "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated.",
                ));
            }
            (Some(spec), None) | (None, Some(spec)) => spec,
            (None, None) => SYMMETRIC_DEFAULT,
        };
        check_enum("keySpec", spec, KEY_SPECS)?;
        if spec != SYMMETRIC_DEFAULT {
            return Err(ApiError::new(
                Code::UnsupportedOperation,
                format!("The mock KMS supports only SYMMETRIC_DEFAULT keys, not {spec}"),
            ));
        }
        let usage = req.key_usage.as_deref().unwrap_or("ENCRYPT_DECRYPT");
        check_enum("keyUsage", usage, KEY_USAGES)?;
        if usage != "ENCRYPT_DECRYPT" {
            return Err(ApiError::new(
                Code::Validation,
                format!("KeyUsage {usage} is not compatible with KeySpec SYMMETRIC_DEFAULT"),
            ));
        }
        let origin = req.origin.as_deref().unwrap_or("AWS_KMS");
        check_enum("origin", origin, ORIGINS)?;
        if origin != "AWS_KMS" || req.custom_key_store_id.is_some() || req.xks_key_id.is_some() {
            return Err(ApiError::new(
                Code::UnsupportedOperation,
                "The mock KMS supports only keys with Origin AWS_KMS in the default key store",
            ));
        }
        if req.multi_region == Some(true) {
            return Err(ApiError::new(
                Code::UnsupportedOperation,
                "The mock KMS does not support multi-Region keys",
            ));
        }
        if req.tags.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(ApiError::new(
                Code::UnsupportedOperation,
                "The mock KMS does not support tags",
            ));
        }
        let description = req.description.unwrap_or_default();
        check_len("description", &description, 0, MAX_DESCRIPTION_LEN)?;
        // The lockout safety check (does the policy let the caller manage the key?) needs
        // an authenticated caller, which the mock does not have; it is skipped.
        let policy = match req.policy {
            Some(p) => {
                check_len("policy", &p, 1, crate::policy::MAX_POLICY_LEN)?;
                Policy::parse(&p)?;
                p
            }
            None => default_policy(&self.inner.config.account_id),
        };
        let id = random_uuid()?;
        let record = KeyRecord {
            material: KeyMaterial::generate()?,
            creation_date: now_epoch_seconds(),
            description,
            policy,
        };
        let metadata = self.key_metadata(&id, &record);
        self.inner.store.update(|s| {
            s.keys.insert(id.clone(), record);
            Ok(())
        })?;
        tracing::info!(key_id = %id, "created key");
        Ok(Some(json!({ "KeyMetadata": metadata })))
    }

    fn describe_key(&self, req: KeyIdRequest) -> Result<Option<Value>, ApiError> {
        let reference = required(&req.key_id, "keyId")?;
        let key = self.snapshot(reference, Aliases::Allowed)?;
        self.authorize(&key, "kms:DescribeKey", &RequestContext::new())?;
        let metadata = self.inner.store.read(|s| {
            s.keys
                .get(&key.id)
                .map(|record| self.key_metadata(&key.id, record))
        })?;
        let metadata = metadata
            .ok_or_else(|| ApiError::internal(Error::Internal("described key vanished")))?;
        Ok(Some(json!({ "KeyMetadata": metadata })))
    }

    fn generate_data_key(&self, req: GenerateDataKeyRequest) -> Result<Option<Value>, ApiError> {
        let reference = required(&req.key_id, "keyId")?;
        let len = match (req.key_spec.as_deref(), req.number_of_bytes) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(ApiError::new(
                    Code::Validation,
                    "Please specify either number of bytes or key spec.",
                ));
            }
            (Some(spec), None) => {
                check_enum("keySpec", spec, &["AES_256", "AES_128"])?;
                if spec == "AES_256" { 32 } else { 16 }
            }
            (None, Some(n)) => usize::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_DATA_KEY_BYTES).contains(n))
                .ok_or_else(|| {
                    ApiError::validation(
                        "numberOfBytes",
                        n,
                        "Member must have value between 1 and 1024",
                    )
                })?,
        };
        let context = req.encryption_context.unwrap_or_default();
        let action = "kms:GenerateDataKey";
        let key = self.snapshot(reference, Aliases::Allowed)?;
        let recipient = self.admit(&key, action, req.recipient.as_ref(), &context, req.dry_run)?;

        let mut data_key = Zeroizing::new(vec![0u8; len]);
        getrandom::fill(&mut data_key).map_err(|_| ApiError::internal(Error::Random))?;
        let ciphertext = blob::seal(&key.id, &key.material, &context, &data_key)?;
        let mut out = json!({
            "CiphertextBlob": STANDARD.encode(&ciphertext),
            "KeyId": key.arn,
        });
        self.put_plaintext(&mut out, &data_key, recipient.as_ref())?;
        tracing::info!(key_id = %key.id, recipient = recipient.is_some(), "generated data key");
        Ok(Some(out))
    }

    /// `Plaintext`, or, with a `Recipient`, `CiphertextForRecipient` and no `Plaintext`.
    fn put_plaintext(
        &self,
        out: &mut Value,
        plaintext: &[u8],
        recipient: Option<&Recipient>,
    ) -> Result<(), ApiError> {
        // The base64 text of a plaintext ends up in the response buffer, which is not wiped;
        // it is on its way to the caller anyway.
        match recipient {
            None => out["Plaintext"] = Value::String(STANDARD.encode(plaintext)),
            Some(r) => {
                let envelope = strongroom_envelope::seal_for_recipient(&r.public_key, plaintext)
                    .map_err(|e| match e {
                        strongroom_envelope::EnvelopeError::InvalidKey => ApiError::new(
                            Code::Validation,
                            "The public_key of the attestation document is not a usable RSA key",
                        ),
                        other => {
                            tracing::error!(error = %other, "sealing for the recipient failed");
                            ApiError::internal(Error::Internal("CMS envelope could not be built"))
                        }
                    })?;
                out["CiphertextForRecipient"] = Value::String(STANDARD.encode(envelope));
            }
        }
        Ok(())
    }

    fn decrypt(&self, req: DecryptRequest) -> Result<Option<Value>, ApiError> {
        let encoded = required(&req.ciphertext_blob, "ciphertextBlob")?;
        let ciphertext = decode_blob("ciphertextBlob", encoded, MAX_CIPHERTEXT_BLOB_LEN)?;
        if let Some(algorithm) = req.encryption_algorithm.as_deref() {
            check_enum("encryptionAlgorithm", algorithm, ENCRYPTION_ALGORITHMS)?;
            if algorithm != SYMMETRIC_DEFAULT {
                return Err(ApiError::new(
                    Code::InvalidKeyUsage,
                    format!("{algorithm} is not supported for a SYMMETRIC_DEFAULT key"),
                ));
            }
        }
        let requested = req
            .key_id
            .as_deref()
            .map(|r| self.snapshot(r, Aliases::Allowed))
            .transpose()?;
        let parsed =
            blob::parse(&ciphertext).ok_or_else(|| ApiError::bare(Code::InvalidCiphertext))?;
        // A blob naming no key of this mock is as invalid as a blob that fails to decrypt.
        let key = self
            .snapshot(parsed.key_id, Aliases::Refused)
            .map_err(|_| ApiError::bare(Code::InvalidCiphertext))?;
        if let Some(requested) = requested
            && requested.id != key.id
        {
            return Err(ApiError::new(
                Code::IncorrectKey,
                "The key ID in the request does not identify a KMS key that can perform this operation.",
            ));
        }
        let context = req.encryption_context.unwrap_or_default();
        let action = "kms:Decrypt";
        let recipient = self.admit(&key, action, req.recipient.as_ref(), &context, req.dry_run)?;
        let plaintext = blob::open(&parsed, &key.material, &context)
            .ok_or_else(|| ApiError::bare(Code::InvalidCiphertext))?;
        let mut out = json!({
            "KeyId": key.arn,
            "EncryptionAlgorithm": SYMMETRIC_DEFAULT,
        });
        self.put_plaintext(&mut out, &plaintext, recipient.as_ref())?;
        tracing::info!(key_id = %key.id, recipient = recipient.is_some(), "decrypted");
        Ok(Some(out))
    }

    fn policy_name(name: Option<&str>) -> Result<(), ApiError> {
        match name {
            None | Some(POLICY_NAME) => Ok(()),
            Some(other) => Err(ApiError::new(
                Code::NotFound,
                format!("No such policy exists: {other}. The only valid policy name is default."),
            )),
        }
    }

    fn get_key_policy(&self, req: KeyPolicyRequest) -> Result<Option<Value>, ApiError> {
        let reference = required(&req.key_id, "keyId")?;
        let key = self.snapshot(reference, Aliases::Refused)?;
        Self::policy_name(req.policy_name.as_deref())?;
        self.authorize(&key, "kms:GetKeyPolicy", &RequestContext::new())?;
        Ok(Some(
            json!({ "Policy": key.policy, "PolicyName": POLICY_NAME }),
        ))
    }

    fn put_key_policy(&self, req: KeyPolicyRequest) -> Result<Option<Value>, ApiError> {
        let reference = required(&req.key_id, "keyId")?;
        let policy = required(&req.policy, "policy")?;
        check_len("policy", policy, 1, crate::policy::MAX_POLICY_LEN)?;
        let key = self.snapshot(reference, Aliases::Refused)?;
        Self::policy_name(req.policy_name.as_deref())?;
        self.authorize(&key, "kms:PutKeyPolicy", &RequestContext::new())?;
        Policy::parse(policy)?;
        self.inner.store.update(|s| {
            let record = s
                .keys
                .get_mut(&key.id)
                .ok_or_else(|| ApiError::internal(Error::Internal("key vanished")))?;
            record.policy = policy.to_string();
            Ok(())
        })?;
        tracing::info!(key_id = %key.id, "key policy replaced");
        Ok(None)
    }

    fn create_alias(&self, req: CreateAliasRequest) -> Result<Option<Value>, ApiError> {
        let alias = required(&req.alias_name, "aliasName")?;
        let target = required(&req.target_key_id, "targetKeyId")?;
        check_alias_name(alias)?;
        let key = self.snapshot(target, Aliases::Refused)?;
        self.authorize(&key, "kms:CreateAlias", &RequestContext::new())?;
        let alias_arn = self.alias_arn(alias);
        self.inner.store.update(|s| {
            if s.aliases.contains_key(alias) {
                return Err(ApiError::new(
                    Code::AlreadyExists,
                    format!("An alias with the name {alias_arn} already exists"),
                ));
            }
            let now = now_epoch_seconds();
            s.aliases.insert(
                alias.to_string(),
                AliasRecord {
                    target_key_id: key.id.clone(),
                    creation_date: now,
                    last_updated_date: now,
                },
            );
            Ok(())
        })?;
        tracing::info!(%alias, key_id = %key.id, "created alias");
        Ok(None)
    }

    fn list_aliases(&self, req: ListAliasesRequest) -> Result<Option<Value>, ApiError> {
        let limit = match req.limit {
            None => DEFAULT_LIST_LIMIT,
            Some(n) => match u64::try_from(n) {
                Ok(n @ 1..=MAX_LIST_LIMIT) => n,
                _ => {
                    return Err(ApiError::validation(
                        "limit",
                        n,
                        "Member must have value between 1 and 1000",
                    ));
                }
            },
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if let Some(marker) = &req.marker
            && !marker.starts_with("alias/")
        {
            return Err(ApiError::new(
                Code::InvalidMarker,
                "The request was rejected because the marker that specifies where pagination should next begin is not valid.",
            ));
        }
        let filter = req
            .key_id
            .as_deref()
            .map(|r| self.snapshot(r, Aliases::Refused).map(|k| k.id))
            .transpose()?;
        let (entries, next) = self.inner.store.read(|s| {
            let mut matching = s
                .aliases
                .iter()
                .filter(|(name, _)| {
                    req.marker
                        .as_ref()
                        .is_none_or(|m| name.as_str() > m.as_str())
                })
                .filter(|(_, a)| filter.as_ref().is_none_or(|id| &a.target_key_id == id));
            let page: Vec<Value> = matching
                .by_ref()
                .take(limit)
                .map(|(name, a)| {
                    json!({
                        "AliasName": name,
                        "AliasArn": self.alias_arn(name),
                        "TargetKeyId": a.target_key_id,
                        "CreationDate": a.creation_date,
                        "LastUpdatedDate": a.last_updated_date,
                    })
                })
                .collect();
            let more = matching.next().is_some();
            let next = if more {
                page.last()
                    .and_then(|v| v["AliasName"].as_str())
                    .map(str::to_string)
            } else {
                None
            };
            (page, next)
        })?;
        let mut out = json!({ "Aliases": entries, "Truncated": next.is_some() });
        if let Some(marker) = next {
            out["NextMarker"] = Value::String(marker);
        }
        Ok(Some(out))
    }
}

fn dry_run() -> ApiError {
    ApiError::new(
        Code::DryRunOperation,
        "The request would have succeeded, but the DryRun option is set.",
    )
}

fn looks_like_key_id(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn check_alias_name(alias: &str) -> Result<(), ApiError> {
    check_len("aliasName", alias, 1, MAX_ALIAS_NAME_LEN)?;
    let Some(name) = alias.strip_prefix("alias/") else {
        return Err(ApiError::new(
            Code::InvalidAliasName,
            format!("Alias must start with the prefix \"alias/\": {alias}"),
        ));
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-'))
    {
        return Err(ApiError::validation(
            "aliasName",
            alias,
            "Member must satisfy regular expression pattern: ^alias/[a-zA-Z0-9/_-]+$",
        ));
    }
    if name.starts_with("aws/") {
        return Err(ApiError::new(
            Code::InvalidAliasName,
            "Alias names that begin with alias/aws/ are reserved for AWS managed keys",
        ));
    }
    Ok(())
}
