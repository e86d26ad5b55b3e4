//! One party of one protocol run: messages in, messages and output out.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::wire::MAX_MESSAGE_LEN;

/// A party's position in a run: `0..n` for key generation (its place in the group),
/// `0..t` for signing (its place among that run's signers).
pub type PartyIndex = u16;

/// Who a message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recipient {
    /// Every other party of the run (a broadcast: the same bytes for each).
    All,
    /// One party.
    One(PartyIndex),
}

/// One protocol message, in the clear: it exists only inside enclaves and travels sealed
/// ([`crate::channel`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender.
    pub from: PartyIndex,
    /// The recipient(s).
    pub to: Recipient,
    /// The protocol's encoding of the message.
    pub body: Vec<u8>,
}

/// What a party did with the messages it was given.
#[derive(Debug)]
pub struct Step<O> {
    /// Messages to deliver, in order.
    pub outgoing: Vec<Message>,
    /// The run's result for this party, once it has one.
    pub output: Option<O>,
}

/// One party of one run of a protocol.
pub trait Party {
    /// What the run gives this party.
    type Output;

    /// Takes the messages that arrived for this party (none to start) and goes as far as
    /// they allow. An error ends the run; the party must then be dropped.
    fn step(&mut self, incoming: Vec<Message>) -> Result<Step<Self::Output>, ProtocolError>;
}

/// Checks what every party checks of a message before reading it: a sender of the run
/// other than itself, addressed to it or to all, and within the size limit.
pub fn check_incoming(message: &Message, me: PartyIndex, n: u16) -> Result<(), ProtocolError> {
    let from = message.from;
    let for_me = match message.to {
        Recipient::All => true,
        Recipient::One(to) => to == me,
    };
    if from >= n || from == me || !for_me {
        return Err(ProtocolError::Misrouted { from });
    }
    if message.body.len() > MAX_MESSAGE_LEN {
        return Err(ProtocolError::TooLarge {
            from,
            len: message.body.len(),
        });
    }
    Ok(())
}
