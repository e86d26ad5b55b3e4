//! A session: one protocol run between enclaves, bound to the invitation every
//! participant checked.
//!
//! The node a client called (the coordinator) proposes an [`Invitation`]: the kind of run,
//! the participants in order, the client's stamped request where there is one, and 32
//! random bytes. The session id is the hash of the invitation, so it binds the request and
//! the participants and never repeats; it salts every channel key of the session
//! ([`crate::channel`]), so no message of one session is accepted in another.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::channel::{CHANNEL_KEY_LEN, ChannelSecret, Channels, SESSION_ID_LEN, Sealed};
use crate::error::ThresholdError;
use crate::party::{Party, PartyIndex};
use crate::wire::{decode, encode};
use crate::{MAX_PARTIES, Scheme};

/// A node of a signing group, named by its root-key check value: deployments of one
/// genesis differ by their root keys.
pub type NodeId = [u8; 16];

/// Largest encoded invitation (a stamped request is at most 256 KiB of body).
pub const MAX_INVITATION_LEN: usize = 320 * 1024;

/// What a session runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionKind {
    /// The group's CGGMP24 auxiliary information, once for every key of the group.
    AuxInfo,
    /// Key generation: `threshold` of the participants will sign.
    Keygen {
        /// The key's scheme.
        scheme: Scheme,
        /// Signers needed.
        threshold: u16,
    },
    /// A CGGMP24 presignature for a key, by exactly its signers.
    Presign {
        /// The key.
        key_id: String,
    },
    /// A signature with a key.
    Sign {
        /// The key.
        key_id: String,
        /// The presignature the signers spend, if any (CGGMP24 only).
        presignature: Option<[u8; 16]>,
    },
}

/// A coordinator's proposal of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// The genesis digest of the group's deployments.
    pub genesis: [u8; 32],
    /// What runs.
    pub kind: SessionKind,
    /// The participants, in the order that gives their indices in the run.
    pub participants: Vec<NodeId>,
    /// The client's stamped request (for key generation and signing), as every node
    /// checks it.
    pub request: Option<ByteBuf>,
    /// Random bytes of the coordinator's enclave: no two sessions have one id.
    pub nonce: [u8; 32],
    /// When the coordinator made it (seconds since the Unix epoch, enclave clock).
    pub issued_at: u64,
}

impl Invitation {
    /// The encoding the coordinator signs and every participant hashes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ThresholdError> {
        Ok(encode(self)?)
    }

    /// Reads an invitation, bounded; the parties are checked with [`Invitation::check`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        if bytes.len() > MAX_INVITATION_LEN {
            return Err(invalid("larger than the limit"));
        }
        decode(bytes, 0).map_err(|_| invalid("does not decode"))
    }

    /// The session id: SHA-256 of a label and the encoding.
    pub fn session_id(&self) -> Result<[u8; SESSION_ID_LEN], ThresholdError> {
        let mut hash = Sha256::new();
        hash.update(b"strongroom/threshold/session/v1");
        hash.update(self.to_bytes()?);
        Ok(hash.finalize().into())
    }

    /// This node's index in the run, if it takes part.
    pub fn position(&self, node: &NodeId) -> Option<PartyIndex> {
        self.participants
            .iter()
            .position(|p| p == node)
            .map(|i| i as PartyIndex)
    }

    /// Checks what a participant checks before anything else: at least two distinct
    /// participants, at most [`MAX_PARTIES`], this node among them, the genesis its own,
    /// and issued within `window` seconds of `now`. Returns this node's index.
    pub fn check(
        &self,
        me: &NodeId,
        genesis: &[u8; 32],
        now: u64,
        window: u64,
    ) -> Result<PartyIndex, ThresholdError> {
        let mut distinct = self.participants.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != self.participants.len()
            || self.participants.len() < 2
            || self.participants.len() > usize::from(MAX_PARTIES)
        {
            return Err(invalid("its participants must be 2 to 16 distinct nodes"));
        }
        if &self.genesis != genesis {
            return Err(invalid("it is for another genesis"));
        }
        if self.issued_at.abs_diff(now) > window {
            return Err(invalid("it is not fresh"));
        }
        self.position(me)
            .ok_or_else(|| invalid("this node is not a participant"))
    }
}

fn invalid(reason: &str) -> ThresholdError {
    ThresholdError::Material {
        what: "invitation",
        reason: reason.to_string(),
    }
}

/// Sealed messages of one session, as parents relay them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relayed {
    /// The session.
    pub session: [u8; SESSION_ID_LEN],
    /// Its messages, in the order they were sealed.
    pub messages: Vec<Sealed>,
}

/// What a session did with the messages it was given.
#[derive(Debug)]
pub struct Progress<O> {
    /// Sealed messages to relay.
    pub outgoing: Vec<Sealed>,
    /// This party's output, once the run has ended for it.
    pub output: Option<O>,
}

/// One party's side of a session: its run and its channels.
pub struct Session<O> {
    id: [u8; SESSION_ID_LEN],
    channels: Channels,
    party: Box<dyn Party<Output = O>>,
    finished: bool,
}

impl<O> Session<O> {
    /// Starts party `me` of the session `invitation` proposes, whose participants' channel
    /// keys are `channel_keys` (by index; this node's own among them): the run's first
    /// messages, sealed.
    pub fn start(
        invitation: &Invitation,
        me: PartyIndex,
        secret: &ChannelSecret,
        channel_keys: &[[u8; CHANNEL_KEY_LEN]],
        party: Box<dyn Party<Output = O>>,
    ) -> Result<(Self, Progress<O>), ThresholdError> {
        if channel_keys.len() != invitation.participants.len() {
            return Err(invalid("a channel key is needed for every participant"));
        }
        let id = invitation.session_id()?;
        let channels = Channels::new(secret, id, me, channel_keys)?;
        let mut session = Self {
            id,
            channels,
            party,
            finished: false,
        };
        let progress = session.advance(Vec::new())?;
        Ok((session, progress))
    }

    /// The session id.
    pub fn id(&self) -> [u8; SESSION_ID_LEN] {
        self.id
    }

    /// Takes sealed messages for this party and goes as far as they allow. Any error ends
    /// the session: the caller drops it, and with it every secret of the run.
    pub fn receive(&mut self, relayed: Relayed) -> Result<Progress<O>, ThresholdError> {
        if relayed.session != self.id {
            return Err(invalid("messages of another session"));
        }
        let mut opened = Vec::with_capacity(relayed.messages.len());
        for sealed in relayed.messages {
            opened.push(self.channels.open(sealed)?);
        }
        self.advance(opened)
    }

    fn advance(&mut self, incoming: Vec<crate::Message>) -> Result<Progress<O>, ThresholdError> {
        if self.finished {
            return Err(crate::ProtocolError::Finished.into());
        }
        let step = self.party.step(incoming)?;
        let mut outgoing = Vec::new();
        for message in &step.outgoing {
            outgoing.extend(self.channels.seal(message)?);
        }
        self.finished = step.output.is_some();
        Ok(Progress {
            outgoing,
            output: step.output,
        })
    }
}
