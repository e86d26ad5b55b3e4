//! Runs the auxiliary-information protocol among three in-process engines from the primes
//! in `tests/data/primes.hex` and prints each node's result (CBOR, hex, one line each):
//! `cargo run --release -p strongroom-threshold --example aux`. The fixture
//! `tests/data/aux.hex` was made with it, so that whole-system tests that sign with
//! CGGMP24 need not run the protocol again (the crate's own tests do).

use std::time::Instant;

use strongroom_threshold::channel::ChannelSecret;
use strongroom_threshold::engine::{Engine, Outcome, PartySpec};
use strongroom_threshold::local::run_local;
use strongroom_threshold::session::{Invitation, SessionKind};
use zeroize::Zeroizing;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let primes: Vec<Zeroizing<Vec<u8>>> = include_str!("../tests/data/primes.hex")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| hex::decode(l).map(Zeroizing::new))
        .collect::<Result<_, _>>()?;
    let engines: Vec<Engine> = (0..3)
        .map(|_| Engine::spawn(ChannelSecret::generate()?))
        .collect::<Result<_, _>>()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let invitation = Invitation {
        genesis: [0; 32],
        kind: SessionKind::AuxInfo,
        participants: vec![[1; 16], [2; 16], [3; 16]],
        request: None,
        nonce: [0; 32],
        issued_at: now,
    };
    let started = Instant::now();
    let chosen: Vec<&Engine> = engines.iter().collect();
    let specs = primes
        .into_iter()
        .map(|primes| PartySpec::AuxInfo { primes })
        .collect();
    for outcome in run_local(&chosen, &invitation, specs, now) {
        match outcome? {
            Outcome::AuxInfo(aux) => println!("{}", hex::encode(&*aux)),
            other => return Err(format!("unexpected outcome {other:?}").into()),
        }
    }
    eprintln!(
        "auxiliary information for three nodes in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
