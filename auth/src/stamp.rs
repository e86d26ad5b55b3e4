//! The stamp header: parsing (bounded, no panics), making, and verifying.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::digest::{bound_request_digest, request_digest};
use crate::keys::{PrincipalKey, SigningKey};
use crate::replay::{ReplayCache, ReplayRefusal};

/// Longest stamp header accepted.
pub const MAX_STAMP_LEN: usize = 1024;
/// Shortest nonce: 128 bits, so honest clients never collide.
pub const MIN_NONCE_LEN: usize = 16;
/// Longest nonce.
pub const MAX_NONCE_LEN: usize = 64;
/// Longest validity a stamp may claim; it bounds the replay cache's window.
pub const MAX_VALIDITY_SECS: u64 = 300;
/// Length of the nonce [`Stamp::make`] draws: 256 bits.
pub const STAMP_NONCE_LEN: usize = 32;

/// The request a stamp covers: exactly the bytes the enclave will act on.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Path (with query, if any), as sent.
    pub path: &'a str,
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// A parsed stamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The principal key that signed.
    pub key_id: String,
    /// A fresh random nonce.
    pub nonce: Vec<u8>,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// The deployment (genesis digest) the stamp is bound to, if any: an enclave of
    /// another deployment refuses it.
    pub deployment: Option<[u8; 32]>,
    /// Signature over the request digest.
    pub signature: Vec<u8>,
}

/// Why a stamp was refused. Each says what is wrong; none reveals key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StampError {
    /// No stamp came with the request.
    #[error("the request carries no stamp")]
    Missing,
    /// The header does not have the stamp syntax.
    #[error("malformed stamp: {0}")]
    Malformed(&'static str),
    /// The key id is not a principal key in the policy.
    #[error("stamp key {0} is not a principal key")]
    UnknownKey(String),
    /// The stamp expired.
    #[error("stamp expired at {expires_at}, now {now}")]
    Expired {
        /// Its expiry.
        expires_at: u64,
        /// The enclave's time.
        now: u64,
    },
    /// The stamp claims a validity longer than allowed.
    #[error("stamp expires at {expires_at}, more than {MAX_VALIDITY_SECS} s after now ({now})")]
    TooLong {
        /// Its expiry.
        expires_at: u64,
        /// The enclave's time.
        now: u64,
    },
    /// The signature does not cover this request under this key.
    #[error("stamp signature does not match the request")]
    BadSignature,
    /// The nonce was used before.
    #[error("stamp nonce was already used (replay)")]
    Replayed,
    /// Too many live stamps to remember another.
    #[error("too many requests in the replay window; try again shortly")]
    ReplayCacheFull,
    /// The stamp is bound to another deployment than the enclave's.
    #[error("the stamp is for the deployment with genesis digest {named}, not this one ({this})")]
    OtherDeployment {
        /// The genesis digest the stamp names (hex).
        named: String,
        /// This enclave's genesis digest (hex).
        this: String,
    },
}

impl Stamp {
    /// Parses `v1;key=…;nonce=…;expires=…[;deployment=…];sig=…` (fields in this order).
    pub fn parse(header: &str) -> Result<Self, StampError> {
        if header.len() > MAX_STAMP_LEN {
            return Err(StampError::Malformed("longer than 1024 bytes"));
        }
        let mut parts = header.split(';');
        if parts.next() != Some("v1") {
            return Err(StampError::Malformed("unknown version; expected v1"));
        }
        let mut field = |name: &'static str| {
            parts
                .next()
                .and_then(|p| p.strip_prefix(name))
                .and_then(|p| p.strip_prefix('='))
                .ok_or(StampError::Malformed(name))
        };
        let key_id = field("key")?;
        let nonce = field("nonce")?;
        let expires = field("expires")?;
        let mut next = parts.next().ok_or(StampError::Malformed("sig"))?;
        let deployment = match next.strip_prefix("deployment=") {
            Some(hex_text) => {
                let mut out = [0u8; 32];
                hex::decode_to_slice(hex_text, &mut out)
                    .map_err(|_| StampError::Malformed("deployment must be 64 hex digits"))?;
                next = parts.next().ok_or(StampError::Malformed("sig"))?;
                Some(out)
            }
            None => None,
        };
        let sig = next
            .strip_prefix("sig=")
            .ok_or(StampError::Malformed("sig"))?;
        if parts.next().is_some() {
            return Err(StampError::Malformed("trailing fields"));
        }
        if key_id.is_empty()
            || key_id.len() > 64
            || !key_id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(StampError::Malformed("key id must be lower-case hex"));
        }
        let nonce = hex::decode(nonce).map_err(|_| StampError::Malformed("nonce is not hex"))?;
        if nonce.len() < MIN_NONCE_LEN || nonce.len() > MAX_NONCE_LEN {
            return Err(StampError::Malformed("nonce must be 16 to 64 bytes"));
        }
        if expires.is_empty() || expires.len() > 20 || !expires.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(StampError::Malformed("expires must be decimal seconds"));
        }
        let expires_at = expires
            .parse()
            .map_err(|_| StampError::Malformed("expires out of range"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| StampError::Malformed("sig is not base64url"))?;
        if signature.len() != 64 {
            return Err(StampError::Malformed("sig must be 64 bytes"));
        }
        Ok(Self {
            key_id: key_id.to_string(),
            nonce,
            expires_at,
            deployment,
            signature,
        })
    }

    /// The header text.
    pub fn to_header(&self) -> String {
        let deployment = self
            .deployment
            .map(|d| format!(";deployment={}", hex::encode(d)))
            .unwrap_or_default();
        format!(
            "v1;key={};nonce={};expires={}{deployment};sig={}",
            self.key_id,
            hex::encode(&self.nonce),
            self.expires_at,
            URL_SAFE_NO_PAD.encode(&self.signature)
        )
    }

    /// The digest this stamp's signature covers for `request`.
    fn digest(&self, request: Request<'_>) -> [u8; 32] {
        let (m, p, b) = (request.method, request.path, request.body);
        match &self.deployment {
            Some(d) => bound_request_digest(m, p, b, &self.key_id, &self.nonce, self.expires_at, d),
            None => request_digest(m, p, b, &self.key_id, &self.nonce, self.expires_at),
        }
    }

    /// Makes a stamp for `request` with `key`, a caller-chosen fresh `nonce` and expiry.
    pub fn sign(key: &SigningKey, request: Request<'_>, nonce: Vec<u8>, expires_at: u64) -> Self {
        Self::sign_for(key, request, nonce, expires_at, None)
    }

    /// A stamp header for `request` with `key`: a fresh random nonce of
    /// [`STAMP_NONCE_LEN`] bytes, expiring `validity` seconds after `now`, bound to the
    /// deployment with genesis digest `deployment` when given. The one way clients, the
    /// proxy's bearer tokens and the benchmark make stamps.
    pub fn make(
        key: &SigningKey,
        request: Request<'_>,
        now: u64,
        validity: u64,
        deployment: Option<[u8; 32]>,
    ) -> Result<String, crate::RandomnessError> {
        let mut nonce = vec![0u8; STAMP_NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| crate::RandomnessError::new(e.to_string()))?;
        Ok(Self::sign_for(
            key,
            request,
            nonce,
            now.saturating_add(validity),
            deployment,
        )
        .to_header())
    }

    /// [`Stamp::sign`], bound to the deployment with genesis digest `deployment` when
    /// given: no enclave of another deployment accepts it.
    pub fn sign_for(
        key: &SigningKey,
        request: Request<'_>,
        nonce: Vec<u8>,
        expires_at: u64,
        deployment: Option<[u8; 32]>,
    ) -> Self {
        let mut stamp = Self {
            key_id: key.public().id().to_string(),
            nonce,
            expires_at,
            deployment,
            signature: Vec::new(),
        };
        stamp.signature = key.sign(&stamp.digest(request));
        stamp
    }
}

/// A stamp whose signature, key and validity window have been checked, but whose nonce has
/// not yet been recorded: call [`Authenticated::consume`] before acting on the request.
#[derive(Debug)]
#[must_use = "the nonce must be consumed before acting on the request"]
pub struct Authenticated<'k> {
    /// The principal key that signed.
    pub key: &'k PrincipalKey,
    /// The stamp's nonce.
    pub nonce: Vec<u8>,
    /// The stamp's expiry.
    pub expires_at: u64,
}

impl<'k> Authenticated<'k> {
    /// Records the nonce, refusing a replay; only then is the stamp good for one request.
    pub fn consume(
        self,
        cache: &mut ReplayCache,
        now: u64,
    ) -> Result<&'k PrincipalKey, StampError> {
        cache
            .check_and_insert(self.key.id(), &self.nonce, self.expires_at, now)
            .map_err(|r| match r {
                ReplayRefusal::Replayed => StampError::Replayed,
                ReplayRefusal::Full => StampError::ReplayCacheFull,
            })?;
        Ok(self.key)
    }
}

/// Checks a stamp header for `request` at time `now`: syntax, known key, validity window and
/// signature. The expensive part, so callers can run it without holding the replay cache.
pub fn authenticate<'k>(
    header: Option<&str>,
    request: Request<'_>,
    lookup: impl Fn(&str) -> Option<&'k PrincipalKey>,
    now: u64,
) -> Result<Authenticated<'k>, StampError> {
    authenticate_for(header, request, lookup, now, None)
}

/// [`authenticate`] by the deployment whose genesis digest is `deployment`: a stamp bound
/// to another deployment is refused (an unbound stamp is accepted).
pub fn authenticate_for<'k>(
    header: Option<&str>,
    request: Request<'_>,
    lookup: impl Fn(&str) -> Option<&'k PrincipalKey>,
    now: u64,
    deployment: Option<&[u8; 32]>,
) -> Result<Authenticated<'k>, StampError> {
    let stamp = Stamp::parse(header.ok_or(StampError::Missing)?)?;
    if let (Some(named), Some(this)) = (&stamp.deployment, deployment)
        && named != this
    {
        return Err(StampError::OtherDeployment {
            named: hex::encode(named),
            this: hex::encode(this),
        });
    }
    let key = lookup(&stamp.key_id).ok_or_else(|| StampError::UnknownKey(stamp.key_id.clone()))?;
    if stamp.expires_at < now {
        return Err(StampError::Expired {
            expires_at: stamp.expires_at,
            now,
        });
    }
    if stamp.expires_at > now.saturating_add(MAX_VALIDITY_SECS) {
        return Err(StampError::TooLong {
            expires_at: stamp.expires_at,
            now,
        });
    }
    if !key.verify(&stamp.digest(request), &stamp.signature) {
        return Err(StampError::BadSignature);
    }
    Ok(Authenticated {
        key,
        nonce: stamp.nonce,
        expires_at: stamp.expires_at,
    })
}

/// Verifies a stamp header for `request` at time `now`: syntax, known key, validity window,
/// signature, then the nonce (recorded only once everything else holds, so a forged stamp
/// cannot burn a real client's nonce). Returns the principal key that signed.
pub fn verify<'k>(
    header: Option<&str>,
    request: Request<'_>,
    lookup: impl Fn(&str) -> Option<&'k PrincipalKey>,
    cache: &mut ReplayCache,
    now: u64,
) -> Result<&'k PrincipalKey, StampError> {
    authenticate(header, request, lookup, now)?.consume(cache, now)
}
