//! Request bodies decoded inside the enclave into what they do (the intent the policy
//! judges) and what to sign. The enclave signs only hashes it computed itself from bytes it
//! decoded, never a hash handed to it — except for `sign/digest`, which the policy must
//! grant explicitly.

use serde::Deserialize;
use serde_json::{Value, json};
use strongroom_eth::{TypedData, UnsignedTransaction, message_from_request_body, signature_hex};
use strongroom_policy::{Action, Intent};

use crate::keys::KeyRecord;

/// What to sign once the policy allows.
#[derive(Debug)]
pub enum SignJob {
    /// An Ethereum transaction: sign its signing hash, answer the signed encoding.
    Transaction(Box<UnsignedTransaction>),
    /// A 32-byte hash answered as a 65-byte r‖s‖v signature (EIP-712, EIP-191).
    Hash([u8; 32]),
    /// A blind digest answered as r, s, v (recovery id 0/1) and the 65-byte form.
    Digest([u8; 32]),
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DigestBody {
    digest: String,
}

/// Decodes the body of a signing call into its intent and its job. `address` is the key's
/// address, which a transaction's optional `from` must name.
pub fn decode(
    action: Action,
    body: &[u8],
    address: &str,
) -> Result<(Intent, SignJob), PayloadError> {
    let fail = |e: &dyn std::fmt::Display| PayloadError(e.to_string());
    match action {
        Action::SignTransaction => {
            let (tx, from) = UnsignedTransaction::from_request_body(body).map_err(|e| fail(&e))?;
            if let Some(from) = from
                && !from.to_checksum(None).eq_ignore_ascii_case(address)
            {
                return Err(PayloadError(format!(
                    "transaction \"from\" {from} is not this key's address {address}"
                )));
            }
            Ok((
                Intent::Transaction(tx.intent()),
                SignJob::Transaction(Box::new(tx)),
            ))
        }
        Action::SignTypedData => {
            let data = TypedData::from_json(body).map_err(|e| fail(&e))?;
            let intent = data.intent();
            let hash = intent.signing_hash.0;
            Ok((Intent::TypedData(intent), SignJob::Hash(hash)))
        }
        Action::SignMessage => {
            let (_, intent) = message_from_request_body(body).map_err(|e| fail(&e))?;
            let hash = intent.signing_hash.0;
            Ok((Intent::Message(intent), SignJob::Hash(hash)))
        }
        Action::SignDigest => {
            let parsed: DigestBody =
                strongroom_eth::from_slice_strict(body).map_err(|e| PayloadError(e.to_string()))?;
            let digits = parsed.digest.strip_prefix("0x").unwrap_or(&parsed.digest);
            let bytes =
                hex::decode(digits).map_err(|_| PayloadError("digest is not hex".to_string()))?;
            let digest: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                PayloadError(format!("digest must be 32 bytes, got {}", bytes.len()))
            })?;
            Ok((
                Intent::Digest {
                    digest: digest.into(),
                },
                SignJob::Digest(digest),
            ))
        }
        Action::CreateKey | Action::DestroyKey => Err(PayloadError(format!(
            "{} is not a signing action",
            action.as_str()
        ))),
    }
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Signs a job with a key and builds the answer's JSON (without the decision).
pub fn sign(job: &SignJob, key: &KeyRecord) -> Value {
    match job {
        SignJob::Transaction(tx) => {
            let hash = tx.signing_hash();
            let (r, s, v) = key.sign_raw(&hash.0);
            let signed = tx.encode_signed(r, s, v == 1);
            json!({
                "raw": hex0x(&signed.raw),
                "hash": hex0x(signed.hash.as_slice()),
                "signing_hash": hex0x(hash.as_slice()),
            })
        }
        SignJob::Hash(hash) => {
            let (r, s, v) = key.sign_raw(hash);
            json!({
                "signature": signature_hex(r, s, v == 1),
                "signing_hash": hex0x(hash),
            })
        }
        SignJob::Digest(digest) => {
            let (r, s, v) = key.sign_raw(digest);
            let mut full = Vec::with_capacity(65);
            full.extend_from_slice(&r);
            full.extend_from_slice(&s);
            full.push(v);
            json!({
                "signature": hex0x(&full),
                "r": hex0x(&r),
                "s": hex0x(&s),
                "v": v,
            })
        }
    }
}
