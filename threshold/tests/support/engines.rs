//! Engines (one per node, each on its own thread) relaying sealed messages the way the
//! parents will: drives sessions of several engines to their outcomes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use strongroom_threshold::ThresholdError;
use strongroom_threshold::channel::ChannelSecret;
use strongroom_threshold::engine::{Engine, Outcome, PartySpec};
use strongroom_threshold::session::{Invitation, Progress, Relayed};

/// The genesis of the tests' group.
pub const GENESIS: [u8; 32] = [0x6e; 32];
/// The tests' clock.
pub const NOW: u64 = 1_800_000_000;

/// `n` engines, each with a fresh channel key.
pub fn engines(n: usize) -> Vec<Engine> {
    (0..n)
        .map(|_| Engine::spawn(ChannelSecret::generate().unwrap()).unwrap())
        .collect()
}

/// Starts the session on the participating engines (`nodes[i]` is the engine of session
/// index `i`), with each one's spec, and relays until every one has its outcome.
pub fn run(
    engines: &[Engine],
    nodes: &[usize],
    invitation: &Invitation,
    specs: Vec<PartySpec>,
    now: u64,
) -> Vec<Result<Outcome, ThresholdError>> {
    let keys: Vec<[u8; 32]> = nodes.iter().map(|&e| engines[e].channel_key()).collect();
    let id = invitation.session_id().unwrap();
    let mut results: Vec<Option<Result<Outcome, ThresholdError>>> =
        nodes.iter().map(|_| None).collect();
    let mut pending: Vec<Progress<Outcome>> = Vec::new();
    for (i, spec) in specs.into_iter().enumerate() {
        match engines[nodes[i]].start(invitation.clone(), i as u16, keys.clone(), spec, now) {
            Ok(mut p) => {
                if let Some(o) = p.output.take() {
                    results[i] = Some(Ok(o));
                }
                pending.push(p);
            }
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    for _round in 0..16 {
        let mut inboxes: Vec<Vec<_>> = nodes.iter().map(|_| Vec::new()).collect();
        for p in pending.drain(..) {
            for sealed in p.outgoing {
                inboxes[usize::from(sealed.to)].push(sealed);
            }
        }
        let mut any = false;
        for (i, inbox) in inboxes.into_iter().enumerate() {
            if results[i].is_some() || inbox.is_empty() {
                continue;
            }
            any = true;
            match engines[nodes[i]].receive(
                Relayed {
                    session: id,
                    messages: inbox,
                },
                now,
            ) {
                Ok(mut p) => {
                    if let Some(o) = p.output.take() {
                        results[i] = Some(Ok(o));
                    }
                    pending.push(p);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if !any {
            break;
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or(Err(ThresholdError::Protocol(
                strongroom_threshold::ProtocolError::Finished,
            )))
        })
        .collect()
}
