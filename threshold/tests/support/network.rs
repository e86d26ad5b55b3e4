//! An in-memory network for tests: every party's outgoing messages delivered to their
//! recipients, round after round, through the sealed channel or in the clear, with a hook
//! that may change what is delivered (a relaying parent that lies).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use strongroom_threshold::channel::{ChannelSecret, Channels, Sealed};
use strongroom_threshold::{Message, Party, ProtocolError, Recipient, ThresholdError};

/// The largest sealed message any run of this test binary delivered, in bytes.
pub static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// How messages travel between the parties of a run.
trait Transport {
    /// What is in flight.
    type Item;
    /// Party `to` receives `item`.
    fn open(&mut self, to: usize, item: Self::Item) -> Result<Message, ThresholdError>;
    /// Party `from` sends `message`: what arrives, and where.
    fn send(&mut self, from: usize, message: Message) -> Vec<(usize, Self::Item)>;
}

/// Runs every party until none has anything left to do.
fn run_over<O, T: Transport>(
    parties: Vec<Box<dyn Party<Output = O>>>,
    transport: &mut T,
) -> Vec<Result<O, ThresholdError>> {
    let n = parties.len();
    let mut parties: Vec<Option<Box<dyn Party<Output = O>>>> =
        parties.into_iter().map(Some).collect();
    let mut results: Vec<Option<Result<O, ThresholdError>>> = (0..n).map(|_| None).collect();
    let mut inboxes: Vec<Vec<T::Item>> = (0..n).map(|_| Vec::new()).collect();
    let mut first = true;
    loop {
        let mut progressed = false;
        let mut outbox = Vec::new();
        for i in 0..n {
            let Some(party) = parties[i].as_mut() else {
                continue;
            };
            let inbox = std::mem::take(&mut inboxes[i]);
            if inbox.is_empty() && !first {
                continue;
            }
            progressed = true;
            let opened: Result<Vec<Message>, ThresholdError> = inbox
                .into_iter()
                .map(|item| transport.open(i, item))
                .collect();
            match opened.and_then(|m| party.step(m).map_err(ThresholdError::from)) {
                Err(e) => {
                    results[i] = Some(Err(e));
                    parties[i] = None;
                }
                Ok(step) => {
                    outbox.extend(step.outgoing.into_iter().map(|m| (i, m)));
                    if let Some(o) = step.output {
                        results[i] = Some(Ok(o));
                        parties[i] = None;
                    }
                }
            }
        }
        first = false;
        for (from, m) in outbox {
            for (to, item) in transport.send(from, m) {
                if to < n {
                    inboxes[to].push(item);
                }
            }
        }
        if !progressed {
            break;
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(ThresholdError::Protocol(ProtocolError::Finished))))
        .collect()
}

struct SealedTransport<'r> {
    channels: Vec<Channels>,
    relay: &'r mut dyn FnMut(Sealed) -> Vec<Sealed>,
}

impl Transport for SealedTransport<'_> {
    type Item = Sealed;

    fn open(&mut self, to: usize, item: Sealed) -> Result<Message, ThresholdError> {
        Ok(self.channels[to].open(item)?)
    }

    fn send(&mut self, from: usize, message: Message) -> Vec<(usize, Sealed)> {
        let mut out = Vec::new();
        for sealed in self.channels[from].seal(&message).unwrap() {
            LARGEST.fetch_max(sealed.ciphertext.len(), Ordering::Relaxed);
            out.extend(
                (self.relay)(sealed)
                    .into_iter()
                    .map(|s| (usize::from(s.to), s)),
            );
        }
        out
    }
}

struct ClearTransport<'r> {
    n: usize,
    relay: &'r mut dyn FnMut(usize, Message) -> Option<Message>,
}

impl Transport for ClearTransport<'_> {
    type Item = Message;

    fn open(&mut self, _to: usize, item: Message) -> Result<Message, ThresholdError> {
        Ok(item)
    }

    fn send(&mut self, from: usize, message: Message) -> Vec<(usize, Message)> {
        let targets: Vec<usize> = match message.to {
            Recipient::All => (0..self.n).filter(|&j| j != from).collect(),
            Recipient::One(j) => vec![usize::from(j)],
        };
        targets
            .into_iter()
            .filter_map(|to| (self.relay)(to, message.clone()).map(|m| (to, m)))
            .collect()
    }
}

/// Runs `parties` through the sealed channel of `session`; `relay` sees each sealed
/// message in flight and returns what is delivered instead (nothing: dropped; two:
/// duplicated).
pub fn run_sealed<O>(
    parties: Vec<Box<dyn Party<Output = O>>>,
    session: [u8; 32],
    relay: &mut dyn FnMut(Sealed) -> Vec<Sealed>,
) -> Vec<Result<O, ThresholdError>> {
    let secrets: Vec<ChannelSecret> = (0..parties.len())
        .map(|_| ChannelSecret::generate().unwrap())
        .collect();
    let publics: Vec<[u8; 32]> = secrets.iter().map(ChannelSecret::public).collect();
    let channels = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| Channels::new(s, session, i as u16, &publics).unwrap())
        .collect();
    run_over(parties, &mut SealedTransport { channels, relay })
}

/// Runs `parties` over an honest relay and returns every output.
pub fn run<O>(parties: Vec<Box<dyn Party<Output = O>>>) -> Vec<O> {
    run_sealed(parties, [7u8; 32], &mut |s| vec![s])
        .into_iter()
        .map(|r| r.expect("an honest run finishes"))
        .collect()
}

/// Runs `parties` in the clear with `relay` able to change (or drop) any message on its
/// way to party `to`.
pub fn run_clear<O>(
    parties: Vec<Box<dyn Party<Output = O>>>,
    relay: &mut dyn FnMut(usize, Message) -> Option<Message>,
) -> Vec<Result<O, ThresholdError>> {
    let n = parties.len();
    run_over(parties, &mut ClearTransport { n, relay })
}
