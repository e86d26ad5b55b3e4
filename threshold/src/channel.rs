//! The end-to-end channel between the enclaves of one session: parents relay sealed
//! messages they can neither read nor change, re-route, replay, re-order or drop unseen.
//!
//! Each enclave makes an X25519 key at boot, kept in memory, and publishes it signed by its
//! attested identity (the statement is [`channel_key_statement`]); a peer's key is taken
//! only with that signature by an identity its attestation document vouches for. For a
//! session, the two directions between each pair of parties get their own AES-256-GCM key:
//! HKDF-SHA256 of the X25519 shared secret, salted with the session id (which binds the
//! request and the participants) and labelled with sender and recipient keys. Every
//! message is numbered per direction from 0; the number is the nonce and, with the session,
//! the parties and whether it is a broadcast, the associated data. A recipient takes only
//! the next number: a gap, a repeat or a swap ends the session.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::ChannelError;
use crate::party::{Message, PartyIndex, Recipient};

/// Length of a channel (X25519) public key.
pub const CHANNEL_KEY_LEN: usize = 32;
/// Length of a session id.
pub const SESSION_ID_LEN: usize = 32;

const KEY_LABEL: &[u8] = b"strongroom/threshold/channel-key/v1";
const LINK_LABEL: &[u8] = b"strongroom/threshold/link/v1";

/// This enclave's channel key for one boot. It never leaves the enclave and is never
/// sealed.
pub struct ChannelSecret {
    key: PrivateKey,
    public: [u8; CHANNEL_KEY_LEN],
}

impl ChannelSecret {
    /// A fresh key.
    pub fn generate() -> Result<Self, ChannelError> {
        let key = PrivateKey::generate(&X25519).map_err(|_| ChannelError::Crypto)?;
        let public = key.compute_public_key().map_err(|_| ChannelError::Crypto)?;
        let public =
            <[u8; CHANNEL_KEY_LEN]>::try_from(public.as_ref()).map_err(|_| ChannelError::Crypto)?;
        Ok(Self { key, public })
    }

    /// The public key to publish.
    pub fn public(&self) -> [u8; CHANNEL_KEY_LEN] {
        self.public
    }
}

impl std::fmt::Debug for ChannelSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSecret")
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

/// The bytes an enclave's identity signs to publish its channel key.
pub fn channel_key_statement(public: &[u8; CHANNEL_KEY_LEN]) -> Vec<u8> {
    [KEY_LABEL, public.as_slice()].concat()
}

/// A sealed protocol message as parents relay it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The sender's index in the session.
    pub from: PartyIndex,
    /// The recipient's index in the session.
    pub to: PartyIndex,
    /// A copy of a broadcast (the same plaintext went to every party).
    pub broadcast: bool,
    /// The message's number from this sender to this recipient.
    pub seq: u64,
    /// AES-256-GCM ciphertext and tag.
    pub ciphertext: ByteBuf,
}

struct Link {
    send: LessSafeKey,
    recv: LessSafeKey,
    sent: u64,
    received: u64,
}

/// One session's channels from this party to every other.
pub struct Channels {
    session: [u8; SESSION_ID_LEN],
    me: PartyIndex,
    links: Vec<Option<Link>>,
}

impl Channels {
    /// The channels of party `me` in `session`, whose parties' channel keys are `parties`
    /// (by index, this party's own among them).
    pub fn new(
        secret: &ChannelSecret,
        session: [u8; SESSION_ID_LEN],
        me: PartyIndex,
        parties: &[[u8; CHANNEL_KEY_LEN]],
    ) -> Result<Self, ChannelError> {
        if parties.get(usize::from(me)) != Some(&secret.public) {
            return Err(ChannelError::UnknownParty(me));
        }
        let mut links = Vec::with_capacity(parties.len());
        for (i, peer) in parties.iter().enumerate() {
            if i == usize::from(me) {
                links.push(None);
                continue;
            }
            let peer_key = UnparsedPublicKey::new(&X25519, peer);
            let derive = |from: &[u8; 32],
                          to: &[u8; 32],
                          shared: &[u8]|
             -> Result<LessSafeKey, ChannelError> {
                let prk = Salt::new(HKDF_SHA256, &session).extract(shared);
                let info: [&[u8]; 3] = [LINK_LABEL, from, to];
                let okm = prk
                    .expand(&info, &AES_256_GCM)
                    .map_err(|_| ChannelError::Crypto)?;
                Ok(LessSafeKey::new(UnboundKey::from(okm)))
            };
            let (send, recv) =
                agreement::agree(&secret.key, peer_key, ChannelError::BadKey, |shared| {
                    Ok((
                        derive(&secret.public, peer, shared)?,
                        derive(peer, &secret.public, shared)?,
                    ))
                })?;
            links.push(Some(Link {
                send,
                recv,
                sent: 0,
                received: 0,
            }));
        }
        Ok(Self { session, me, links })
    }

    fn aad(
        &self,
        from: PartyIndex,
        to: PartyIndex,
        broadcast: bool,
        seq: u64,
    ) -> [u8; SESSION_ID_LEN + 13] {
        let mut aad = [0u8; SESSION_ID_LEN + 13];
        aad[..SESSION_ID_LEN].copy_from_slice(&self.session);
        aad[SESSION_ID_LEN..SESSION_ID_LEN + 2].copy_from_slice(&from.to_be_bytes());
        aad[SESSION_ID_LEN + 2..SESSION_ID_LEN + 4].copy_from_slice(&to.to_be_bytes());
        aad[SESSION_ID_LEN + 4] = u8::from(broadcast);
        aad[SESSION_ID_LEN + 5..].copy_from_slice(&seq.to_be_bytes());
        aad
    }

    fn nonce(seq: u64) -> Nonce {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&seq.to_be_bytes());
        Nonce::assume_unique_for_key(nonce)
    }

    /// Seals this party's message: one copy per recipient (every other party for a
    /// broadcast).
    pub fn seal(&mut self, message: &Message) -> Result<Vec<Sealed>, ChannelError> {
        if message.from != self.me {
            return Err(ChannelError::UnknownParty(message.from));
        }
        let (recipients, broadcast): (Vec<PartyIndex>, bool) = match message.to {
            Recipient::All => (
                (0..self.links.len() as PartyIndex)
                    .filter(|&i| i != self.me)
                    .collect(),
                true,
            ),
            Recipient::One(to) => (vec![to], false),
        };
        let mut sealed = Vec::with_capacity(recipients.len());
        for to in recipients {
            let seq = match self.links.get(usize::from(to)) {
                Some(Some(link)) => link.sent,
                _ => return Err(ChannelError::UnknownParty(to)),
            };
            let aad = self.aad(self.me, to, broadcast, seq);
            let Some(Some(link)) = self.links.get_mut(usize::from(to)) else {
                return Err(ChannelError::UnknownParty(to));
            };
            let mut buffer = message.body.clone();
            link.send
                .seal_in_place_append_tag(Self::nonce(seq), Aad::from(aad), &mut buffer)
                .map_err(|_| ChannelError::Crypto)?;
            link.sent += 1;
            sealed.push(Sealed {
                from: self.me,
                to,
                broadcast,
                seq,
                ciphertext: ByteBuf::from(buffer),
            });
        }
        Ok(sealed)
    }

    /// Opens a message for this party: it must be the next from its sender and
    /// authenticate; otherwise the session must end.
    pub fn open(&mut self, sealed: Sealed) -> Result<Message, ChannelError> {
        let from = sealed.from;
        if sealed.to != self.me {
            return Err(ChannelError::Unauthentic { from });
        }
        let aad = self.aad(from, self.me, sealed.broadcast, sealed.seq);
        let Some(Some(link)) = self.links.get_mut(usize::from(from)) else {
            return Err(ChannelError::UnknownParty(from));
        };
        if sealed.seq != link.received {
            return Err(ChannelError::OutOfOrder {
                from,
                expected: link.received,
                got: sealed.seq,
            });
        }
        let mut buffer = sealed.ciphertext.into_vec();
        let plain_len = link
            .recv
            .open_in_place(Self::nonce(sealed.seq), Aad::from(aad), &mut buffer)
            .map_err(|_| ChannelError::Unauthentic { from })?
            .len();
        buffer.truncate(plain_len);
        link.received += 1;
        Ok(Message {
            from,
            to: if sealed.broadcast {
                Recipient::All
            } else {
                Recipient::One(self.me)
            },
            body: buffer,
        })
    }
}
