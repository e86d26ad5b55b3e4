//! The enclave's own state, sealed and stored by the proxy between boots: a counter and the
//! ids of destroyed keys.
//!
//! What "destroyed forever" rests on: within one boot, the in-memory set below, which the
//! parent cannot touch. Across boots, the parent must hand back the latest sealed state; it
//! cannot forge or edit one (AES-GCM under a key derived from the KMS-released root), and on
//! every boot after the first it must present one. What it can do is replay an older state
//! sealed before the destruction, or pass the boot off as a first boot: Nitro Enclaves
//! have no monotonic storage to stop that. The proxy also deletes the key's blob, and the
//! `counter` increases with every change so that the audit chain can expose a rollback.

use std::collections::BTreeSet;

use zeroize::Zeroizing;

use crate::seal::{Curve, ObjectId, ObjectKind};

/// Most destroyed keys one state records (keeps the sealed state under 512 KiB).
pub const MAX_DESTROYED: usize = 32 * 1024;

/// The identity of the sealed state object.
pub const STATE_OBJECT: ObjectId = ObjectId {
    kind: ObjectKind::EnclaveState,
    id: [0; 16],
    version: 1,
    curve: Curve::None,
};

/// Destroyed key ids and a change counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnclaveState {
    /// Increases with every change.
    pub counter: u64,
    /// Ids of destroyed keys.
    pub destroyed: BTreeSet<[u8; 16]>,
}

/// The sealed state's plaintext does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("enclave state is malformed")]
pub struct StateMalformed;

impl EnclaveState {
    /// Layout: counter (8, BE) ‖ count (4, BE) ‖ count × id (16).
    pub fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(12 + 16 * self.destroyed.len()));
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&(self.destroyed.len() as u32).to_be_bytes());
        for id in &self.destroyed {
            out.extend_from_slice(id);
        }
        out
    }

    /// Parses a plaintext, checking the count against the length before allocating.
    pub fn from_plaintext(bytes: &[u8]) -> Result<Self, StateMalformed> {
        if bytes.len() < 12 {
            return Err(StateMalformed);
        }
        let counter = u64::from_be_bytes(bytes[..8].try_into().map_err(|_| StateMalformed)?);
        let count = u32::from_be_bytes(bytes[8..12].try_into().map_err(|_| StateMalformed)?);
        let count = usize::try_from(count).map_err(|_| StateMalformed)?;
        if count > MAX_DESTROYED || bytes.len() != 12 + 16 * count {
            return Err(StateMalformed);
        }
        let mut destroyed = BTreeSet::new();
        for chunk in bytes[12..].chunks_exact(16) {
            let id: [u8; 16] = chunk.try_into().map_err(|_| StateMalformed)?;
            if !destroyed.insert(id) {
                return Err(StateMalformed);
            }
        }
        Ok(Self { counter, destroyed })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let mut s = EnclaveState {
            counter: 3,
            ..Default::default()
        };
        s.destroyed.insert([1; 16]);
        s.destroyed.insert([2; 16]);
        assert_eq!(EnclaveState::from_plaintext(&s.to_plaintext()).unwrap(), s);
        let p = s.to_plaintext();
        assert!(EnclaveState::from_plaintext(&p[..p.len() - 1]).is_err());
        // A count that promises more than the bytes hold is refused before allocating.
        let mut lying = p.to_vec();
        lying[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(EnclaveState::from_plaintext(&lying).is_err());
        // Duplicate ids are refused.
        let mut dup = p.to_vec();
        let second = dup[28..44].to_vec();
        dup[12..28].copy_from_slice(&second);
        assert!(EnclaveState::from_plaintext(&dup).is_err());
    }
}
