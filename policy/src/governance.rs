//! Who may change the rules: the admin set (M of N admin keys) and the digest admins
//! approve. Shared by the enclave, which enforces them, and clients, which recompute the
//! digests of what they are shown before approving.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strongroom_auth::PrincipalKey;

use crate::error::PolicyError;
use crate::policy::KeySpec;

/// Most admins in a set.
pub const MAX_ADMINS: usize = 32;

/// The admin set: M of N admin keys must approve every change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminSet {
    threshold: u32,
    keys: Vec<PrincipalKey>,
}

/// The JSON form of an admin set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSetDoc {
    /// Approvals needed (M).
    pub threshold: u32,
    /// The admins' public keys (N).
    pub keys: Vec<KeySpec>,
}

impl AdminSet {
    /// Validates an admin set: 1 ≤ M ≤ N ≤ 32, distinct valid keys.
    pub fn from_doc(doc: &AdminSetDoc) -> Result<Self, PolicyError> {
        if doc.keys.is_empty() || doc.keys.len() > MAX_ADMINS {
            return Err(PolicyError::AdminSet(format!(
                "an admin set needs 1 to {MAX_ADMINS} keys, got {}",
                doc.keys.len()
            )));
        }
        if doc.threshold == 0 || doc.threshold as usize > doc.keys.len() {
            return Err(PolicyError::AdminSet(format!(
                "admin threshold must be between 1 and the number of admins ({}), got {}",
                doc.keys.len(),
                doc.threshold
            )));
        }
        let mut keys = Vec::with_capacity(doc.keys.len());
        let mut seen = BTreeSet::new();
        for spec in &doc.keys {
            let key = spec
                .to_key()
                .map_err(|e| PolicyError::AdminSet(format!("admin key: {e}")))?;
            if !seen.insert(key.id().to_string()) {
                return Err(PolicyError::AdminSet(format!(
                    "admin key {} is listed twice",
                    key.id()
                )));
            }
            keys.push(key);
        }
        keys.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(Self {
            threshold: doc.threshold,
            keys,
        })
    }

    /// The document form (keys in id order).
    pub fn to_doc(&self) -> AdminSetDoc {
        AdminSetDoc {
            threshold: self.threshold,
            keys: self.keys.iter().map(KeySpec::from_key).collect(),
        }
    }

    /// Approvals needed.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// The admin keys, in id order.
    pub fn keys(&self) -> &[PrincipalKey] {
        &self.keys
    }

    /// The admin key with this id.
    pub fn key(&self, id: &str) -> Option<&PrincipalKey> {
        self.keys.iter().find(|k| k.id() == id)
    }

    /// SHA-256 over a domain tag, the threshold and the keys in id order.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"strongroom/v1/admin-set");
        h.update(self.threshold.to_be_bytes());
        h.update((self.keys.len() as u32).to_be_bytes());
        for key in &self.keys {
            h.update([key.algorithm() as u8]);
            h.update((key.public_bytes().len() as u32).to_be_bytes());
            h.update(key.public_bytes());
        }
        h.finalize().into()
    }
}

/// The digest admins approve: the change, and the admin set and policy it was proposed
/// against, so an approval cannot be carried over to a proposal made against other rules.
///
/// `kind` is `policy` or `admins`; `content` is the new policy's or admin set's digest.
/// Clients recompute it from the proposal they were shown before approving.
pub fn proposal_digest(
    id: &str,
    kind: &str,
    content: &[u8; 32],
    base_admins: &[u8; 32],
    base_policy: &[u8; 32],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"strongroom/v1/proposal");
    h.update((id.len() as u32).to_be_bytes());
    h.update(id.as_bytes());
    h.update(kind.as_bytes());
    h.update(content);
    h.update(base_admins);
    h.update(base_policy);
    h.finalize().into()
}
