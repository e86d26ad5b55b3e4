//! Threshold ECDSA on secp256k1: CGGMP24 (`cggmp24`, LFDT-Lockness).
//!
//! A group sets up once: each node generates four safe primes ([`Primes`], tens of
//! seconds), then the group runs the auxiliary-information protocol ([`aux_info`]) that
//! gives each node its Paillier keys ([`AuxInfo`]), reused for every key of the group.
//! A key is made by [`keygen`]; each node keeps only its [`KeyShare`]. Signing is either
//! the full protocol on a 32-byte digest ([`sign`], four rounds with the reliable-broadcast
//! check), or one round ([`sign_presigned`]) with a [`Presignature`] the signers made
//! together beforehand ([`presign`]). A presignature signs only a message whose preimage
//! the enclave hashed itself ([`Preimage`]): CGGMP24 with presignatures is forgeable on
//! raw hashes (eprint 2021/1330, §1.1.2), so the crate's types refuse it and so do we.
//!
//! The crate's authors put timing side channels out of scope (it is not constant-time).

use std::collections::VecDeque;

use cggmp24::key_share::IncompleteKeyShare;
use cggmp24::round_based::state_machine::{ProceedResult, StateMachine};
use cggmp24::round_based::{Incoming, MessageDestination, MessageType};
use cggmp24::security_level::SecurityLevel128;
use cggmp24::supported_curves::Secp256k1;
use cggmp24::{DataToSign, ExecutionId, PrehashedDataToSign};
use k256::ecdsa::{RecoveryId, Signature as K256Signature, VerifyingKey};
use rand_core::OsRng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha3_10::Keccak256;
use zeroize::Zeroizing;

use crate::error::{ProtocolError, ThresholdError};
use crate::party::{Message, Party, PartyIndex, Recipient, Step, check_incoming};
use crate::wire::{decode, encode};

type Curve = Secp256k1;
type Level = SecurityLevel128;
type Scalar = cggmp24::generic_ec::Scalar<Curve>;
type CompleteShare = cggmp24::KeyShare<Curve, Level>;

/// A run's execution id: 32 bytes the parties agree on and never use twice (the enclave
/// derives it from the session, which binds the request and the participants).
pub type ExecutionIdBytes = [u8; 32];

/// A node's four safe primes (for its Paillier key and ring-Pedersen parameters). Secret:
/// sealed when stored.
pub struct Primes(cggmp24::PregeneratedPrimes<Level>);

impl Primes {
    /// Generates them: tens of seconds of one core.
    pub fn generate() -> Self {
        Self(cggmp24::PregeneratedPrimes::generate(&mut OsRng))
    }

    /// The encoding to seal.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, ThresholdError> {
        Ok(Zeroizing::new(encode(&self.0)?))
    }

    /// Reads primes sealed earlier.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        let primes = decode(bytes, 0).map_err(|_| material("primes", "do not decode"))?;
        Ok(Self(primes))
    }
}

/// A node's auxiliary information for its group (its Paillier secret key and every node's
/// public parameters). Secret: sealed when stored.
pub struct AuxInfo(cggmp24::key_share::AuxInfo<Level>);

impl AuxInfo {
    /// The encoding to seal.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, ThresholdError> {
        Ok(Zeroizing::new(encode(&self.0)?))
    }

    /// Reads auxiliary information sealed earlier (validated on decoding).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        let aux = decode(bytes, 0).map_err(|_| material("auxiliary information", "invalid"))?;
        Ok(Self(aux))
    }
}

/// A node's share of a threshold ECDSA key. Secret: sealed when stored.
pub struct KeyShare(IncompleteKeyShare<Curve>);

impl KeyShare {
    /// The group's public key, SEC1 uncompressed (65 bytes).
    pub fn public_key(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out.copy_from_slice(&self.0.shared_public_key.to_bytes(false));
        out
    }

    /// This node's index in the group.
    pub fn index(&self) -> PartyIndex {
        self.0.i
    }

    /// Signers needed.
    pub fn threshold(&self) -> u16 {
        self.0.min_signers()
    }

    /// Nodes sharing the key.
    pub fn parties(&self) -> u16 {
        self.0.n()
    }

    /// The public part every node of a good key generation holds alike: the group key,
    /// every node's public share and the threshold setup (CBOR).
    pub fn public_material(&self) -> Result<Vec<u8>, ThresholdError> {
        Ok(encode(&self.0.key_info)?)
    }

    /// The encoding to seal.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, ThresholdError> {
        Ok(Zeroizing::new(encode(&self.0)?))
    }

    /// Reads a share sealed earlier (validated on decoding).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        let share = decode(bytes, 0).map_err(|_| material("key share", "invalid"))?;
        Ok(Self(share))
    }

    fn complete(&self, aux: &AuxInfo) -> Result<CompleteShare, ThresholdError> {
        cggmp24::KeyShare::from_parts((self.0.clone(), aux.0.clone())).map_err(|e| {
            material(
                "key share",
                &format!("does not fit the auxiliary information: {e}"),
            )
        })
    }
}

fn material(what: &'static str, reason: &str) -> ThresholdError {
    ThresholdError::Material {
        what,
        reason: reason.to_string(),
    }
}

/// A finished ECDSA signature with its recovery id, checked against the group key with
/// k256: `s` is low.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoverableSignature {
    /// r ‖ s, 64 bytes big-endian.
    pub rs: [u8; 64],
    /// Recovery id, 0 or 1.
    pub v: u8,
}

/// A message whose preimage the enclave holds: what a presignature may sign. Its digest is
/// Keccak-256 of the preimage (Ethereum's transactions, EIP-191 and EIP-712 messages).
pub struct Preimage<'a>(pub &'a [u8]);

impl Preimage<'_> {
    fn to_sign(&self) -> DataToSign<Curve> {
        DataToSign::digest::<Keccak256>(self.0)
    }

    fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        use sha3_10::Digest;
        out.copy_from_slice(&Keccak256::digest(self.0));
        out
    }
}

/// The auxiliary-information protocol: party `i` of `n`, with its primes.
pub fn aux_info(
    eid: ExecutionIdBytes,
    i: PartyIndex,
    n: u16,
    primes: Primes,
) -> impl Party<Output = AuxInfo> {
    let sm = cggmp24::round_based::state_machine::wrap_protocol(move |party| async move {
        let mut rng = OsRng;
        cggmp24::aux_info_gen(ExecutionId::new(&eid), i, n, primes.0)
            .start(&mut rng, party)
            .await
    });
    Machine::new(sm, i, n, AuxInfo)
}

/// Distributed key generation: party `i` of `n`, `t` to sign.
pub fn keygen(
    eid: ExecutionIdBytes,
    i: PartyIndex,
    n: u16,
    t: u16,
) -> Result<impl Party<Output = KeyShare>, ThresholdError> {
    crate::check_threshold(t, n)?;
    let sm = cggmp24::round_based::state_machine::wrap_protocol(move |party| async move {
        let mut rng = OsRng;
        cggmp24::keygen::<Curve>(ExecutionId::new(&eid), i, n)
            .set_threshold(t)
            .start(&mut rng, party)
            .await
    });
    Ok(Machine::new(sm, i, n, KeyShare))
}

/// What both kinds of signing run need: the signer set checked (`t` distinct parties of
/// the group, each one's group index in the order that gives their indices in the run,
/// this party at position `me`), the share completed with the auxiliary information, the
/// group key and `t`.
fn prepare(
    share: &KeyShare,
    aux: &AuxInfo,
    signers: &[PartyIndex],
    me: PartyIndex,
) -> Result<(CompleteShare, [u8; 65], u16), ThresholdError> {
    let t = share.threshold();
    let mut sorted = signers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if signers.len() != usize::from(t)
        || sorted.len() != signers.len()
        || signers.iter().any(|&s| s >= share.parties())
        || signers.get(usize::from(me)) != Some(&share.index())
    {
        return Err(material(
            "signer set",
            "must be t distinct parties of the group, this one among them at its own position",
        ));
    }
    Ok((share.complete(aux)?, share.public_key(), t))
}

/// The full signing protocol on a 32-byte digest (no presignature: safe on a digest whose
/// preimage the enclave never saw). `me` is this party's index among `signers`.
pub fn sign(
    eid: ExecutionIdBytes,
    me: PartyIndex,
    signers: Vec<PartyIndex>,
    share: &KeyShare,
    aux: &AuxInfo,
    digest: [u8; 32],
) -> Result<impl Party<Output = RecoverableSignature> + use<>, ThresholdError> {
    let (complete, public_key, t) = prepare(share, aux, &signers, me)?;
    let sm = cggmp24::round_based::state_machine::wrap_protocol(move |party| async move {
        let mut rng = OsRng;
        let data = PrehashedDataToSign::from_scalar(Scalar::from_be_bytes_mod_order(digest));
        cggmp24::signing(ExecutionId::new(&eid), me, &signers, &complete)
            .sign(&mut rng, party, &data)
            .await
    });
    Ok(Machine::new(sm, me, t, move |sig| Signed(sig, public_key, digest)).checked())
}

/// Presignature generation among `signers` (as for [`sign`]), before any message exists.
pub fn presign(
    eid: ExecutionIdBytes,
    me: PartyIndex,
    signers: Vec<PartyIndex>,
    share: &KeyShare,
    aux: &AuxInfo,
) -> Result<impl Party<Output = Presignature> + use<>, ThresholdError> {
    let (complete, public_key, t) = prepare(share, aux, &signers, me)?;
    let sm = cggmp24::round_based::state_machine::wrap_protocol(move |party| async move {
        let mut rng = OsRng;
        let signers_ref = signers.clone();
        cggmp24::signing(ExecutionId::new(&eid), me, &signers_ref, &complete)
            .generate_presignature(&mut rng, party)
            .await
            .map(|(secret, public)| Presignature {
                secret,
                public,
                signers,
                me,
                public_key,
            })
    });
    Ok(Machine::new(sm, me, t, |p| p))
}

/// One party's part of a signature not yet made: secret, in memory only, used once.
/// Never sealed: a parent that rolled storage back could otherwise make it sign twice,
/// which reveals the key.
pub struct Presignature {
    secret: cggmp24::Presignature<Curve>,
    public: cggmp24::signing::PresignaturePublicData<Curve>,
    signers: Vec<PartyIndex>,
    me: PartyIndex,
    public_key: [u8; 65],
}

impl Presignature {
    /// The group indices of the signers it was made with.
    pub fn signers(&self) -> &[PartyIndex] {
        &self.signers
    }
}

/// One-round signing with a presignature (consumed): every signer issues its partial
/// signature on the preimage's Keccak-256 and combines the others'.
pub fn sign_presigned(
    presignature: Presignature,
    preimage: &[u8],
) -> impl Party<Output = RecoverableSignature> + use<> {
    let digest = Preimage(preimage).digest();
    let n = presignature.signers.len() as u16;
    let me = presignature.me;
    let partial = presignature
        .secret
        .issue_partial_signature(Preimage(preimage).to_sign());
    PresignedSign {
        me,
        n,
        public: presignature.public,
        public_key: presignature.public_key,
        preimage: preimage.to_vec(),
        digest,
        partials: vec![None; usize::from(n)],
        own: Some(partial),
        done: false,
    }
    .init()
}

struct PresignedSign {
    me: PartyIndex,
    n: u16,
    public: cggmp24::signing::PresignaturePublicData<Curve>,
    public_key: [u8; 65],
    preimage: Vec<u8>,
    digest: [u8; 32],
    partials: Vec<Option<cggmp24::PartialSignature<Curve>>>,
    own: Option<cggmp24::PartialSignature<Curve>>,
    done: bool,
}

impl PresignedSign {
    fn init(mut self) -> Self {
        if let (Some(own), Some(slot)) = (self.own, self.partials.get_mut(usize::from(self.me))) {
            *slot = Some(own);
        }
        self
    }
}

impl Party for PresignedSign {
    type Output = RecoverableSignature;

    fn step(
        &mut self,
        incoming: Vec<Message>,
    ) -> Result<Step<RecoverableSignature>, ProtocolError> {
        if self.done {
            return Err(ProtocolError::Finished);
        }
        let mut outgoing = Vec::new();
        if let Some(own) = self.own.take() {
            outgoing.push(Message {
                from: self.me,
                to: Recipient::All,
                body: encode(&own)?,
            });
        }
        for message in incoming {
            check_incoming(&message, self.me, self.n)?;
            let from = message.from;
            let partial: cggmp24::PartialSignature<Curve> = decode(&message.body, from)?;
            let slot = self
                .partials
                .get_mut(usize::from(from))
                .ok_or(ProtocolError::Misrouted { from })?;
            if slot.is_some() {
                return Err(ProtocolError::Unexpected { from });
            }
            *slot = Some(partial);
        }
        let partials: Option<Vec<_>> = self.partials.iter().copied().collect();
        let Some(partials) = partials else {
            return Ok(Step {
                outgoing,
                output: None,
            });
        };
        self.done = true;
        let data = Preimage(&self.preimage).to_sign();
        let signature = cggmp24::PartialSignature::combine(&partials, &self.public, data)
            .ok_or_else(|| ProtocolError::Aborted {
                reason: "a partial signature does not match its presignature commitment".into(),
                blame: Vec::new(),
            })?;
        let output = Signed(signature, self.public_key, self.digest).check()?;
        Ok(Step {
            outgoing,
            output: Some(output),
        })
    }
}

/// A CGGMP24 signature to be checked with k256 before release.
struct Signed(cggmp24::Signature<Curve>, [u8; 65], [u8; 32]);

impl Signed {
    fn check(self) -> Result<RecoverableSignature, ProtocolError> {
        let Signed(signature, public_key, digest) = self;
        let mut rs = [0u8; 64];
        signature.write_to_slice(&mut rs);
        recoverable(&rs, &public_key, &digest)
    }
}

/// `rs` checked as ECDSA over `digest` by `public_key` (SEC1) with k256, and its recovery
/// id found.
pub fn recoverable(
    rs: &[u8; 64],
    public_key: &[u8],
    digest: &[u8; 32],
) -> Result<RecoverableSignature, ProtocolError> {
    let bad = || ProtocolError::Aborted {
        reason: "the signature does not verify under the group key".into(),
        blame: Vec::new(),
    };
    let signature = K256Signature::from_slice(rs).map_err(|_| bad())?;
    if signature.normalize_s() != signature {
        return Err(bad());
    }
    let key = VerifyingKey::from_sec1_bytes(public_key).map_err(|_| bad())?;
    for v in 0..2u8 {
        let id = RecoveryId::from_byte(v).ok_or_else(bad)?;
        if let Ok(recovered) = VerifyingKey::recover_from_prehash(digest, &signature, id)
            && recovered == key
        {
            return Ok(RecoverableSignature { rs: *rs, v });
        }
    }
    Err(bad())
}

/// A `round_based` state machine as a [`Party`]: messages decoded into the protocol's
/// type and fed one at a time, as the state machine asks for them.
struct Machine<S: StateMachine, F> {
    sm: S,
    me: PartyIndex,
    n: u16,
    queue: VecDeque<Incoming<<S as StateMachine>::Msg>>,
    awaiting: bool,
    next_id: u64,
    done: bool,
    finish: Option<F>,
}

impl<S, F> Machine<S, F>
where
    S: StateMachine,
{
    fn new(sm: S, me: PartyIndex, n: u16, finish: F) -> Self {
        Self {
            sm,
            me,
            n,
            queue: VecDeque::new(),
            awaiting: false,
            next_id: 0,
            done: false,
            finish: Some(finish),
        }
    }

    fn checked(self) -> Checked<Self> {
        Checked(self)
    }
}

impl<S, F, O, E, R> Party for Machine<S, F>
where
    S: StateMachine<Output = Result<O, E>>,
    S::Msg: Serialize + DeserializeOwned,
    E: std::fmt::Display,
    F: FnOnce(O) -> R,
{
    type Output = R;

    fn step(&mut self, incoming: Vec<Message>) -> Result<Step<R>, ProtocolError> {
        if self.done {
            return Err(ProtocolError::Finished);
        }
        for message in incoming {
            check_incoming(&message, self.me, self.n)?;
            let msg = decode(&message.body, message.from)?;
            self.queue.push_back(Incoming {
                id: self.next_id,
                sender: message.from,
                msg_type: match message.to {
                    Recipient::All => MessageType::Broadcast,
                    Recipient::One(_) => MessageType::P2P,
                },
                msg,
            });
            self.next_id += 1;
        }
        let mut outgoing = Vec::new();
        loop {
            if self.awaiting {
                let Some(next) = self.queue.pop_front() else {
                    return Ok(Step {
                        outgoing,
                        output: None,
                    });
                };
                let from = next.sender;
                self.sm
                    .received_msg(next)
                    .map_err(|_| ProtocolError::Unexpected { from })?;
                self.awaiting = false;
            }
            match self.sm.proceed() {
                ProceedResult::SendMsg(out) => outgoing.push(Message {
                    from: self.me,
                    to: match out.recipient {
                        MessageDestination::AllParties => Recipient::All,
                        MessageDestination::OneParty(j) => Recipient::One(j),
                    },
                    body: encode(&out.msg)?,
                }),
                ProceedResult::NeedsOneMoreMessage => self.awaiting = true,
                ProceedResult::Yielded => {}
                ProceedResult::Output(result) => {
                    self.done = true;
                    let output = result.map_err(|e| ProtocolError::Aborted {
                        reason: e.to_string(),
                        blame: Vec::new(),
                    })?;
                    let finish = self.finish.take().ok_or(ProtocolError::Finished)?;
                    return Ok(Step {
                        outgoing,
                        output: Some(finish(output)),
                    });
                }
                ProceedResult::Error(e) => {
                    self.done = true;
                    return Err(ProtocolError::Aborted {
                        reason: e.to_string(),
                        blame: Vec::new(),
                    });
                }
            }
        }
    }
}

/// A signing machine whose signature is checked with k256 before it is output.
struct Checked<M>(M);

impl<M> Party for Checked<M>
where
    M: Party<Output = Signed>,
{
    type Output = RecoverableSignature;

    fn step(
        &mut self,
        incoming: Vec<Message>,
    ) -> Result<Step<RecoverableSignature>, ProtocolError> {
        let step = self.0.step(incoming)?;
        let output = step.output.map(Signed::check).transpose()?;
        Ok(Step {
            outgoing: step.outgoing,
            output,
        })
    }
}
