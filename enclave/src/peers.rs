//! Peers of a signing group: other nodes' enclaves, admitted only on their attestation.
//!
//! A node's enclave says hello with an attestation document made for the admitting
//! enclave's nonce, whose `public_key` is the node's channel key for this boot (X25519, as
//! DER SubjectPublicKeyInfo) and whose user data is the usual one (genesis, root-key check
//! value, identity, ...). The admitting enclave takes the peer only if the document chains
//! to its own trusted root, is fresh, carries exactly its own PCR0, PCR1 and PCR2 (the same
//! measured image), is of its genesis, and names a member of the signing group by its
//! root-key check value; the document then binds the peer's identity and channel key for
//! this boot. The operators' configuration only says where to find peers.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use strongroom_attestation::{Expectations, TrustedRoot, verify};
use strongroom_identity::{IdentityPublic, UserData};
use strongroom_protocol::messages::{EnclaveError, ErrorCode, KEY_CHECK_LEN};

/// How old a peer's hello may be.
pub const MAX_HELLO_AGE: Duration = Duration::from_secs(60);

/// A node of the group: its root-key check value.
pub type NodeId = [u8; KEY_CHECK_LEN];

/// The DER prefix of an X25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const X25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];

/// A channel key as the `public_key` of a hello document.
pub fn channel_key_spki(key: &[u8; 32]) -> Vec<u8> {
    [X25519_SPKI_PREFIX.as_slice(), key.as_slice()].concat()
}

/// What this enclave requires of a peer.
#[derive(Clone, Debug)]
pub struct PeerExpectations {
    /// The root attestation documents must chain to (AWS's; the mock's in mock mode).
    pub root: TrustedRoot,
    /// This enclave's own PCR0, PCR1 and PCR2.
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// This enclave's genesis digest.
    pub genesis: [u8; 32],
    /// The group's members, from the governed policy.
    pub members: Vec<NodeId>,
    /// This node.
    pub me: NodeId,
}

/// A peer admitted for its current boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The node.
    pub node: NodeId,
    /// Its identity for this boot (signs its answers and decisions).
    pub identity: IdentityPublic,
    /// Its channel key for this boot.
    pub channel_key: [u8; 32],
    /// The admin set and policy it enforces now (digests).
    pub admins: [u8; 32],
    /// See `admins`.
    pub policy: [u8; 32],
}

fn refused(reason: impl std::fmt::Display) -> EnclaveError {
    EnclaveError::new(ErrorCode::BadRequest, format!("peer refused: {reason}"))
}

/// Admits the peer whose hello `document` answers `nonce`, at time `now`.
pub fn admit(
    document: &[u8],
    nonce: &[u8],
    expect: &PeerExpectations,
    now: SystemTime,
) -> Result<Peer, EnclaveError> {
    let mut expectations = Expectations::new(now)
        .root(expect.root.clone())
        .nonce(nonce.to_vec())
        .max_age(MAX_HELLO_AGE);
    for index in [0u8, 1, 2] {
        let value = expect.pcrs.get(&index).ok_or_else(|| {
            EnclaveError::new(ErrorCode::Internal, format!("own PCR{index} unknown"))
        })?;
        expectations = expectations.pcr(index, value.clone());
    }
    let verified = verify(document, &expectations).map_err(refused)?;
    let user_data = verified
        .document
        .user_data
        .as_deref()
        .ok_or_else(|| refused("its document carries no user data"))?;
    let user_data = UserData::decode(user_data).map_err(refused)?;
    if user_data.genesis != expect.genesis {
        return Err(refused("it is a deployment of another genesis"));
    }
    if user_data.key_check == expect.me {
        return Err(refused("it is this node"));
    }
    if !expect.members.contains(&user_data.key_check) {
        return Err(refused(format!(
            "node {} is not a member of the signing group",
            hex::encode(user_data.key_check)
        )));
    }
    let channel_key = verified
        .document
        .public_key
        .as_deref()
        .and_then(|spki| spki.strip_prefix(X25519_SPKI_PREFIX.as_slice()))
        .and_then(|key| <[u8; 32]>::try_from(key).ok())
        .ok_or_else(|| refused("its document carries no X25519 channel key"))?;
    Ok(Peer {
        node: user_data.key_check,
        identity: user_data.identity,
        channel_key,
        admins: user_data.admins,
        policy: user_data.policy,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
    use strongroom_attestation::{AttestationRequest, Nsm};
    use strongroom_identity::{IdentityKey, ReplicaName};

    use super::*;

    const GENESIS: [u8; 32] = [0x6e; 32];

    fn own_pcrs() -> BTreeMap<u8, Vec<u8>> {
        MockNsmConfig::default()
            .pcrs
            .into_iter()
            .map(|(i, v)| (i as u8, v))
            .collect()
    }

    fn expectations(nsm: &MockNsm) -> PeerExpectations {
        PeerExpectations {
            root: nsm.trusted_root(),
            pcrs: own_pcrs(),
            genesis: GENESIS,
            members: vec![[1; 16], [2; 16], [3; 16]],
            me: [1; 16],
        }
    }

    fn hello(
        nsm: &MockNsm,
        nonce: &[u8],
        key_check: NodeId,
        genesis: [u8; 32],
        public_key: Option<Vec<u8>>,
    ) -> Vec<u8> {
        let user_data = UserData {
            key_check,
            genesis,
            admins: [4; 32],
            policy: [5; 32],
            identity: IdentityKey::from_seed(&[6; 32]).public(),
            boot_seq: 3,
            replica: ReplicaName::SINGLE,
        };
        nsm.attestation(&AttestationRequest {
            nonce: Some(nonce.to_vec()),
            user_data: Some(user_data.encode()),
            public_key,
        })
        .unwrap()
    }

    #[test]
    fn a_member_is_admitted_and_everything_else_refused() {
        let nsm = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
        let expect = expectations(&nsm);
        let now = SystemTime::now();
        let channel = [7u8; 32];
        let good = hello(
            &nsm,
            b"nonce",
            [2; 16],
            GENESIS,
            Some(channel_key_spki(&channel)),
        );
        let peer = admit(&good, b"nonce", &expect, now).unwrap();
        assert_eq!(peer.node, [2; 16]);
        assert_eq!(peer.channel_key, channel);
        assert_eq!(peer.identity, IdentityKey::from_seed(&[6; 32]).public());

        let refuses =
            |doc: &[u8], nonce: &[u8], expect: &PeerExpectations, now: SystemTime, why: &str| {
                let e = admit(doc, nonce, expect, now).unwrap_err();
                assert!(e.message.contains(why), "{why}: {}", e.message);
            };
        // Replayed to another challenge; too old.
        refuses(&good, b"other nonce", &expect, now, "nonce");
        refuses(
            &good,
            b"nonce",
            &expect,
            now + Duration::from_secs(120),
            "s old",
        );
        // Another genesis; not a member; this node itself.
        refuses(
            &hello(
                &nsm,
                b"n",
                [2; 16],
                [0; 32],
                Some(channel_key_spki(&channel)),
            ),
            b"n",
            &expect,
            now,
            "another genesis",
        );
        refuses(
            &hello(
                &nsm,
                b"n",
                [9; 16],
                GENESIS,
                Some(channel_key_spki(&channel)),
            ),
            b"n",
            &expect,
            now,
            "not a member",
        );
        refuses(
            &hello(
                &nsm,
                b"n",
                [1; 16],
                GENESIS,
                Some(channel_key_spki(&channel)),
            ),
            b"n",
            &expect,
            now,
            "this node",
        );
        // No channel key, or one that is not X25519.
        refuses(
            &hello(&nsm, b"n", [2; 16], GENESIS, None),
            b"n",
            &expect,
            now,
            "channel key",
        );
        refuses(
            &hello(&nsm, b"n", [2; 16], GENESIS, Some(vec![0x30; 44])),
            b"n",
            &expect,
            now,
            "channel key",
        );
        // Another image (other PCRs), another root (a parent's own CA).
        let mut other_image = MockNsmConfig::default();
        other_image.pcrs.insert(2, vec![0x22; 48]);
        let other = MockNsm::ephemeral(other_image).unwrap();
        let mut same_root = expectations(&other);
        same_root.pcrs = own_pcrs();
        refuses(
            &hello(
                &other,
                b"n",
                [2; 16],
                GENESIS,
                Some(channel_key_spki(&channel)),
            ),
            b"n",
            &same_root,
            now,
            "PCR",
        );
        let stranger = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
        refuses(
            &hello(
                &stranger,
                b"n",
                [2; 16],
                GENESIS,
                Some(channel_key_spki(&channel)),
            ),
            b"n",
            &expect,
            now,
            "",
        );
    }
}
