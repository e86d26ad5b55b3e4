//! Generates one node's safe primes and prints them (CBOR, hex) with the time it took:
//! `cargo run --release -p strongroom-threshold --example primes`. The test fixtures in
//! `tests/data/` were made with it; a deployment's nodes make their own at first boot.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let primes = strongroom_threshold::ecdsa::Primes::generate();
    let elapsed = started.elapsed();
    println!("{}", hex::encode(&*primes.to_bytes()?));
    eprintln!(
        "four 1536-bit safe primes in {:.1} s",
        elapsed.as_secs_f64()
    );
    Ok(())
}
