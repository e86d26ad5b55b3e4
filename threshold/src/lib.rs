//! Threshold signing for Strongroom: a key that exists on no single machine.
//!
//! A threshold key is shared among the `n` nodes of a signing group; any `t` of them sign
//! together and no fewer can. This crate is the pure part: each protocol is a [`Party`]
//! that takes the messages the other parties sent it and returns the messages it sends
//! and, at the end, its output. Nothing here does I/O; the enclave owns the parties, seals
//! their messages for the recipients ([`channel`]) and the parents relay them.
//!
//! - ECDSA on secp256k1 ([`ecdsa`]): CGGMP24 from LFDT-Lockness (`cggmp24`, audited) —
//!   auxiliary information (Paillier keys, from safe primes each node generates once),
//!   distributed key generation, signing in four rounds, or in one round with a
//!   presignature made ahead of time.
//! - Schnorr ([`frost`]): ZF FROST — `frost-secp256k1-tr` (BIP-340, Taproot key path) and
//!   `frost-ed25519` — key generation (Pedersen DKG with an echo round, because it needs a
//!   broadcast channel) and two-round signing.
//!
//! Every output is checked again with the workspace's own implementations (k256 0.14,
//! ed25519-dalek) before it is returned: a signature that does not verify is an abort.

pub mod channel;
pub mod ecdsa;
pub mod engine;
mod error;
pub mod frost;
pub mod local;
mod party;
pub mod session;
mod wire;

pub use error::{ChannelError, ProtocolError, ThresholdError};
pub use party::{Message, Party, PartyIndex, Recipient, Step, check_incoming};
pub use wire::MAX_MESSAGE_LEN;

/// The signature schemes a threshold key can be for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Scheme {
    /// ECDSA on secp256k1 (Ethereum; Bitcoin legacy and segwit v0): CGGMP24.
    #[serde(rename = "secp256k1-ecdsa")]
    Secp256k1Ecdsa,
    /// BIP-340 Schnorr on secp256k1 with the BIP-341 key-path tweak (Taproot): FROST.
    #[serde(rename = "secp256k1-schnorr")]
    Secp256k1Schnorr,
    /// Ed25519 (Solana and other Ed25519 chains): FROST.
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl Scheme {
    /// The scheme's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Secp256k1Ecdsa => "secp256k1-ecdsa",
            Scheme::Secp256k1Schnorr => "secp256k1-schnorr",
            Scheme::Ed25519 => "ed25519",
        }
    }

    /// The scheme a name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Secp256k1Ecdsa, Self::Secp256k1Schnorr, Self::Ed25519]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// Most nodes in a signing group.
pub const MAX_PARTIES: u16 = 16;

/// Checks `t`-of-`n`: 2 ≤ t ≤ n ≤ [`MAX_PARTIES`]. A threshold of one would be a whole key
/// on every node.
pub fn check_threshold(t: u16, n: u16) -> Result<(), ThresholdError> {
    if t < 2 || t > n || n > MAX_PARTIES {
        return Err(ThresholdError::Threshold { t, n });
    }
    Ok(())
}
