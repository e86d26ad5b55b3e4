//! The canonical digest a stamp signs.

use sha2::{Digest, Sha256};

/// Domain tag, so a stamp signature can never be mistaken for a signature of anything else.
pub const STAMP_DOMAIN: &[u8] = b"strongroom/v1/request-stamp";
/// Domain tag of a stamp bound to one deployment (its genesis digest).
pub const BOUND_STAMP_DOMAIN: &[u8] = b"strongroom/v1/request-stamp-bound";

/// The path a stamp covers: the request line's path and query exactly as sent (a proxy
/// mount point in front included), `path?query` when there is a query.
pub fn wire_path(path: &str, query: Option<&str>) -> String {
    match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    }
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// SHA-256(len‖domain ‖ len‖method ‖ len‖path ‖ len‖SHA-256(body) ‖ len‖key id ‖
/// len‖nonce ‖ expires), each length and `expires` a u64 big-endian.
pub fn request_digest(
    method: &str,
    path: &str,
    body: &[u8],
    key_id: &str,
    nonce: &[u8],
    expires_at: u64,
) -> [u8; 32] {
    digest(STAMP_DOMAIN, method, path, body, key_id, nonce, expires_at)
        .finalize()
        .into()
}

/// [`request_digest`] for a stamp bound to the deployment whose genesis digest is
/// `deployment`: the bound domain tag, and len‖deployment after `expires`.
pub fn bound_request_digest(
    method: &str,
    path: &str,
    body: &[u8],
    key_id: &str,
    nonce: &[u8],
    expires_at: u64,
    deployment: &[u8; 32],
) -> [u8; 32] {
    let mut h = digest(
        BOUND_STAMP_DOMAIN,
        method,
        path,
        body,
        key_id,
        nonce,
        expires_at,
    );
    field(&mut h, deployment);
    h.finalize().into()
}

fn digest(
    domain: &[u8],
    method: &str,
    path: &str,
    body: &[u8],
    key_id: &str,
    nonce: &[u8],
    expires_at: u64,
) -> Sha256 {
    let mut h = Sha256::new();
    field(&mut h, domain);
    field(&mut h, method.as_bytes());
    field(&mut h, path.as_bytes());
    field(&mut h, &Sha256::digest(body));
    field(&mut h, key_id.as_bytes());
    field(&mut h, nonce);
    h.update(expires_at.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_path_keeps_the_query_as_sent() {
        assert_eq!(
            wire_path("/p/v1/requests", Some("x=a%20b")),
            "/p/v1/requests?x=a%20b"
        );
        assert_eq!(wire_path("/v1/keys", Some("")), "/v1/keys?");
        assert_eq!(wire_path("/v1/keys", None), "/v1/keys");
    }

    #[test]
    fn every_field_changes_the_digest() {
        let base = request_digest("POST", "/v1/keys", b"{}", "k", &[1; 16], 100);
        for other in [
            request_digest("GET", "/v1/keys", b"{}", "k", &[1; 16], 100),
            request_digest("POST", "/v1/keys/", b"{}", "k", &[1; 16], 100),
            request_digest("POST", "/v1/keys", b"{ }", "k", &[1; 16], 100),
            request_digest("POST", "/v1/keys", b"{}", "j", &[1; 16], 100),
            request_digest("POST", "/v1/keys", b"{}", "k", &[2; 16], 100),
            request_digest("POST", "/v1/keys", b"{}", "k", &[1; 16], 101),
            // Moving a byte between fields changes it too (length prefixes).
            request_digest("POS", "T/v1/keys", b"{}", "k", &[1; 16], 100),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn known_answer() {
        // Computed independently with Python's hashlib and struct.pack('>Q', …) framing.
        let d = request_digest(
            "POST",
            "/v1/keys",
            b"{\"label\":\"a\"}",
            "kid",
            &[0; 16],
            1_700_000_000,
        );
        assert_eq!(hex::encode(d), KAT);
    }

    const KAT: &str = "05be73463244d1adefab2250a3501920734f4660699d4e0fb1f4fccebb3a3023";

    #[test]
    fn a_bound_stamp_signs_another_digest_for_each_deployment() {
        let unbound = request_digest("POST", "/v1/keys", b"{}", "k", &[1; 16], 100);
        let a = bound_request_digest("POST", "/v1/keys", b"{}", "k", &[1; 16], 100, &[1; 32]);
        let b = bound_request_digest("POST", "/v1/keys", b"{}", "k", &[1; 16], 100, &[2; 32]);
        assert_ne!(a, unbound);
        assert_ne!(a, b);
        // python3 -c "import hashlib,struct;f=lambda b:struct.pack('>Q',len(b))+b;
        //   print(hashlib.sha256(f(b'strongroom/v1/request-stamp-bound')+f(b'POST')
        //   +f(b'/v1/keys')+f(hashlib.sha256(b'{\"label\":\"a\"}').digest())+f(b'kid')
        //   +f(bytes(16))+struct.pack('>Q',1700000000)+f(bytes([0xab])*32)).hexdigest())"
        let d = bound_request_digest(
            "POST",
            "/v1/keys",
            b"{\"label\":\"a\"}",
            "kid",
            &[0; 16],
            1_700_000_000,
            &[0xab; 32],
        );
        assert_eq!(hex::encode(d), BOUND_KAT);
    }

    const BOUND_KAT: &str = "56adefc4b52361b5358fa6f6dc24c61778af9c50272be80e1243ced010b8ed3e";
}
