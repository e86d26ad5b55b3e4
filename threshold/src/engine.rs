//! Sessions run on a thread of their own. CGGMP24's parties (`round_based` state
//! machines) are not `Send`, and their big-integer work must not hold up the enclave's
//! other calls; the enclave sends each command and waits for its answer. Presignatures
//! never leave this thread: they are kept in memory, by id, and removed before their one
//! use. Nothing here is ever sealed.
//!
//! A session id is started at most once per boot: a replayed invitation would restart a
//! run under the same channel keys (and so the same AES-GCM nonces) and the same execution
//! id. Ids are remembered while their invitation is fresh; a stale one is refused anyway.

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread::JoinHandle;

use zeroize::Zeroizing;

use crate::Scheme;
use crate::channel::{CHANNEL_KEY_LEN, ChannelSecret, SESSION_ID_LEN};
use crate::ecdsa::{self, AuxInfo, KeyShare, Presignature, Primes, RecoverableSignature};
use crate::error::{ProtocolError, ThresholdError};
use crate::frost::{Dkg, Ed25519Sha512, FrostKey, Secp256K1Sha256TR, Sign, Suite};
use crate::party::{Message, Party, PartyIndex, Step};
use crate::session::{Invitation, NodeId, Progress, Relayed, Session};

/// Most sessions in progress at once.
pub const MAX_SESSIONS: usize = 64;
/// Seconds a session may take from its invitation; older ones are dropped.
pub const SESSION_LIFETIME: u64 = 120;
/// Seconds either side of now an invitation may have been issued.
pub const INVITATION_WINDOW: u64 = 60;
/// Most presignatures held.
pub const MAX_PRESIGNATURES: usize = 256;
/// Most session ids remembered (each for twice the invitation window).
pub const MAX_REMEMBERED: usize = 100_000;

/// An id of a presignature: the first 16 bytes of the session that made it.
pub type PresignatureId = [u8; 16];

/// The party a session runs, with the secret material it needs (decrypted by the
/// enclave, wiped when dropped).
pub enum PartySpec {
    /// The group's CGGMP24 auxiliary information, from this node's primes.
    AuxInfo {
        /// This node's primes ([`Primes::to_bytes`]).
        primes: Zeroizing<Vec<u8>>,
    },
    /// Key generation.
    Keygen {
        /// The scheme.
        scheme: Scheme,
        /// Signers needed.
        threshold: u16,
    },
    /// A CGGMP24 presignature, kept in this engine for `key_id`.
    Presign {
        /// The key it is for.
        key_id: String,
        /// This node's share ([`KeyShare::to_bytes`]).
        share: Zeroizing<Vec<u8>>,
        /// This node's auxiliary information.
        aux: Zeroizing<Vec<u8>>,
        /// The signers' group indices, in session order.
        signers: Vec<PartyIndex>,
    },
    /// A CGGMP24 signature on a 32-byte digest, by the full protocol.
    EcdsaDigest {
        /// This node's share.
        share: Zeroizing<Vec<u8>>,
        /// This node's auxiliary information.
        aux: Zeroizing<Vec<u8>>,
        /// The signers' group indices, in session order.
        signers: Vec<PartyIndex>,
        /// The digest.
        digest: [u8; 32],
    },
    /// A CGGMP24 signature with a held presignature, on a preimage the enclave decoded
    /// (signed as its Keccak-256).
    EcdsaPresigned {
        /// The key.
        key_id: String,
        /// The presignature to spend.
        presignature: PresignatureId,
        /// The preimage.
        preimage: Vec<u8>,
    },
    /// A FROST signature.
    Schnorr {
        /// The scheme (`secp256k1-schnorr` or `ed25519`).
        scheme: Scheme,
        /// This node's share ([`FrostKey::to_bytes`]).
        key: Zeroizing<Vec<u8>>,
        /// The signers' group indices, in session order.
        signers: Vec<PartyIndex>,
        /// The message (Taproot: the 32-byte sighash).
        message: Vec<u8>,
    },
}

/// What a session gave this node.
pub enum Outcome {
    /// Auxiliary information to seal ([`AuxInfo::to_bytes`]).
    AuxInfo(Zeroizing<Vec<u8>>),
    /// A share of a new key, to seal, with the group key as the chain uses it (ECDSA:
    /// SEC1 uncompressed; BIP-340: x-only; Ed25519: 32 bytes) and a digest of the public
    /// material every node must agree on.
    Share {
        /// The scheme.
        scheme: Scheme,
        /// The share's encoding.
        share: Zeroizing<Vec<u8>>,
        /// The group key.
        group_key: Vec<u8>,
        /// Equal on every node of a good key generation.
        public_digest: [u8; 32],
    },
    /// A presignature now held under this id.
    Presignature(PresignatureId),
    /// An ECDSA signature, checked with k256.
    Ecdsa(RecoverableSignature),
    /// A Schnorr signature (BIP-340 or Ed25519), checked.
    Schnorr(Vec<u8>),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::AuxInfo(_) => f.write_str("AuxInfo(..)"),
            Outcome::Share {
                scheme, group_key, ..
            } => write!(f, "Share({}, {})", scheme.name(), hex::encode(group_key)),
            Outcome::Presignature(id) => write!(f, "Presignature({})", hex::encode(id)),
            Outcome::Ecdsa(s) => write!(f, "Ecdsa({s:?})"),
            Outcome::Schnorr(s) => write!(f, "Schnorr({})", hex::encode(s)),
        }
    }
}

/// A held presignature and what it may sign.
struct Held {
    key_id: String,
    participants: Vec<NodeId>,
    presignature: Presignature,
}

type Reply = mpsc::Sender<Result<Progress<Outcome>, ThresholdError>>;

enum Command {
    Start {
        invitation: Box<Invitation>,
        me: PartyIndex,
        channel_keys: Vec<[u8; CHANNEL_KEY_LEN]>,
        spec: PartySpec,
        now: u64,
        reply: Reply,
    },
    Receive {
        relayed: Relayed,
        now: u64,
        reply: Reply,
    },
    End {
        session: [u8; SESSION_ID_LEN],
    },
    Held {
        key_id: String,
        reply: mpsc::Sender<Vec<(PresignatureId, Vec<NodeId>)>>,
    },
}

/// The session runner of one enclave boot.
pub struct Engine {
    commands: mpsc::Sender<Command>,
    channel_key: [u8; CHANNEL_KEY_LEN],
    thread: Option<JoinHandle<()>>,
}

fn stopped() -> ThresholdError {
    ThresholdError::Protocol(ProtocolError::Aborted {
        reason: "the session thread has stopped".into(),
        blame: Vec::new(),
    })
}

impl Engine {
    /// Starts the thread with this boot's channel secret.
    pub fn spawn(secret: ChannelSecret) -> Result<Self, ThresholdError> {
        let channel_key = secret.public();
        let (commands, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("threshold-sessions".into())
            .spawn(move || Worker::new(secret).run(inbox))
            .map_err(|_| stopped())?;
        Ok(Self {
            commands,
            channel_key,
            thread: Some(thread),
        })
    }

    /// This boot's channel key, to publish in hello documents.
    pub fn channel_key(&self) -> [u8; CHANNEL_KEY_LEN] {
        self.channel_key
    }

    fn ask(
        &self,
        make: impl FnOnce(Reply) -> Command,
    ) -> Result<Progress<Outcome>, ThresholdError> {
        let (reply, answer) = mpsc::channel();
        self.commands.send(make(reply)).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// Starts this node's party `me` of the session `invitation` proposes (the caller has
    /// checked the invitation and decided to take part), with the participants' channel
    /// keys: its first messages.
    pub fn start(
        &self,
        invitation: Invitation,
        me: PartyIndex,
        channel_keys: Vec<[u8; CHANNEL_KEY_LEN]>,
        spec: PartySpec,
        now: u64,
    ) -> Result<Progress<Outcome>, ThresholdError> {
        self.ask(|reply| Command::Start {
            invitation: Box::new(invitation),
            me,
            channel_keys,
            spec,
            now,
            reply,
        })
    }

    /// Takes a session's sealed messages for this node. An error ends the session.
    pub fn receive(&self, relayed: Relayed, now: u64) -> Result<Progress<Outcome>, ThresholdError> {
        self.ask(|reply| Command::Receive {
            relayed,
            now,
            reply,
        })
    }

    /// Ends a session (its coordinator gave up on it).
    pub fn end(&self, session: [u8; SESSION_ID_LEN]) {
        let _ = self.commands.send(Command::End { session });
    }

    /// The presignatures held for `key_id`, with the participants each was made by.
    pub fn held(&self, key_id: &str) -> Vec<(PresignatureId, Vec<NodeId>)> {
        let (reply, answer) = mpsc::channel();
        if self
            .commands
            .send(Command::Held {
                key_id: key_id.to_string(),
                reply,
            })
            .is_err()
        {
            return Vec::new();
        }
        answer.recv().unwrap_or_default()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; every session and presignature is
        // dropped (and wiped) with it.
        let (closed, _) = mpsc::channel();
        self.commands = closed;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Running {
    session: Session<Made>,
    issued_at: u64,
    participants: Vec<NodeId>,
    key_id: Option<String>,
}

/// What a party outputs inside the thread (a presignature stays here).
enum Made {
    Out(Outcome),
    Presignature(Box<Presignature>),
}

struct Worker {
    secret: ChannelSecret,
    sessions: HashMap<[u8; SESSION_ID_LEN], Running>,
    seen: HashMap<[u8; SESSION_ID_LEN], u64>,
    held: HashMap<PresignatureId, Held>,
}

impl Worker {
    fn new(secret: ChannelSecret) -> Self {
        Self {
            secret,
            sessions: HashMap::new(),
            seen: HashMap::new(),
            held: HashMap::new(),
        }
    }

    fn run(mut self, inbox: mpsc::Receiver<Command>) {
        while let Ok(command) = inbox.recv() {
            match command {
                Command::Start {
                    invitation,
                    me,
                    channel_keys,
                    spec,
                    now,
                    reply,
                } => {
                    self.expire(now);
                    let _ = reply.send(self.start(*invitation, me, &channel_keys, spec, now));
                }
                Command::Receive {
                    relayed,
                    now,
                    reply,
                } => {
                    self.expire(now);
                    let _ = reply.send(self.receive(relayed));
                }
                Command::End { session } => {
                    self.sessions.remove(&session);
                }
                Command::Held { key_id, reply } => {
                    let held = self
                        .held
                        .iter()
                        .filter(|(_, h)| h.key_id == key_id)
                        .map(|(id, h)| (*id, h.participants.clone()))
                        .collect();
                    let _ = reply.send(held);
                }
            }
        }
    }

    fn expire(&mut self, now: u64) {
        self.sessions
            .retain(|_, r| now.saturating_sub(r.issued_at) <= SESSION_LIFETIME);
        self.seen.retain(|_, issued| {
            now.saturating_sub(*issued) <= 2 * INVITATION_WINDOW + SESSION_LIFETIME
        });
    }

    fn start(
        &mut self,
        invitation: Invitation,
        me: PartyIndex,
        channel_keys: &[[u8; CHANNEL_KEY_LEN]],
        spec: PartySpec,
        now: u64,
    ) -> Result<Progress<Outcome>, ThresholdError> {
        let refuse = |reason: &str| ThresholdError::Material {
            what: "session",
            reason: reason.to_string(),
        };
        if invitation.issued_at.abs_diff(now) > INVITATION_WINDOW {
            return Err(refuse("its invitation is not fresh"));
        }
        let id = invitation.session_id()?;
        if self.seen.contains_key(&id) {
            return Err(refuse(
                "this session was already started in this boot (a replayed invitation)",
            ));
        }
        if self.sessions.len() >= MAX_SESSIONS || self.seen.len() >= MAX_REMEMBERED {
            return Err(refuse("too many sessions in progress"));
        }
        self.seen.insert(id, invitation.issued_at);
        let n = invitation.participants.len() as u16;
        let eid = id;
        let key_id = match &spec {
            PartySpec::Presign { key_id, .. } => Some(key_id.clone()),
            _ => None,
        };
        let party = self.build(spec, eid, me, n, &invitation.participants)?;
        let (session, progress) =
            Session::start(&invitation, me, &self.secret, channel_keys, party)?;
        let running = Running {
            session,
            issued_at: invitation.issued_at,
            participants: invitation.participants,
            key_id,
        };
        self.finish(id, running, progress)
    }

    fn receive(&mut self, relayed: Relayed) -> Result<Progress<Outcome>, ThresholdError> {
        let id = relayed.session;
        let mut running = self
            .sessions
            .remove(&id)
            .ok_or_else(|| ThresholdError::Material {
                what: "session",
                reason: "no such session in progress (ended, expired or never started)".into(),
            })?;
        // An error drops the session: it is not put back.
        let progress = running.session.receive(relayed)?;
        self.finish(id, running, progress)
    }

    /// Keeps a session that goes on; hands over what one that ended made.
    fn finish(
        &mut self,
        id: [u8; SESSION_ID_LEN],
        running: Running,
        progress: Progress<Made>,
    ) -> Result<Progress<Outcome>, ThresholdError> {
        let output = match progress.output {
            None => {
                self.sessions.insert(id, running);
                None
            }
            Some(Made::Out(outcome)) => Some(outcome),
            Some(Made::Presignature(presignature)) => {
                let presignature = *presignature;
                if self.held.len() >= MAX_PRESIGNATURES {
                    return Err(ThresholdError::Material {
                        what: "presignature",
                        reason: "the pool is full".into(),
                    });
                }
                let mut pid = [0u8; 16];
                pid.copy_from_slice(&id[..16]);
                self.held.insert(
                    pid,
                    Held {
                        key_id: running.key_id.unwrap_or_default(),
                        participants: running.participants,
                        presignature,
                    },
                );
                Some(Outcome::Presignature(pid))
            }
        };
        Ok(Progress {
            outgoing: progress.outgoing,
            output,
        })
    }

    fn build(
        &mut self,
        spec: PartySpec,
        eid: [u8; 32],
        me: PartyIndex,
        n: u16,
        participants: &[NodeId],
    ) -> Result<Box<dyn Party<Output = Made>>, ThresholdError> {
        Ok(match spec {
            PartySpec::AuxInfo { primes } => {
                let primes = Primes::from_bytes(&primes)?;
                boxed(ecdsa::aux_info(eid, me, n, primes), |aux: AuxInfo| {
                    Ok(Made::Out(Outcome::AuxInfo(aux.to_bytes()?)))
                })
            }
            PartySpec::Keygen {
                scheme: Scheme::Secp256k1Ecdsa,
                threshold,
            } => boxed(ecdsa::keygen(eid, me, n, threshold)?, |share: KeyShare| {
                let group_key = share.public_key().to_vec();
                Ok(Made::Out(Outcome::Share {
                    scheme: Scheme::Secp256k1Ecdsa,
                    public_digest: digest(&[&group_key, &share.public_material()?]),
                    share: share.to_bytes()?,
                    group_key,
                }))
            }),
            PartySpec::Keygen {
                scheme: Scheme::Secp256k1Schnorr,
                threshold,
            } => boxed(
                Dkg::<Secp256K1Sha256TR>::new(me, n, threshold)?,
                frost_share,
            ),
            PartySpec::Keygen {
                scheme: Scheme::Ed25519,
                threshold,
            } => boxed(Dkg::<Ed25519Sha512>::new(me, n, threshold)?, frost_share),
            PartySpec::Presign {
                share,
                aux,
                signers,
                ..
            } => {
                let share = KeyShare::from_bytes(&share)?;
                let aux = AuxInfo::from_bytes(&aux)?;
                boxed(ecdsa::presign(eid, me, signers, &share, &aux)?, |p| {
                    Ok(Made::Presignature(Box::new(p)))
                })
            }
            PartySpec::EcdsaDigest {
                share,
                aux,
                signers,
                digest,
            } => {
                let share = KeyShare::from_bytes(&share)?;
                let aux = AuxInfo::from_bytes(&aux)?;
                boxed(ecdsa::sign(eid, me, signers, &share, &aux, digest)?, |s| {
                    Ok(Made::Out(Outcome::Ecdsa(s)))
                })
            }
            PartySpec::EcdsaPresigned {
                key_id,
                presignature,
                preimage,
            } => {
                // Removed before anything else: a presignature is never used twice, even by
                // a session that then fails.
                let held =
                    self.held
                        .remove(&presignature)
                        .ok_or_else(|| ThresholdError::Material {
                            what: "presignature",
                            reason: "not held (spent, expired with its boot, or never made)".into(),
                        })?;
                if held.key_id != key_id || held.participants != participants {
                    return Err(ThresholdError::Material {
                        what: "presignature",
                        reason: "made for another key or other signers".into(),
                    });
                }
                boxed(ecdsa::sign_presigned(held.presignature, &preimage), |s| {
                    Ok(Made::Out(Outcome::Ecdsa(s)))
                })
            }
            PartySpec::Schnorr {
                scheme,
                key,
                signers,
                message,
            } => match scheme {
                Scheme::Secp256k1Schnorr => boxed(
                    Sign::new(
                        me,
                        &signers,
                        FrostKey::<Secp256K1Sha256TR>::from_bytes(&key)?,
                        message,
                    )?,
                    |s| Ok(Made::Out(Outcome::Schnorr(s))),
                ),
                Scheme::Ed25519 => boxed(
                    Sign::new(
                        me,
                        &signers,
                        FrostKey::<Ed25519Sha512>::from_bytes(&key)?,
                        message,
                    )?,
                    |s| Ok(Made::Out(Outcome::Schnorr(s))),
                ),
                Scheme::Secp256k1Ecdsa => {
                    return Err(ThresholdError::Material {
                        what: "signing request",
                        reason: "an ECDSA key signs with the ECDSA protocol".into(),
                    });
                }
            },
        })
    }
}

fn frost_share<C: Suite>(key: FrostKey<C>) -> Result<Made, ThresholdError> {
    Ok(Made::Out(Outcome::Share {
        scheme: C::SCHEME,
        group_key: key.chain_key()?,
        public_digest: key.public_digest()?,
        share: key.to_bytes()?,
    }))
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// A typed party whose output `finish` turns into what the thread keeps or hands over.
fn boxed<P, F>(party: P, finish: F) -> Box<dyn Party<Output = Made>>
where
    P: Party + 'static,
    F: FnOnce(P::Output) -> Result<Made, ThresholdError> + 'static,
{
    Box::new(Mapped {
        party,
        finish: Some(finish),
    })
}

struct Mapped<P, F> {
    party: P,
    finish: Option<F>,
}

impl<P, F> Party for Mapped<P, F>
where
    P: Party,
    F: FnOnce(P::Output) -> Result<Made, ThresholdError>,
{
    type Output = Made;

    fn step(&mut self, incoming: Vec<Message>) -> Result<Step<Made>, ProtocolError> {
        let step = self.party.step(incoming)?;
        let output = match step.output {
            None => None,
            Some(out) => {
                let finish = self.finish.take().ok_or(ProtocolError::Finished)?;
                Some(finish(out).map_err(|e| ProtocolError::Aborted {
                    reason: e.to_string(),
                    blame: Vec::new(),
                })?)
            }
        };
        Ok(Step {
            outgoing: step.outgoing,
            output,
        })
    }
}
