//! Signing requests that wait for approvals or a time-lock. Pure bookkeeping: the enclave
//! re-evaluates the policy (with the approvals gathered) whenever one might complete.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use strongroom_policy::{Action, Decision, Intent};

/// Most requests one principal may have waiting at once.
pub const MAX_PENDING_PER_PRINCIPAL: usize = 16;
/// Most bytes of request bodies one principal may have waiting at once.
pub const MAX_PENDING_BYTES_PER_PRINCIPAL: usize = 256 * 1024;
/// Most finished requests kept per principal for collection; older ones are dropped.
pub const MAX_FINISHED_PER_PRINCIPAL: usize = 8;
/// Largest signing answer a finished request keeps; a larger one keeps its hashes and
/// signature only (the full answer went to whoever completed the request, and the
/// transaction can be rebuilt from the body and the signature).
pub const MAX_KEPT_RESULT_LEN: usize = 16 * 1024;

/// Where a request is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Waiting for approvals or a time-lock.
    Pending,
    /// Signed; `result` is the answer the requester would have had.
    Signed {
        /// The signing answer (JSON).
        result: serde_json::Value,
    },
    /// Denied when re-evaluated (the policy or the velocity totals changed meanwhile).
    Denied,
    /// Cancelled.
    Cancelled {
        /// Key id of who cancelled.
        by: String,
    },
}

/// A signing request that could not be signed at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    /// Random id (16 hex characters).
    pub id: String,
    /// The requesting principal.
    pub principal: String,
    /// The key to sign with.
    pub key_id: String,
    /// The key's label.
    pub key_label: String,
    /// The request path it came on (decides how `body` decodes).
    pub action: Action,
    /// The exact request body, decoded again when the request is signed.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// The decoded intent.
    #[serde(with = "intent_as_json")]
    pub intent: Intent,
    /// What approvers sign: [`Intent::digest`].
    #[serde(with = "serde_bytes")]
    pub intent_digest: Vec<u8>,
    /// When it was requested (enclave clock): time-locks count from here.
    pub requested_at: u64,
    /// Principal ids that approved.
    pub approvals: BTreeSet<String>,
    /// The latest decision about it.
    pub decision: Decision,
    /// Where it is.
    pub status: Status,
}

/// The intent is kept as its JSON inside the sealed state's CBOR: alloy's fixed-size byte
/// types (hashes, addresses) write bytes to a binary format but read back only hex text, so
/// a transaction intent would not survive a restart in plain CBOR.
mod intent_as_json {
    use serde::{Deserialize, Deserializer, Serializer};
    use strongroom_policy::Intent;

    pub fn serialize<S: Serializer>(intent: &Intent, s: S) -> Result<S::Ok, S::Error> {
        let json = serde_json::to_vec(intent).map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&json)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Intent, D::Error> {
        let json = serde_bytes::ByteBuf::deserialize(d)?;
        serde_json::from_slice(&json).map_err(serde::de::Error::custom)
    }
}

/// The requests book. Bounded per principal, so no principal can fill it for others:
/// [`MAX_PENDING_PER_PRINCIPAL`] waiting requests with at most
/// [`MAX_PENDING_BYTES_PER_PRINCIPAL`] of bodies, and the newest
/// [`MAX_FINISHED_PER_PRINCIPAL`] finished ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requests {
    items: Vec<PendingRequest>,
}

/// A principal is at one of its quotas.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaError {
    /// Too many requests waiting.
    #[error(
        "principal {0:?} has {MAX_PENDING_PER_PRINCIPAL} requests waiting for approvals or a \
         time-lock; cancel or complete some first"
    )]
    Requests(String),
    /// Too many bytes of bodies waiting.
    #[error(
        "principal {principal:?} has {held} bytes of request bodies waiting; another {more} \
         would exceed {MAX_PENDING_BYTES_PER_PRINCIPAL}"
    )]
    Bytes {
        /// The principal.
        principal: String,
        /// Bytes waiting.
        held: usize,
        /// Bytes asked for.
        more: usize,
    },
}

impl Requests {
    /// All requests, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &PendingRequest> {
        self.items.iter()
    }

    /// A request by id.
    pub fn get(&self, id: &str) -> Option<&PendingRequest> {
        self.items.iter().find(|r| r.id == id)
    }

    /// A request by id, to change it.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut PendingRequest> {
        self.items.iter_mut().find(|r| r.id == id)
    }

    /// Whether `principal` may have one more request waiting with a body of `len` bytes.
    pub fn check_quota(&self, principal: &str, len: usize) -> Result<(), QuotaError> {
        let (count, held) = self
            .items
            .iter()
            .filter(|r| r.principal == principal && r.status == Status::Pending)
            .fold((0usize, 0usize), |(c, b), r| (c + 1, b + r.body.len()));
        if count >= MAX_PENDING_PER_PRINCIPAL {
            return Err(QuotaError::Requests(principal.to_string()));
        }
        if held.saturating_add(len) > MAX_PENDING_BYTES_PER_PRINCIPAL {
            return Err(QuotaError::Bytes {
                principal: principal.to_string(),
                held,
                more: len,
            });
        }
        Ok(())
    }

    /// Adds a request, within its principal's quota.
    pub fn insert(&mut self, request: PendingRequest) -> Result<(), QuotaError> {
        self.check_quota(&request.principal, request.body.len())?;
        self.items.push(request);
        Ok(())
    }

    /// Drops `principal`'s oldest finished requests beyond [`MAX_FINISHED_PER_PRINCIPAL`].
    pub fn prune(&mut self, principal: &str) {
        let finished = self
            .items
            .iter()
            .filter(|r| r.principal == principal && r.status != Status::Pending)
            .count();
        let mut excess = finished.saturating_sub(MAX_FINISHED_PER_PRINCIPAL);
        self.items.retain(|r| {
            if excess > 0 && r.principal == principal && r.status != Status::Pending {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }

    /// Checks the invariants of a book read back from sealed state: unique ids, every
    /// principal within its quotas.
    pub fn is_well_formed(&self) -> bool {
        let ids: BTreeSet<&str> = self.items.iter().map(|r| r.id.as_str()).collect();
        if ids.len() != self.items.len() {
            return false;
        }
        let principals: BTreeSet<&str> = self.items.iter().map(|r| r.principal.as_str()).collect();
        principals.into_iter().all(|p| {
            let mine = || self.items.iter().filter(move |r| r.principal == p);
            let pending = mine().filter(|r| r.status == Status::Pending);
            let bytes: usize = pending.clone().map(|r| r.body.len()).sum();
            pending.count() <= MAX_PENDING_PER_PRINCIPAL
                && bytes <= MAX_PENDING_BYTES_PER_PRINCIPAL
                && mine()
                    .filter(|r| r.status != Status::Pending)
                    .all(|r| r.body.len() <= MAX_KEPT_RESULT_LEN)
                && mine().filter(|r| r.status != Status::Pending).count()
                    <= MAX_FINISHED_PER_PRINCIPAL
        })
    }
}

/// What a replica's finished request keeps of its signing answer: its [`kept_result`]
/// without what a parent could use — the signed transaction (`raw`), the signature and its
/// parts — and with the SHA-256 of `raw` and `signature` as released (`raw_sha256`,
/// `signature_sha256`) and `"withheld": true`. Its record leaves the enclave before the
/// answer does (decide → append → release); the requester gets the whole result by reading
/// the request with its key's blob, when the enclave signs again (deterministically, RFC
/// 6979: the same signature) and checks it against these hashes.
pub fn committed_result(result: &serde_json::Value) -> serde_json::Value {
    let mut kept = kept_result(result);
    if let Some(obj) = kept.as_object_mut() {
        for name in ["raw", "signature"] {
            if let Some(text) = obj
                .remove(name)
                .as_ref()
                .and_then(|v| v.as_str().map(str::to_owned))
            {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
                obj.insert(
                    format!("{name}_sha256"),
                    hex::encode(digest.as_ref()).into(),
                );
            }
        }
        for name in ["r", "s", "v"] {
            obj.remove(name);
        }
        obj.insert("withheld".into(), true.into());
    }
    kept
}

/// Whether `resigned` is the result `committed` ([`committed_result`]) commits to.
pub fn matches_commitment(committed: &serde_json::Value, resigned: &serde_json::Value) -> bool {
    ["raw", "signature"].iter().all(|name| {
        let want = committed
            .get(format!("{name}_sha256"))
            .and_then(|v| v.as_str());
        let have = resigned.get(*name).and_then(|v| v.as_str()).map(|text| {
            hex::encode(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref(),
            )
        });
        want == have.as_deref()
    })
}

/// What a finished request keeps of its signing answer: all of it up to
/// [`MAX_KEPT_RESULT_LEN`], else its hashes and signature.
pub fn kept_result(result: &serde_json::Value) -> serde_json::Value {
    let len = serde_json::to_vec(result).map_or(usize::MAX, |v| v.len());
    if len <= MAX_KEPT_RESULT_LEN {
        return result.clone();
    }
    let mut kept = serde_json::Map::new();
    for name in [
        "hash",
        "signing_hash",
        "signature",
        "r",
        "s",
        "v",
        "decision",
    ] {
        if let Some(v) = result.get(name) {
            kept.insert(name.into(), v.clone());
        }
    }
    kept.insert("raw_omitted".into(), true.into());
    serde_json::Value::Object(kept)
}
