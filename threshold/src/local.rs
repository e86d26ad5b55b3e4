//! Sessions among engines in one process, relayed in memory the way parents relay them
//! between machines: for tests and benchmarks.

use crate::engine::{Engine, Outcome, PartySpec};
use crate::error::{ProtocolError, ThresholdError};
use crate::session::{Invitation, Progress, Relayed};

/// Most relay rounds before a run that has not ended is stopped (CGGMP24's longest
/// protocol has 6 rounds).
const MAX_ROUNDS: usize = 32;

/// Starts the session `invitation` proposes on `engines` (session index `i` on
/// `engines[i]`), each with its spec, and relays every sealed message to its recipient,
/// round after round, until each engine has its outcome or its error.
pub fn run_local(
    engines: &[&Engine],
    invitation: &Invitation,
    specs: Vec<PartySpec>,
    now: u64,
) -> Vec<Result<Outcome, ThresholdError>> {
    let keys: Vec<[u8; 32]> = engines.iter().map(|e| e.channel_key()).collect();
    let mut results: Vec<Option<Result<Outcome, ThresholdError>>> =
        engines.iter().map(|_| None).collect();
    let mut pending: Vec<Progress<Outcome>> = Vec::new();
    let mut take = |i: usize,
                    result: Result<Progress<Outcome>, ThresholdError>,
                    pending: &mut Vec<Progress<Outcome>>| match result {
        Ok(mut progress) => {
            if let Some(outcome) = progress.output.take() {
                results[i] = Some(Ok(outcome));
            }
            pending.push(progress);
        }
        Err(e) => results[i] = Some(Err(e)),
    };
    for (i, spec) in specs.into_iter().enumerate() {
        if let Some(engine) = engines.get(i) {
            take(
                i,
                engine.start(invitation.clone(), i as u16, keys.clone(), spec, now),
                &mut pending,
            );
        }
    }
    let Ok(session) = invitation.session_id() else {
        return engines
            .iter()
            .map(|_| Err(ProtocolError::Finished.into()))
            .collect();
    };
    for _ in 0..MAX_ROUNDS {
        let mut inboxes: Vec<Vec<_>> = engines.iter().map(|_| Vec::new()).collect();
        for progress in pending.drain(..) {
            for sealed in progress.outgoing {
                if let Some(inbox) = inboxes.get_mut(usize::from(sealed.to)) {
                    inbox.push(sealed);
                }
            }
        }
        let mut delivered = false;
        for (i, messages) in inboxes.into_iter().enumerate() {
            if messages.is_empty() {
                continue;
            }
            delivered = true;
            take(
                i,
                engines[i].receive(Relayed { session, messages }, now),
                &mut pending,
            );
        }
        if !delivered {
            break;
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(ProtocolError::Finished.into())))
        .collect()
}
