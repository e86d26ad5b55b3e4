//! Who may change the rules: the admin set (M of N admin keys) and the digest admins
//! approve. Shared by the enclave, which enforces them, and clients, which recompute the
//! digests of what they are shown before approving.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strongroom_auth::PrincipalKey;

use crate::error::PolicyError;
use crate::policy::{KeySpec, Policy};

/// Most admins in a set.
pub const MAX_ADMINS: usize = 32;
/// Largest genesis document.
pub const MAX_GENESIS_LEN: usize = 320 * 1024;

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

/// The first boot's document: the admin set and the first policy. The enclave seals it;
/// its digest is in every attestation document, and admins compute it from their file
/// before the first boot (`strongroom genesis digest`) to pin the deployment.
#[derive(Clone, Debug)]
pub struct Genesis {
    /// The admins.
    pub admins: AdminSet,
    /// The first policy.
    pub policy: Policy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisDoc {
    version: u32,
    admins: AdminSetDoc,
    policy: serde_json::Value,
}

impl Genesis {
    /// Parses `{"version": 1, "admins": {...}, "policy": {...}}`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, PolicyError> {
        if bytes.len() > MAX_GENESIS_LEN {
            return Err(PolicyError::Genesis(format!(
                "genesis document larger than {MAX_GENESIS_LEN} bytes"
            )));
        }
        let doc: GenesisDoc = serde_json::from_slice(bytes)
            .map_err(|e| PolicyError::Genesis(format!("genesis document: {e}")))?;
        if doc.version != 1 {
            return Err(PolicyError::Genesis(format!(
                "genesis version {} is not supported (expected 1)",
                doc.version
            )));
        }
        let admins = AdminSet::from_doc(&doc.admins)?;
        let policy_bytes = serde_json::to_vec(&doc.policy)
            .map_err(|e| PolicyError::Genesis(format!("genesis policy: {e}")))?;
        let policy = Policy::from_json(&policy_bytes)
            .map_err(|e| PolicyError::Genesis(format!("policy: {e}")))?;
        Ok(Self { admins, policy })
    }

    /// The genesis digest published in attestation documents: SHA-256 over a domain tag,
    /// the admin-set digest and the policy digest.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"strongroom/v1/genesis");
        h.update(self.admins.digest());
        h.update(self.policy.digest());
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Value, json};

    use super::*;

    fn genesis_json() -> Value {
        let policy: Value =
            serde_json::from_str(include_str!("../examples/dev-genesis.json")).unwrap();
        json!({
            "version": 1,
            "admins": {"threshold": 2, "keys": [
                {"algorithm": "ed25519", "public": "e20a98e7a9c97fbcfc0d36ca8682277201f1102d8c879bd4cf867a767ff7ad3d"},
                {"algorithm": "ed25519", "public": "8610da621e231ff5a45a93d167b04536f7ef89e6a9a6b6886e436a7bb95ddfa4"},
                {"algorithm": "ecdsa-p256", "public": "0288634b10e27f07013e3056c135ba8c9160a2fee508a1122ee9cfd6bbb0448703"}
            ]},
            "policy": policy,
        })
    }

    fn parse(doc: &Value) -> Result<Genesis, PolicyError> {
        Genesis::from_json(doc.to_string().as_bytes())
    }

    #[test]
    fn the_digest_covers_admins_and_policy_and_not_formatting() {
        let doc = genesis_json();
        let genesis = parse(&doc).unwrap();
        let pretty = serde_json::to_vec_pretty(&doc).unwrap();
        assert_eq!(
            Genesis::from_json(&pretty).unwrap().digest(),
            genesis.digest()
        );

        let mut fewer = doc.clone();
        fewer["admins"]["threshold"] = 1.into();
        assert_ne!(parse(&fewer).unwrap().digest(), genesis.digest());
        let mut other_chain = doc;
        other_chain["policy"]["chain_id"] = 1.into();
        assert_ne!(parse(&other_chain).unwrap().digest(), genesis.digest());
    }

    #[test]
    fn bad_documents_are_refused_with_the_reason() {
        let doc = genesis_json();
        let mut v2 = doc.clone();
        v2["version"] = 2.into();
        assert!(parse(&v2).unwrap_err().to_string().contains("version 2"));
        let mut extra = doc.clone();
        extra["note"] = "x".into();
        assert!(
            parse(&extra)
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
        let mut admins = doc.clone();
        admins["admins"]["threshold"] = 4.into();
        assert!(matches!(parse(&admins), Err(PolicyError::AdminSet(_))));
        let mut policy = doc;
        policy["policy"]["chain_id"] = 0.into();
        assert_eq!(
            parse(&policy).unwrap_err().to_string(),
            "policy: chain_id must not be 0"
        );
        let huge = vec![b' '; MAX_GENESIS_LEN + 1];
        assert!(
            Genesis::from_json(&huge)
                .unwrap_err()
                .to_string()
                .contains("larger than")
        );
    }
}
