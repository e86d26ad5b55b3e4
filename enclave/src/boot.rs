//! A later boot: the snapshot the parent hands back and the records after it, verified and
//! replayed through [`EnclaveState::apply`].
//!
//! What a record must be to be replayed: the next sequence number, linked to the previous
//! record's hash, and signed by the identity that signed at that point — the snapshot's,
//! or the one a boot record after it introduced. A boot record's identity counts only with
//! its `identity_tag`, an HMAC under a key derived from the root key, so only an enclave of
//! this deployment could have written it: the parent cannot slip in records of its own.
//! It can withhold the newest records (stop early); the boot then continues the chain from
//! where the parent stopped, under a sequence number already issued — a fork, which every
//! client that saw a later head refuses.

use aws_lc_rs::hmac;
use strongroom_identity::{AuditEntry, IdentityPublic};
use strongroom_protocol::messages::AuditRecord;
use zeroize::Zeroizing;

use crate::record::{Position, Record, RecordError, Resumed, hex32};
use crate::state::EnclaveState;

/// Domain tag of an identity tag.
const IDENTITY_TAG_DOMAIN: &[u8] = b"strongroom/v1/boot-identity";

/// The key that tags boot identities as this deployment's. Never leaves the enclave.
pub struct IdentityTagKey(hmac::Key);

impl std::fmt::Debug for IdentityTagKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityTagKey(..)")
    }
}

impl IdentityTagKey {
    /// The key from its derived bytes.
    pub fn new(bytes: &Zeroizing<[u8; 32]>) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes.as_ref()))
    }

    fn message(identity: &[u8; 32]) -> Vec<u8> {
        [IDENTITY_TAG_DOMAIN, identity.as_slice()].concat()
    }

    /// The tag of `identity`.
    pub fn tag(&self, identity: &[u8; 32]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&self.0, &Self::message(identity)).as_ref());
        out
    }

    /// Whether `tag` is `identity`'s (constant time).
    pub fn verify(&self, identity: &[u8; 32], tag: &[u8; 32]) -> bool {
        hmac::verify(&self.0, &Self::message(identity), tag).is_ok()
    }
}

/// Why a replayed record was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// Records must come in order from the one asked for.
    #[error("record {got} sent where record {due} is due")]
    OutOfOrder {
        /// The sequence number sent.
        got: u64,
        /// The one due.
        due: u64,
    },
    /// The line does not parse as a signed entry, or its header disagrees with its place.
    #[error("record {seq}: {detail}")]
    Malformed {
        /// The record's place.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// The record does not follow the previous one's hash.
    #[error("record {0} does not follow the record before it (its prev is another hash)")]
    Unlinked(u64),
    /// The signature is not the signing identity's, or a boot's identity is not tagged as
    /// this deployment's.
    #[error("record {seq} is not this deployment's: {detail}")]
    Foreign {
        /// The record's place.
        seq: u64,
        /// What is wrong.
        detail: &'static str,
    },
    /// The record is authentic but does not decode or apply.
    #[error("record {seq}: {error}")]
    Record {
        /// The record's place.
        seq: u64,
        /// Why.
        error: RecordError,
    },
}

/// The state being rebuilt from a snapshot and the records after it.
#[derive(Debug)]
pub struct Replay {
    state: EnclaveState,
    /// The snapshot's position (next sequence number and head).
    snapshot: (u64, [u8; 32]),
    replayed: u64,
}

impl Replay {
    /// Starts from a snapshot's state.
    pub fn new(state: EnclaveState) -> Self {
        let snapshot = (state.audit_next, state.audit_head);
        Self {
            state,
            snapshot,
            replayed: 0,
        }
    }

    /// The sequence number of the next record wanted.
    pub fn next_seq(&self) -> u64 {
        self.state.audit_next
    }

    /// Verifies and applies records in order; stops at the first refused, with the
    /// records before it applied.
    pub fn push(
        &mut self,
        records: &[AuditRecord],
        tags: &IdentityTagKey,
    ) -> Result<(), ReplayError> {
        for r in records {
            self.one(r, tags)?;
        }
        Ok(())
    }

    fn one(&mut self, r: &AuditRecord, tags: &IdentityTagKey) -> Result<(), ReplayError> {
        verify_and_apply(&mut self.state, r, tags)?;
        self.replayed += 1;
        Ok(())
    }

    /// The state as rebuilt so far.
    pub fn state(&self) -> &EnclaveState {
        &self.state
    }

    /// What the boot record says it resumed from.
    pub fn resumed(&self) -> Resumed {
        Resumed {
            snapshot_next_seq: self.snapshot.0,
            snapshot_head: hex::encode(self.snapshot.1),
            replayed: self.replayed,
        }
    }

    /// The rebuilt state, and what the boot record says it resumed from.
    pub fn finish(self) -> (EnclaveState, Resumed) {
        let resumed = self.resumed();
        (self.state, resumed)
    }
}

/// Verifies one stored record against the state it must follow (its number, its link to
/// the previous record, its signer in force) and applies it; returns it. What a boot's
/// replay and a replica catching up on the others' records both do.
pub fn verify_and_apply(
    state: &mut EnclaveState,
    r: &AuditRecord,
    tags: &IdentityTagKey,
) -> Result<Record, ReplayError> {
    let due = state.audit_next;
    if r.seq != due {
        return Err(ReplayError::OutOfOrder { got: r.seq, due });
    }
    let malformed = |detail: String| ReplayError::Malformed { seq: due, detail };
    let entry = AuditEntry::parse_line(&r.line).map_err(|e| malformed(e.to_string()))?;
    let header = entry.header().map_err(|e| malformed(e.to_string()))?;
    if header.seq != due {
        return Err(malformed(format!("its entry says seq {}", header.seq)));
    }
    if header.prev != state.audit_head {
        return Err(ReplayError::Unlinked(due));
    }
    let record = Record::from_entry_bytes(&entry.bytes)
        .map_err(|error| ReplayError::Record { seq: due, error })?;
    if record.kind() != header.kind {
        return Err(malformed(format!(
            "kind {:?} does not decode as one",
            header.kind
        )));
    }
    let foreign = |detail| ReplayError::Foreign { seq: due, detail };
    let signer = match &record {
        Record::Boot(b) => {
            let bad = |error| ReplayError::Record { seq: due, error };
            let identity = hex32("identity", &b.identity).map_err(bad)?;
            let tag = b
                .identity_tag
                .as_deref()
                .ok_or_else(|| foreign("its boot record carries no identity tag"))
                .and_then(|t| hex32("identity_tag", t).map_err(bad))?;
            if !tags.verify(&identity, &tag) {
                return Err(foreign(
                    "its boot identity is not tagged by this deployment",
                ));
            }
            if header.signer.is_some_and(|s| s != identity) {
                return Err(foreign("its signer is not the identity it introduces"));
            }
            identity
        }
        _ => match header.signer {
            Some(signer) if state.signers.find(&signer).is_some() => signer,
            Some(_) => return Err(foreign("its signer is not in force at this point")),
            None => state
                .signers
                .latest()
                .map(|s| s.identity)
                .ok_or_else(|| foreign("no identity signs at this point"))?,
        },
    };
    entry
        .verify(&IdentityPublic(signer))
        .map_err(|_| foreign("not signed by the identity that signs at this point"))?;
    state
        .apply(&record, Position::of(&header, entry.hash()))
        .map_err(|error| ReplayError::Record { seq: due, error })?;
    Ok(record)
}
