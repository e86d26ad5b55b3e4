//! Signed answers: the enclave signs every answer to a call, so the parent instance that
//! relays it cannot change a signature, turn a denial into an approval or answer for the
//! enclave.
//!
//! The signature travels in the `X-Strongroom-Answer` header:
//! `v2;identity=<64 hex>;time=<unix seconds>;head=<seq>:<64 hex>;sig=<128 hex>`, over
//! [`answer_message`]`(request digest, status, time, head, body)`, where the request digest
//! ([`answer_request_digest`]) covers the method, path with query, body and stamp header
//! the client sent, and `head` is the audit chain's head when the enclave answered (the
//! sequence number and hash of its last record): a client that remembers the highest head
//! it verified refuses an enclave that was rolled back to before it. A stamp's nonce is
//! used once, so an answer to a stamped request cannot be replayed as the answer to
//! another one.

use sha2::{Digest, Sha256};

use crate::error::IdentityError;
use crate::key::{IdentityKey, IdentityPublic};

/// Domain tag of [`answer_request_digest`].
pub const ANSWER_REQUEST_DOMAIN: &[u8] = b"strongroom/v1/answer-request";
/// Domain tag of [`answer_message`] (v2: with the audit head).
pub const ANSWER_DOMAIN: &[u8] = b"strongroom/v2/answer";

/// A point of the audit chain: an entry's sequence number and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Head {
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's hash.
    pub hash: [u8; 32],
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, hex::encode(self.hash))
    }
}

impl Head {
    /// Parses `<seq>:<64 hex>`.
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        const WHAT: &str = "audit head";
        let (seq, hash) = text
            .split_once(':')
            .ok_or_else(|| IdentityError::malformed(WHAT, "expected SEQ:HASH"))?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentityError::malformed(
                WHAT,
                "seq is not a decimal number",
            ));
        }
        let seq = seq
            .parse()
            .map_err(|_| IdentityError::malformed(WHAT, "seq out of range"))?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(hash, &mut out)
            .map_err(|_| IdentityError::malformed(WHAT, "hash is not 64 hex digits"))?;
        Ok(Self { seq, hash: out })
    }
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// SHA-256(len‖domain ‖ len‖method ‖ len‖path ‖ len‖SHA-256(body) ‖ len‖stamp), each
/// length a u64 big-endian; an absent stamp is the empty string. `path` includes the query
/// string exactly as sent.
pub fn answer_request_digest(
    method: &str,
    path: &str,
    body: &[u8],
    stamp: Option<&str>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    field(&mut h, ANSWER_REQUEST_DOMAIN);
    field(&mut h, method.as_bytes());
    field(&mut h, path.as_bytes());
    field(&mut h, &Sha256::digest(body));
    field(&mut h, stamp.unwrap_or_default().as_bytes());
    h.finalize().into()
}

/// SHA-256(len‖domain ‖ request digest ‖ status u16 BE ‖ time u64 BE ‖ head seq u64 BE ‖
/// head hash ‖ SHA-256(body)): what the identity key signs for an answer.
pub fn answer_message(
    request_digest: &[u8; 32],
    status: u16,
    time: u64,
    head: &Head,
    body: &[u8],
) -> [u8; 32] {
    let mut h = Sha256::new();
    field(&mut h, ANSWER_DOMAIN);
    h.update(request_digest);
    h.update(status.to_be_bytes());
    h.update(time.to_be_bytes());
    h.update(head.seq.to_be_bytes());
    h.update(head.hash);
    h.update(Sha256::digest(body));
    h.finalize().into()
}

/// An answer's signature, as carried in the `X-Strongroom-Answer` header
/// (`strongroom_api::ANSWER_HEADER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerSignature {
    /// The identity that signed (its attestation document says which enclave it is).
    pub identity: IdentityPublic,
    /// The enclave's clock when it signed, Unix seconds.
    pub time: u64,
    /// The audit chain's head when it answered.
    pub head: Head,
    /// Ed25519 signature over [`answer_message`].
    pub signature: [u8; 64],
}

impl AnswerSignature {
    /// Signs an answer.
    pub fn sign(
        key: &IdentityKey,
        request_digest: &[u8; 32],
        status: u16,
        time: u64,
        head: Head,
        body: &[u8],
    ) -> Self {
        Self {
            identity: key.public(),
            time,
            head,
            signature: key.sign(&answer_message(request_digest, status, time, &head, body)),
        }
    }

    /// Checks the signature over this status and body for the request with this digest.
    /// Which identities to trust is the caller's decision (see the client library).
    pub fn verify(
        &self,
        request_digest: &[u8; 32],
        status: u16,
        body: &[u8],
    ) -> Result<(), IdentityError> {
        let message = answer_message(request_digest, status, self.time, &self.head, body);
        self.identity.verify("answer", &message, &self.signature)
    }

    /// The header value.
    pub fn to_header(&self) -> String {
        format!(
            "v2;identity={};time={};head={};sig={}",
            self.identity,
            self.time,
            self.head,
            hex::encode(self.signature)
        )
    }

    /// Parses a header value: exactly `v2;identity=…;time=…;head=…;sig=…`, in that order.
    pub fn parse(header: &str) -> Result<Self, IdentityError> {
        const WHAT: &str = "answer signature header";
        if header.len() > 512 {
            return Err(IdentityError::TooLarge {
                what: WHAT,
                len: header.len(),
                max: 512,
            });
        }
        let mut parts = header.split(';');
        match parts.next() {
            Some("v2") => {}
            Some("v1") => {
                return Err(IdentityError::malformed(
                    WHAT,
                    "version v1 (an enclave older than this client, whose answers name no \
                     audit head); upgrade the enclave",
                ));
            }
            _ => return Err(IdentityError::malformed(WHAT, "version is not v2")),
        }
        let mut value = |name: &str| {
            parts
                .next()
                .and_then(|p| p.strip_prefix(name))
                .and_then(|p| p.strip_prefix('='))
                .ok_or_else(|| IdentityError::malformed(WHAT, format!("expected {name}=")))
        };
        let identity = IdentityPublic::from_hex(value("identity")?)?;
        let time_text = value("time")?;
        if time_text.is_empty() || !time_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentityError::malformed(
                WHAT,
                "time is not a decimal number",
            ));
        }
        let time = time_text
            .parse()
            .map_err(|_| IdentityError::malformed(WHAT, "time out of range"))?;
        let head = Head::parse(value("head")?)?;
        let sig = hex::decode(value("sig")?)
            .map_err(|_| IdentityError::malformed(WHAT, "sig is not hex"))?;
        let signature: [u8; 64] = sig
            .try_into()
            .map_err(|_| IdentityError::malformed(WHAT, "sig is not 64 bytes"))?;
        if parts.next().is_some() {
            return Err(IdentityError::malformed(WHAT, "trailing fields"));
        }
        Ok(Self {
            identity,
            time,
            head,
            signature,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEAD: Head = Head {
        seq: 41,
        hash: [0xab; 32],
    };

    fn signed() -> (AnswerSignature, [u8; 32]) {
        let key = IdentityKey::from_seed(&[3; 32]);
        let digest = answer_request_digest("POST", "/v1/keys/ab/sign/digest", b"{}", Some("v1;x"));
        (
            AnswerSignature::sign(&key, &digest, 200, 1_700_000_000, HEAD, b"{\"ok\":1}"),
            digest,
        )
    }

    #[test]
    fn round_trips_through_the_header() {
        let (sig, digest) = signed();
        let parsed = AnswerSignature::parse(&sig.to_header()).unwrap();
        assert_eq!(parsed, sig);
        parsed.verify(&digest, 200, b"{\"ok\":1}").unwrap();
    }

    #[test]
    fn a_changed_status_body_or_request_is_refused() {
        let (sig, digest) = signed();
        assert!(sig.verify(&digest, 403, b"{\"ok\":1}").is_err());
        assert!(sig.verify(&digest, 200, b"{\"ok\":2}").is_err());
        let other = answer_request_digest("POST", "/v1/keys/ab/sign/digest", b"{}", Some("v1;y"));
        assert!(sig.verify(&other, 200, b"{\"ok\":1}").is_err());
        let mut later = sig;
        later.time += 1;
        assert!(later.verify(&digest, 200, b"{\"ok\":1}").is_err());
        // The head is covered: a parent cannot pass an old answer off as newer.
        let mut moved = sig;
        moved.head.seq += 1;
        assert!(moved.verify(&digest, 200, b"{\"ok\":1}").is_err());
        let mut forked = sig;
        forked.head.hash[0] ^= 1;
        assert!(forked.verify(&digest, 200, b"{\"ok\":1}").is_err());
    }

    #[test]
    fn another_identity_cannot_claim_the_signature() {
        let (mut sig, digest) = signed();
        sig.identity = IdentityKey::from_seed(&[4; 32]).public();
        assert!(matches!(
            sig.verify(&digest, 200, b"{\"ok\":1}"),
            Err(IdentityError::BadSignature { .. })
        ));
    }

    #[test]
    fn request_digest_fields_are_separated() {
        let a = answer_request_digest("POST", "/a", b"", None);
        assert_ne!(a, answer_request_digest("POS", "T/a", b"", None));
        assert_ne!(a, answer_request_digest("POST", "/a", b"", Some("s")));
        assert_eq!(a, answer_request_digest("POST", "/a", b"", Some("")));
    }

    #[test]
    fn known_answer() {
        // Recomputed independently in tests/interop/identity_vectors.py (hashlib framing).
        let d = answer_request_digest("GET", "/v1/policy", b"", None);
        let m = answer_message(&d, 200, 1_700_000_000, &HEAD, b"{}");
        let expected = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/answer_vectors.txt"
        ))
        .unwrap();
        let got = format!(
            "request_digest={}\nanswer_message={}\n",
            hex::encode(d),
            hex::encode(m)
        );
        assert_eq!(got, expected);
    }

    #[test]
    fn malformed_headers_are_refused() {
        let (sig, _) = signed();
        let good = sig.to_header();
        for bad in [
            "",
            "v2;identity=00;time=1;sig=00",
            &good.replacen("v2;", "v1;", 1),
            &good.replace(";head=41:", ";head=-41:"),
            &good.replace(";head=41:", ";head=41;"),
            &good.replace(&"ab".repeat(32), &"ab".repeat(31)),
            &good.replace("time=", "tim="),
            &good.replace(";sig=", ";sig=0"),
            &format!("{good};extra=1"),
            &good.replace("time=1700000000", "time=+1700000000"),
        ] {
            assert!(AnswerSignature::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = AnswerSignature::parse(&s);
        }
    }
}
