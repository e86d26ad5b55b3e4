//! Engines (one per node, each on its own thread) for the tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use strongroom_threshold::ThresholdError;
use strongroom_threshold::channel::ChannelSecret;
use strongroom_threshold::engine::{Engine, Outcome, PartySpec};
use strongroom_threshold::local::run_local;
use strongroom_threshold::session::Invitation;

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

/// Runs the session with session index `i` on `engines[nodes[i]]`.
pub fn run(
    engines: &[Engine],
    nodes: &[usize],
    invitation: &Invitation,
    specs: Vec<PartySpec>,
    now: u64,
) -> Vec<Result<Outcome, ThresholdError>> {
    let chosen: Vec<&Engine> = nodes.iter().map(|&i| &engines[i]).collect();
    run_local(&chosen, invitation, specs, now)
}
