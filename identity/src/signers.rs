//! Which identities may sign the chain's entries at a point: one per replica of the
//! deployment, each introduced by its replica's latest boot entry.
//!
//! A deployment of one enclave is a deployment of one replica (named `""`): each boot
//! supersedes the identity before it, so entries signed by an earlier boot's identity after
//! a later boot are refused. Replicas sharing one log (over PostgreSQL) have names; a
//! replica's boot supersedes only its own earlier identity, and entries of different
//! replicas interleave, each naming its signer (`signer`, [`crate::AuditEntry`]). At most
//! [`MAX_REPLICAS`] names are kept: a boot under a new name beyond that evicts the replica
//! that signed least recently, and the enclave (replay) and auditors (the chain verifier)
//! both follow this one rule, so they agree on who may sign where.

use serde::{Deserialize, Serialize};

/// Most replicas (names) whose identities may sign at once.
pub const MAX_REPLICAS: usize = 64;

/// Longest replica name, in bytes.
pub const MAX_REPLICA_NAME: usize = 64;

/// Whether `name` can name a replica: up to [`MAX_REPLICA_NAME`] bytes of ASCII letters,
/// digits, `.`, `_` and `-` (an EC2 instance id, a host name); `""` is the single enclave.
pub fn valid_replica_name(name: &str) -> bool {
    name.len() <= MAX_REPLICA_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A replica's name as attestation documents carry it: a fixed-size value, so the user
/// data stays `Copy`. Empty ([`ReplicaName::SINGLE`]): the deployment's single enclave.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplicaName {
    len: u8,
    bytes: [u8; MAX_REPLICA_NAME],
}

impl ReplicaName {
    /// The single enclave's (no name).
    pub const SINGLE: ReplicaName = ReplicaName {
        len: 0,
        bytes: [0; MAX_REPLICA_NAME],
    };

    /// `name`, if it can name a replica ([`valid_replica_name`]).
    pub fn new(name: &str) -> Option<Self> {
        if !valid_replica_name(name) {
            return None;
        }
        let mut bytes = [0; MAX_REPLICA_NAME];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Some(Self {
            len: name.len() as u8,
            bytes,
        })
    }

    /// The name (`""` for the single enclave).
    pub fn as_str(&self) -> &str {
        // Only valid names (ASCII) are ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// Whether this is the single enclave.
    pub fn is_single(&self) -> bool {
        self.len == 0
    }
}

impl Default for ReplicaName {
    fn default() -> Self {
        Self::SINGLE
    }
}

impl std::fmt::Debug for ReplicaName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for ReplicaName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One replica's identity in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signer {
    /// The replica's name (`""`: the single enclave).
    pub replica: String,
    /// The identity's public key.
    pub identity: [u8; 32],
    /// The sequence number of the boot entry that introduced it.
    pub boot_seq: u64,
    /// The last entry it signed.
    pub last_seq: u64,
}

/// The identities in force, by replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Signers {
    signers: Vec<Signer>,
}

impl Signers {
    /// A boot entry at `seq` of replica `replica` introduces `identity`; returns the
    /// replaced signer: the replica's earlier identity, or, for a new name when
    /// [`MAX_REPLICAS`] are kept, the one that signed least recently.
    pub fn boot(&mut self, replica: &str, identity: [u8; 32], seq: u64) -> Option<Signer> {
        let signer = Signer {
            replica: replica.to_string(),
            identity,
            boot_seq: seq,
            last_seq: seq,
        };
        let slot = match self.signers.iter().position(|s| s.replica == replica) {
            Some(i) => Some(i),
            None if self.signers.len() >= MAX_REPLICAS => self
                .signers
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.last_seq)
                .map(|(i, _)| i),
            None => None,
        };
        match slot {
            Some(i) => Some(std::mem::replace(&mut self.signers[i], signer)),
            None => {
                self.signers.push(signer);
                None
            }
        }
    }

    /// The signer in force with this identity.
    pub fn find(&self, identity: &[u8; 32]) -> Option<&Signer> {
        self.signers.iter().find(|s| &s.identity == identity)
    }

    /// Notes that `identity` signed entry `seq`; false if it is not in force.
    pub fn signed(&mut self, identity: &[u8; 32], seq: u64) -> bool {
        match self.signers.iter_mut().find(|s| &s.identity == identity) {
            Some(s) => {
                s.last_seq = s.last_seq.max(seq);
                true
            }
            None => false,
        }
    }

    /// The identity of the latest boot: the signer of entries that name none (written
    /// before entries named their signer, by a single enclave).
    pub fn latest(&self) -> Option<&Signer> {
        self.signers.iter().max_by_key(|s| s.boot_seq)
    }

    /// The signers in force.
    pub fn iter(&self) -> impl Iterator<Item = &Signer> {
        self.signers.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.signers.len()
    }

    /// None yet (before the first boot entry).
    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// Checks a decoded set (from a sealed snapshot): bounded, names valid and distinct.
    pub fn is_well_formed(&self) -> bool {
        self.signers.len() <= MAX_REPLICAS
            && self.signers.iter().enumerate().all(|(i, s)| {
                valid_replica_name(&s.replica)
                    && s.boot_seq <= s.last_seq
                    && self.signers[..i]
                        .iter()
                        .all(|t| t.replica != s.replica && t.identity != s.identity)
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_supersedes_only_its_own_replica() {
        let mut s = Signers::default();
        assert_eq!(s.boot("", [1; 32], 0), None);
        assert_eq!(s.boot("", [2; 32], 5).map(|o| o.identity), Some([1; 32]));
        assert!(
            s.find(&[1; 32]).is_none(),
            "the single enclave's old identity is gone"
        );
        assert_eq!(s.boot("b", [3; 32], 6), None);
        assert!(s.signed(&[2; 32], 7) && s.signed(&[3; 32], 8));
        assert!(!s.signed(&[1; 32], 9));
        assert_eq!(s.latest().map(|l| l.identity), Some([3; 32]));
        assert_eq!(s.len(), 2);
        assert!(s.is_well_formed());
    }

    #[test]
    fn beyond_the_limit_the_least_recent_signer_goes() {
        let mut s = Signers::default();
        for i in 0..MAX_REPLICAS as u64 {
            s.boot(&format!("r{i}"), [i as u8 + 1; 32], i);
        }
        // r0 signs late; r1 is then the one that signed least recently.
        assert!(s.signed(&[1; 32], 1000));
        let evicted = s.boot("new", [200; 32], 1001).unwrap();
        assert_eq!(evicted.replica, "r1");
        assert_eq!(s.len(), MAX_REPLICAS);
        assert!(s.find(&[1; 32]).is_some());
    }

    #[test]
    fn decoded_sets_are_checked() {
        let mut s = Signers::default();
        s.boot("a", [1; 32], 0);
        s.boot("b", [2; 32], 1);
        let mut bytes = Vec::new();
        ciborium::into_writer(&s, &mut bytes).unwrap();
        let back: Signers = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert_eq!(back, s);
        let twice = Signers {
            signers: vec![s.signers[0].clone(), s.signers[0].clone()],
        };
        assert!(!twice.is_well_formed());
        let bad_name = Signers {
            signers: vec![Signer {
                replica: "a b".into(),
                ..s.signers[0].clone()
            }],
        };
        assert!(!bad_name.is_well_formed());
        assert!(valid_replica_name("i-0123456789abcdef0") && valid_replica_name(""));
        assert!(!valid_replica_name(&"x".repeat(65)));
    }
}
