//! The crate's one error type at its boundary, of sub-enums by concern.

use crate::party::PartyIndex;

/// Anything that stops a threshold protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// The threshold is outside 2 ≤ t ≤ n ≤ [`crate::MAX_PARTIES`].
    #[error("a {t}-of-{n} threshold is not allowed (2 ≤ t ≤ n ≤ 16)")]
    Threshold {
        /// Signers needed.
        t: u16,
        /// Parties.
        n: u16,
    },
    /// The protocol aborted.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A sealed message was refused.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// Stored material (a key share, auxiliary information, primes) does not decode or
    /// does not belong together.
    #[error("{what} is not valid: {reason}")]
    Material {
        /// What was being read.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
}

/// Why a protocol run stopped. A run that stops is over: the caller drops it, and with it
/// every nonce it held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A message names a sender or recipient outside the run, or is not for this party.
    #[error("a message from party {from} is not for this party of this run")]
    Misrouted {
        /// The claimed sender.
        from: PartyIndex,
    },
    /// A message does not decode as this protocol's.
    #[error("party {from} sent a message that does not decode")]
    Undecodable {
        /// The sender.
        from: PartyIndex,
    },
    /// A message is larger than [`crate::MAX_MESSAGE_LEN`].
    #[error("party {from} sent a message of {len} bytes, over the limit")]
    TooLarge {
        /// The sender.
        from: PartyIndex,
        /// Its length.
        len: usize,
    },
    /// A message arrived that the protocol does not expect now (a second message of a
    /// round, a message of a round already closed).
    #[error("party {from} sent a message the protocol does not expect now")]
    Unexpected {
        /// The sender.
        from: PartyIndex,
    },
    /// The protocol found a party misbehaving or could not go on; `blame` names the parties
    /// at fault where the protocol can tell.
    #[error("the protocol aborted: {reason}{}", blame_text(blame))]
    Aborted {
        /// What the protocol reported.
        reason: String,
        /// The parties at fault, where known.
        blame: Vec<PartyIndex>,
    },
    /// The run already ended.
    #[error("the protocol run has already ended")]
    Finished,
}

fn blame_text(blame: &[PartyIndex]) -> String {
    if blame.is_empty() {
        String::new()
    } else {
        let parties: Vec<String> = blame.iter().map(u16::to_string).collect();
        format!(" (at fault: party {})", parties.join(", "))
    }
}

/// A sealed message refused by the end-to-end channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Not the next message from that sender: one was dropped, replayed or re-ordered.
    #[error(
        "message from party {from} out of order: expected number {expected}, got {got} (dropped, replayed or re-ordered)"
    )]
    OutOfOrder {
        /// The sender.
        from: PartyIndex,
        /// The number expected.
        expected: u64,
        /// The number received.
        got: u64,
    },
    /// The message does not authenticate: altered, sent to another party, or of another
    /// session.
    #[error(
        "message from party {from} does not authenticate (altered, re-routed or of another session)"
    )]
    Unauthentic {
        /// The claimed sender.
        from: PartyIndex,
    },
    /// The sender or recipient is not a party of this session.
    #[error("party {0} is not in this session")]
    UnknownParty(PartyIndex),
    /// A peer's channel key is not an X25519 public key.
    #[error("a peer's channel key is not a valid X25519 public key")]
    BadKey,
    /// The platform's cryptography failed (no randomness).
    #[error("the channel's cryptography failed")]
    Crypto,
}
