//! The crypto floors, in process and single-threaded: what a signature costs with no HTTP,
//! no proxy and no enclave hop. A request's floor is the crypto the enclave cannot skip:
//! verifying the principal's request stamp, opening the sealed key blob, signing, and the
//! identity's signature of the answer.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use k256::ecdsa::SigningKey;
use serde::Serialize;
use strongroom_api::{Id, Route, SignKind};
use strongroom_auth::{Algorithm, PrincipalKey, Request, Stamp, request_digest};

/// Operations between clock reads, so reading the clock costs nothing measurable.
const BATCH: u64 = 16;
/// Distinct digests cycled through, so no run signs one digest over and over.
const DIGESTS: usize = 256;
/// Associated data as long as the enclave's sealed-object header.
const HEADER_LEN: usize = 26;
/// The sealed key's plaintext as the enclave lays it out: secret (32) ‖ created_at (8) ‖
/// label; a 6-byte label makes the whole blob (header, nonce, plaintext, tag) 100 bytes.
const LABEL: &[u8] = b"bench1";
/// A signing request's body as the benchmark sends it (`{"digest":"0x…"}`, 78 bytes).
const BODY_LEN: usize = 78;
/// A stamp expiry in the range real ones have.
const EXPIRES_AT: u64 = 1_800_000_000;

/// One measured operation.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    /// Operations completed.
    pub ops: u64,
    /// Measured time (after the warm-up), in seconds.
    pub seconds: f64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Mean time per operation, in microseconds.
    pub mean_us: f64,
}

/// Runs `op` for `warmup`, then counts how many complete in `duration`.
fn measure(warmup: Duration, duration: Duration, mut op: impl FnMut(u64)) -> Rate {
    let mut i = 0u64;
    let until = Instant::now() + warmup;
    while Instant::now() < until {
        for _ in 0..BATCH {
            op(i);
            i = i.wrapping_add(1);
        }
    }
    let start = Instant::now();
    let until = start + duration;
    let mut ops = 0u64;
    loop {
        for _ in 0..BATCH {
            op(i);
            i = i.wrapping_add(1);
        }
        ops += BATCH;
        if Instant::now() >= until {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Rate {
        ops,
        seconds,
        ops_per_sec: ops as f64 / seconds,
        mean_us: seconds * 1e6 / ops as f64,
    }
}

/// A key from the OS random source.
pub fn random_key() -> Result<SigningKey> {
    loop {
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).map_err(|_| anyhow!("OS random source failed"))?;
        // Out of range only with probability ~2^-128; draw again then.
        if let Ok(key) = SigningKey::from_slice(&secret) {
            return Ok(key);
        }
    }
}

fn random_digests() -> Result<Vec<[u8; 32]>> {
    let mut digests = vec![[0u8; 32]; DIGESTS];
    for d in &mut digests {
        aws_lc_rs::rand::fill(d).map_err(|_| anyhow!("OS random source failed"))?;
    }
    Ok(digests)
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow!("OS random source failed"))?;
    Ok(bytes)
}

/// A request like the benchmark's: `POST /v1/keys/<32 hex>/sign/digest`.
fn bench_route() -> Result<Route> {
    let id = Id::new("0123456789abcdef0123456789abcdef")?;
    Ok(Route::Sign(id, SignKind::Digest))
}

/// Stamps to verify: a fresh principal key of `algorithm` (never the benchmark's own, so
/// nothing valid against the server is made), and one valid signature per distinct
/// request digest, each digest over a request like the benchmark's with a fresh nonce.
struct Stamps {
    key: PrincipalKey,
    signed: Vec<([u8; 32], Vec<u8>)>,
}

impl Stamps {
    fn new(algorithm: Algorithm) -> Result<Self> {
        let signer = strongroom_auth::SigningKey::generate(algorithm)?;
        let key = signer.public();
        let route = bench_route()?;
        let (method, path) = (route.method(), route.path());
        let mut signed = Vec::with_capacity(DIGESTS);
        for _ in 0..DIGESTS {
            let body = random_bytes::<BODY_LEN>()?;
            let nonce = random_bytes::<16>()?;
            let digest = request_digest(method, &path, &body, key.id(), &nonce, EXPIRES_AT);
            let signature = signer.sign(&digest);
            // Checked here so the timed loop can treat failure as impossible.
            if !key.verify(&digest, &signature) {
                bail!("a fresh {algorithm} stamp signature does not verify");
            }
            signed.push((digest, signature));
        }
        Ok(Self { key, signed })
    }

    /// Verifies the `i`-th stamp as the enclave does.
    fn verify(&self, i: u64) -> bool {
        let (digest, signature) = &self.signed[i as usize % DIGESTS];
        self.key.verify(black_box(digest), black_box(signature))
    }
}

/// The enclave's stamp check alone: `PrincipalKey::verify` of a valid signature over a
/// request digest (for Ed25519, decoding the public key and a strict verification).
pub fn stamp_verify(warmup: Duration, duration: Duration, algorithm: Algorithm) -> Result<Rate> {
    let stamps = Stamps::new(algorithm)?;
    Ok(measure(warmup, duration, |i| {
        black_box(stamps.verify(i));
    }))
}

/// The client's side of a stamp, per request: the request digest, the signature and the
/// header text, for a body and path like the benchmark's.
pub fn stamp_sign(warmup: Duration, duration: Duration, algorithm: Algorithm) -> Result<Rate> {
    let signer = strongroom_auth::SigningKey::generate(algorithm)?;
    let bodies = (0..DIGESTS)
        .map(|_| random_bytes::<BODY_LEN>())
        .collect::<Result<Vec<_>>>()?;
    let nonce = random_bytes::<16>()?;
    let route = bench_route()?;
    let (method, path) = (route.method(), route.path());
    Ok(measure(warmup, duration, |i| {
        let request = Request {
            method,
            path: &path,
            body: black_box(&bodies[i as usize % DIGESTS]),
        };
        let stamp = Stamp::sign(&signer, request, nonce.to_vec(), EXPIRES_AT);
        black_box(stamp.to_header());
    }))
}

/// Raw k256 `sign_prehash_recoverable` of 32-byte digests.
pub fn raw_sign(warmup: Duration, duration: Duration) -> Result<Rate> {
    let key = random_key()?;
    let digests = random_digests()?;
    Ok(measure(warmup, duration, |i| {
        let digest = &digests[i as usize % DIGESTS];
        black_box(key.sign_prehash_recoverable(black_box(digest)));
    }))
}

/// The crypto a signing request cannot avoid: verifying its stamp (a principal key of
/// `algorithm`), AES-256-GCM open of a 100-byte sealed key blob, the signature, and the
/// enclave identity's Ed25519 signature over the answer (one SHA-256 of a short body and
/// the signature). With
/// `rebuild`, the key is also taken from the plaintext per request as the enclave does
/// (`SecretKey::from_slice`, then RFC 6979 signing on the bare scalar, with no public-key
/// derivation), so the report shows the enclave's own path.
pub fn sealed_sign(
    warmup: Duration,
    duration: Duration,
    rebuild: bool,
    algorithm: Algorithm,
) -> Result<Rate> {
    let stamps = Stamps::new(algorithm)?;
    let mut seal_key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut seal_key).map_err(|_| anyhow!("OS random source failed"))?;
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &seal_key).map_err(|_| anyhow!("AES-256-GCM key"))?,
    );
    let header = [0x5au8; HEADER_LEN];
    let nonce = [7u8; NONCE_LEN];
    let mut plaintext = random_key()?.to_bytes().to_vec();
    plaintext.extend_from_slice(&1_700_000_000u64.to_be_bytes());
    plaintext.extend_from_slice(LABEL);
    let mut sealed = plaintext;
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(&header),
        &mut sealed,
    )
    .map_err(|_| anyhow!("sealing the benchmark blob"))?;
    let digests = random_digests()?;
    let identity = strongroom_identity::IdentityKey::from_seed(&random_bytes::<32>()?);

    // Checked once outside the loop so the loop can treat failure as impossible.
    let mut check = sealed.clone();
    let opened = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&header),
            &mut check,
        )
        .map_err(|_| anyhow!("opening the benchmark blob"))?;
    let held = SigningKey::from_slice(&opened[..32]).context("the benchmark blob's key")?;

    let mut buffer = Vec::with_capacity(sealed.len());
    Ok(measure(warmup, duration, |i| {
        if !stamps.verify(i) {
            return;
        }
        // The enclave copies the blob out of the request before opening it in place.
        buffer.clear();
        buffer.extend_from_slice(black_box(&sealed));
        let Ok(opened) = key.open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&header),
            &mut buffer,
        ) else {
            return;
        };
        let digest = &digests[i as usize % DIGESTS];
        // The answer's signature: over the request digest, status, time, audit head and
        // the body's hash (the 100-byte sealed blob stands in for a digest answer's body).
        let head = strongroom_identity::Head {
            seq: i,
            hash: *digest,
        };
        let message = strongroom_identity::answer_message(digest, 200, EXPIRES_AT, &head, &sealed);
        black_box(identity.sign(black_box(&message)));
        if rebuild {
            let Ok(secret) = k256::SecretKey::from_slice(&opened[..32]) else {
                return;
            };
            black_box(ecdsa::hazmat::sign_prehashed_rfc6979::<
                k256::Secp256k1,
                sha2::Sha256,
            >(
                &secret.to_nonzero_scalar(), black_box(digest), b""
            ));
        } else {
            black_box(&*opened);
            black_box(held.sign_prehash_recoverable(black_box(digest)));
        }
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn floors_measure_something() {
        let short = Duration::from_millis(20);
        for rate in [
            raw_sign(short, short).unwrap(),
            stamp_verify(short, short, Algorithm::Ed25519).unwrap(),
            stamp_verify(short, short, Algorithm::EcdsaP256).unwrap(),
            stamp_sign(short, short, Algorithm::Ed25519).unwrap(),
            sealed_sign(short, short, false, Algorithm::Ed25519).unwrap(),
            sealed_sign(short, short, true, Algorithm::EcdsaP256).unwrap(),
        ] {
            assert!(rate.ops >= BATCH);
            assert!(rate.seconds >= short.as_secs_f64());
            assert!((rate.ops_per_sec * rate.mean_us / 1e6 - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn floor_stamps_verify_and_only_for_their_digest() {
        for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
            let stamps = Stamps::new(algorithm).unwrap();
            assert!((0..DIGESTS as u64).all(|i| stamps.verify(i)));
            let (digest, _) = &stamps.signed[0];
            let (_, other_signature) = &stamps.signed[1];
            assert!(!stamps.key.verify(digest, other_signature));
        }
    }
}
