//! Threshold Schnorr: ZF FROST (RFC 9591) for BIP-340/Taproot (`frost-secp256k1-tr`) and
//! Ed25519 (`frost-ed25519`).
//!
//! Key generation is FROST's Pedersen DKG, which needs its first round on a broadcast
//! channel: relayed by parents, a party could show different commitments to different
//! parties, so every round-2 message carries a hash of all round-1 messages as its sender
//! saw them, and a party that sees another hash aborts (echo broadcast). Signing is two
//! rounds: commitments, then signature shares; every signer aggregates and checks the
//! result. A signer's nonces live only in its [`Sign`] party and are dropped the moment
//! its share is made.

use std::collections::BTreeMap;

use frost_core::keys::{KeyPackage, PublicKeyPackage, dkg};
use frost_core::round1::{SigningCommitments, SigningNonces};
use frost_core::round2::SignatureShare;
use frost_core::{Ciphersuite, Identifier, SigningPackage};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::Scheme;
use crate::error::{ProtocolError, ThresholdError};
use crate::party::{Message, Party, PartyIndex, Recipient, Step, check_incoming};
use crate::wire::{decode, encode};

pub use frost_ed25519::Ed25519Sha512;
pub use frost_secp256k1_tr::Secp256K1Sha256TR;

/// A FROST ciphersuite Strongroom signs with, and how its output is checked again with the
/// workspace's own implementation.
pub trait Suite: Ciphersuite {
    /// The key scheme.
    const SCHEME: Scheme;

    /// The group key as the chain uses it: BIP-340's x-only 32 bytes, Ed25519's 32 bytes.
    fn chain_key(key: &frost_core::VerifyingKey<Self>) -> Result<Vec<u8>, ProtocolError>;

    /// Checks `signature` (the chain's encoding) over `message` by `chain_key`, with an
    /// implementation other than FROST's.
    fn verify(chain_key: &[u8], message: &[u8], signature: &[u8]) -> bool;
}

impl Suite for Secp256K1Sha256TR {
    const SCHEME: Scheme = Scheme::Secp256k1Schnorr;

    fn chain_key(key: &frost_core::VerifyingKey<Self>) -> Result<Vec<u8>, ProtocolError> {
        let sec1 = key.serialize().map_err(abort)?;
        // Compressed SEC1: the x coordinate follows the parity byte.
        sec1.get(1..33)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| bad_output("group key"))
    }

    fn verify(chain_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        let Ok(key) = <[u8; 32]>::try_from(chain_key) else {
            return false;
        };
        let Ok(key) = k256::schnorr::VerifyingKey::from_bytes(&key.into()) else {
            return false;
        };
        let Ok(signature) = k256::schnorr::Signature::try_from(signature) else {
            return false;
        };
        key.verify_raw(message, &signature).is_ok()
    }
}

impl Suite for Ed25519Sha512 {
    const SCHEME: Scheme = Scheme::Ed25519;

    fn chain_key(key: &frost_core::VerifyingKey<Self>) -> Result<Vec<u8>, ProtocolError> {
        key.serialize().map_err(abort)
    }

    fn verify(chain_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        let Ok(key) = <[u8; 32]>::try_from(chain_key) else {
            return false;
        };
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
            return false;
        };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        key.verify_strict(message, &signature).is_ok()
    }
}

fn abort<E: std::fmt::Display>(e: E) -> ProtocolError {
    ProtocolError::Aborted {
        reason: e.to_string(),
        blame: Vec::new(),
    }
}

fn bad_output(what: &str) -> ProtocolError {
    ProtocolError::Aborted {
        reason: format!("the {what} does not verify"),
        blame: Vec::new(),
    }
}

/// FROST's identifier for party `i` (identifiers start at 1).
fn identifier<C: Ciphersuite>(i: PartyIndex) -> Result<Identifier<C>, ProtocolError> {
    Identifier::try_from(i.saturating_add(1)).map_err(abort)
}

/// An error from FROST with the parties it blames.
fn blamed<C: Ciphersuite>(
    e: frost_core::Error<C>,
    index: &BTreeMap<Identifier<C>, PartyIndex>,
) -> ProtocolError {
    let blame = e
        .culprits()
        .iter()
        .filter_map(|id| index.get(id).copied())
        .collect();
    ProtocolError::Aborted {
        reason: e.to_string(),
        blame,
    }
}

/// A node's share of a FROST key, with the group's public key package. Secret: sealed
/// when stored.
pub struct FrostKey<C: Ciphersuite> {
    key: KeyPackage<C>,
    public: PublicKeyPackage<C>,
}

impl<C: Suite> FrostKey<C> {
    /// The group key as the chain uses it.
    pub fn chain_key(&self) -> Result<Vec<u8>, ThresholdError> {
        Ok(C::chain_key(self.public.verifying_key())?)
    }

    /// Signers needed.
    pub fn threshold(&self) -> u16 {
        *self.key.min_signers()
    }

    /// A digest of the public key package (the group key and every node's verifying
    /// share): equal on every node of a good key generation.
    pub fn public_digest(&self) -> Result<[u8; 32], ThresholdError> {
        let bytes = self.public.serialize().map_err(abort)?;
        Ok(Sha256::digest(bytes).into())
    }

    /// The encoding to seal.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, ThresholdError> {
        let stored = StoredKey {
            key: ByteBuf::from(self.key.serialize().map_err(abort)?),
            public: ByteBuf::from(self.public.serialize().map_err(abort)?),
        };
        let bytes = Zeroizing::new(encode(&stored)?);
        drop(Zeroizing::new(stored.key.into_vec()));
        Ok(bytes)
    }

    /// Reads a share sealed earlier.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        let invalid = |reason: &str| ThresholdError::Material {
            what: "FROST key share",
            reason: reason.to_string(),
        };
        let stored: StoredKey = decode(bytes, 0).map_err(|_| invalid("does not decode"))?;
        let key_bytes = Zeroizing::new(stored.key.into_vec());
        let key = KeyPackage::deserialize(&key_bytes).map_err(|e| invalid(&e.to_string()))?;
        let public =
            PublicKeyPackage::deserialize(&stored.public).map_err(|e| invalid(&e.to_string()))?;
        if key.verifying_key() != public.verifying_key() {
            return Err(invalid(
                "the share is not of the group key it is stored with",
            ));
        }
        Ok(Self { key, public })
    }
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    key: ByteBuf,
    public: ByteBuf,
}

#[derive(Serialize, Deserialize)]
enum DkgMessage {
    /// Round 1, broadcast: the sender's commitments and proof of knowledge.
    Commit(ByteBuf),
    /// Round 2, to one party: its secret share, and the sender's hash of every round-1
    /// message.
    Share { echo: [u8; 32], package: ByteBuf },
}

/// One party of a FROST distributed key generation.
pub struct Dkg<C: Ciphersuite> {
    me: PartyIndex,
    n: u16,
    t: u16,
    index: BTreeMap<Identifier<C>, PartyIndex>,
    secret1: Option<dkg::round1::SecretPackage<C>>,
    secret2: Option<dkg::round2::SecretPackage<C>>,
    /// Round-1 messages as received (the sender's own bytes), by sender, this party's too.
    commits: BTreeMap<PartyIndex, Vec<u8>>,
    round1: BTreeMap<Identifier<C>, dkg::round1::Package<C>>,
    round2: BTreeMap<Identifier<C>, dkg::round2::Package<C>>,
    /// Round-2 messages that came before this party had every round-1 message.
    early: Vec<(PartyIndex, [u8; 32], Vec<u8>)>,
    echo: Option<[u8; 32]>,
    started: bool,
    done: bool,
}

impl<C: Suite> Dkg<C> {
    /// Party `me` of `n`, `t` to sign.
    pub fn new(me: PartyIndex, n: u16, t: u16) -> Result<Self, ThresholdError> {
        crate::check_threshold(t, n)?;
        if me >= n {
            return Err(ThresholdError::Threshold { t, n });
        }
        let mut index = BTreeMap::new();
        for i in 0..n {
            index.insert(identifier::<C>(i)?, i);
        }
        Ok(Self {
            me,
            n,
            t,
            index,
            secret1: None,
            secret2: None,
            commits: BTreeMap::new(),
            round1: BTreeMap::new(),
            round2: BTreeMap::new(),
            early: Vec::new(),
            echo: None,
            started: false,
            done: false,
        })
    }

    fn echo_of(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(b"strongroom/frost-dkg/round1-echo/v1");
        for (i, bytes) in &self.commits {
            hash.update(i.to_be_bytes());
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        }
        hash.finalize().into()
    }

    fn take_share(
        &mut self,
        from: PartyIndex,
        echo: [u8; 32],
        package: &[u8],
    ) -> Result<(), ProtocolError> {
        if Some(echo) != self.echo {
            return Err(ProtocolError::Aborted {
                reason: format!(
                    "party {from} saw other round-1 messages than this party (a broadcast was not the same for everyone)"
                ),
                blame: Vec::new(),
            });
        }
        let package = dkg::round2::Package::<C>::deserialize(package)
            .map_err(|_| ProtocolError::Undecodable { from })?;
        if self
            .round2
            .insert(identifier::<C>(from)?, package)
            .is_some()
        {
            return Err(ProtocolError::Unexpected { from });
        }
        Ok(())
    }
}

impl<C: Suite> Party for Dkg<C> {
    type Output = FrostKey<C>;

    fn step(&mut self, incoming: Vec<Message>) -> Result<Step<FrostKey<C>>, ProtocolError> {
        if self.done {
            return Err(ProtocolError::Finished);
        }
        let mut outgoing = Vec::new();
        if !self.started {
            self.started = true;
            let (secret, package) =
                dkg::part1::<C, _>(identifier::<C>(self.me)?, self.n, self.t, OsRng)
                    .map_err(abort)?;
            let bytes = package.serialize().map_err(abort)?;
            self.commits.insert(self.me, bytes.clone());
            self.secret1 = Some(secret);
            outgoing.push(Message {
                from: self.me,
                to: Recipient::All,
                body: encode(&DkgMessage::Commit(ByteBuf::from(bytes)))?,
            });
        }
        for message in incoming {
            check_incoming(&message, self.me, self.n)?;
            let from = message.from;
            match (decode::<DkgMessage>(&message.body, from)?, message.to) {
                (DkgMessage::Commit(bytes), Recipient::All) => {
                    if self.secret2.is_some() || self.commits.contains_key(&from) {
                        return Err(ProtocolError::Unexpected { from });
                    }
                    let package = dkg::round1::Package::<C>::deserialize(&bytes)
                        .map_err(|_| ProtocolError::Undecodable { from })?;
                    self.commits.insert(from, bytes.into_vec());
                    self.round1.insert(identifier::<C>(from)?, package);
                }
                (DkgMessage::Share { echo, package }, Recipient::One(_)) => {
                    if self.echo.is_some() {
                        self.take_share(from, echo, &package)?;
                    } else {
                        self.early.push((from, echo, package.into_vec()));
                    }
                }
                _ => return Err(ProtocolError::Unexpected { from }),
            }
        }
        if self.secret2.is_none() && self.round1.len() == usize::from(self.n - 1) {
            let secret1 = self.secret1.take().ok_or(ProtocolError::Finished)?;
            let (secret2, packages) =
                dkg::part2(secret1, &self.round1).map_err(|e| blamed(e, &self.index))?;
            self.secret2 = Some(secret2);
            let echo = self.echo_of();
            self.echo = Some(echo);
            for (id, package) in packages {
                let to = *self.index.get(&id).ok_or(ProtocolError::Finished)?;
                let body = encode(&DkgMessage::Share {
                    echo,
                    package: ByteBuf::from(package.serialize().map_err(abort)?),
                })?;
                outgoing.push(Message {
                    from: self.me,
                    to: Recipient::One(to),
                    body,
                });
            }
            for (from, echo, package) in std::mem::take(&mut self.early) {
                self.take_share(from, echo, &package)?;
            }
        }
        if let Some(secret2) = &self.secret2
            && self.round2.len() == usize::from(self.n - 1)
        {
            self.done = true;
            let (key, public) = dkg::part3(secret2, &self.round1, &self.round2)
                .map_err(|e| blamed(e, &self.index))?;
            self.secret2 = None;
            return Ok(Step {
                outgoing,
                output: Some(FrostKey { key, public }),
            });
        }
        Ok(Step {
            outgoing,
            output: None,
        })
    }
}

#[derive(Serialize, Deserialize)]
enum SignMessage {
    /// Round 1, broadcast: the sender's nonce commitments.
    Commit(ByteBuf),
    /// Round 2, broadcast: the sender's signature share.
    Share(ByteBuf),
}

/// One signer of a FROST signing run.
pub struct Sign<C: Ciphersuite> {
    me: PartyIndex,
    /// The signers' identifiers in the group, by their index in this run.
    ids: Vec<Identifier<C>>,
    index: BTreeMap<Identifier<C>, PartyIndex>,
    key: FrostKey<C>,
    message: Vec<u8>,
    nonces: Option<SigningNonces<C>>,
    commitments: BTreeMap<Identifier<C>, SigningCommitments<C>>,
    package: Option<SigningPackage<C>>,
    shares: BTreeMap<Identifier<C>, SignatureShare<C>>,
    early: Vec<(PartyIndex, Vec<u8>)>,
    started: bool,
    done: bool,
}

impl<C: Suite> Sign<C> {
    /// Signer `me` of the run whose signers are `signers` (each one's index in the group),
    /// signing `message` (for Taproot the 32-byte sighash; for Ed25519 the message).
    pub fn new(
        me: PartyIndex,
        signers: &[PartyIndex],
        key: FrostKey<C>,
        message: Vec<u8>,
    ) -> Result<Self, ThresholdError> {
        let mut ids = Vec::with_capacity(signers.len());
        let mut index = BTreeMap::new();
        for (i, &s) in signers.iter().enumerate() {
            let id = identifier::<C>(s)?;
            if index.insert(id, i as PartyIndex).is_some() {
                return Err(ThresholdError::Material {
                    what: "signer set",
                    reason: "a signer is named twice".into(),
                });
            }
            ids.push(id);
        }
        if signers.len() != usize::from(key.threshold())
            || ids.get(usize::from(me)) != Some(key.key.identifier())
        {
            return Err(ThresholdError::Material {
                what: "signer set",
                reason: "must be t distinct parties of the group, this one among them at its own position".into(),
            });
        }
        Ok(Self {
            me,
            ids,
            index,
            key,
            message,
            nonces: None,
            commitments: BTreeMap::new(),
            package: None,
            shares: BTreeMap::new(),
            early: Vec::new(),
            started: false,
            done: false,
        })
    }

    fn n(&self) -> u16 {
        self.ids.len() as u16
    }

    fn id(&self, i: PartyIndex) -> Result<Identifier<C>, ProtocolError> {
        self.ids
            .get(usize::from(i))
            .copied()
            .ok_or(ProtocolError::Misrouted { from: i })
    }

    fn take_share(&mut self, from: PartyIndex, bytes: &[u8]) -> Result<(), ProtocolError> {
        let share = SignatureShare::<C>::deserialize(bytes)
            .map_err(|_| ProtocolError::Undecodable { from })?;
        if self.shares.insert(self.id(from)?, share).is_some() {
            return Err(ProtocolError::Unexpected { from });
        }
        Ok(())
    }
}

impl<C: Suite> Party for Sign<C> {
    /// The signature in the chain's encoding (64 bytes), checked under the group key.
    type Output = Vec<u8>;

    fn step(&mut self, incoming: Vec<Message>) -> Result<Step<Vec<u8>>, ProtocolError> {
        if self.done {
            return Err(ProtocolError::Finished);
        }
        let mut outgoing = Vec::new();
        if !self.started {
            self.started = true;
            let (nonces, commitments) =
                frost_core::round1::commit(self.key.key.signing_share(), &mut OsRng);
            self.nonces = Some(nonces);
            self.commitments.insert(self.id(self.me)?, commitments);
            outgoing.push(Message {
                from: self.me,
                to: Recipient::All,
                body: encode(&SignMessage::Commit(ByteBuf::from(
                    commitments.serialize().map_err(abort)?,
                )))?,
            });
        }
        for message in incoming {
            check_incoming(&message, self.me, self.n())?;
            let from = message.from;
            match (decode::<SignMessage>(&message.body, from)?, message.to) {
                (SignMessage::Commit(bytes), Recipient::All) => {
                    let commitments = SigningCommitments::<C>::deserialize(&bytes)
                        .map_err(|_| ProtocolError::Undecodable { from })?;
                    if self.package.is_some()
                        || self
                            .commitments
                            .insert(self.id(from)?, commitments)
                            .is_some()
                    {
                        return Err(ProtocolError::Unexpected { from });
                    }
                }
                (SignMessage::Share(bytes), Recipient::All) => {
                    if self.package.is_some() {
                        self.take_share(from, &bytes)?;
                    } else {
                        self.early.push((from, bytes.into_vec()));
                    }
                }
                _ => return Err(ProtocolError::Unexpected { from }),
            }
        }
        if self.package.is_none() && self.commitments.len() == self.ids.len() {
            let package = SigningPackage::new(self.commitments.clone(), &self.message);
            // The nonces leave the party here and are dropped (zeroized) after this one use.
            let nonces = self.nonces.take().ok_or(ProtocolError::Finished)?;
            let share = frost_core::round2::sign(&package, &nonces, &self.key.key)
                .map_err(|e| blamed(e, &self.index))?;
            drop(nonces);
            self.shares.insert(self.id(self.me)?, share);
            self.package = Some(package);
            outgoing.push(Message {
                from: self.me,
                to: Recipient::All,
                body: encode(&SignMessage::Share(ByteBuf::from(share.serialize())))?,
            });
            for (from, bytes) in std::mem::take(&mut self.early) {
                self.take_share(from, &bytes)?;
            }
        }
        if let Some(package) = &self.package
            && self.shares.len() == self.ids.len()
        {
            self.done = true;
            let signature = frost_core::aggregate(package, &self.shares, &self.key.public)
                .map_err(|e| blamed(e, &self.index))?;
            let bytes = signature.serialize().map_err(abort)?;
            let chain_key = C::chain_key(self.key.public.verifying_key())?;
            if !C::verify(&chain_key, &self.message, &bytes) {
                return Err(bad_output("signature"));
            }
            return Ok(Step {
                outgoing,
                output: Some(bytes),
            });
        }
        Ok(Step {
            outgoing,
            output: None,
        })
    }
}
