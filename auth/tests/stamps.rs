//! Stamps as the enclave will check them: each attack refused with its own reason.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use strongroom_auth::{
    Algorithm, PrincipalKey, ReplayCache, Request, SigningKey, Stamp, StampError, verify,
};

const NOW: u64 = 1_800_000_000;

fn request(body: &[u8]) -> Request<'_> {
    Request {
        method: "POST",
        path: "/v1/keys",
        body,
    }
}

fn keys() -> Vec<SigningKey> {
    vec![
        SigningKey::ed25519_from_seed(&[1; 32]),
        SigningKey::p256_from_bytes(&[2; 32]).unwrap(),
    ]
}

fn check(
    header: Option<&str>,
    req: Request<'_>,
    known: &[PrincipalKey],
    cache: &mut ReplayCache,
    now: u64,
) -> Result<String, StampError> {
    verify(
        header,
        req,
        |id| known.iter().find(|k| k.id() == id),
        cache,
        now,
    )
    .map(|k| k.id().to_string())
}

#[test]
fn both_algorithms_verify_and_every_attack_is_refused() {
    for key in keys() {
        let known = vec![key.public()];
        let mut cache = ReplayCache::new(1000);
        let body = br#"{"label":"treasury"}"#;
        let stamp = Stamp::sign(&key, request(body), vec![7; 16], NOW + 60).to_header();
        assert_eq!(
            check(Some(&stamp), request(body), &known, &mut cache, NOW),
            Ok(key.public().id().to_string())
        );
        // Replayed nonce.
        assert_eq!(
            check(Some(&stamp), request(body), &known, &mut cache, NOW + 1),
            Err(StampError::Replayed)
        );
        let fresh = |nonce: u8, expires: u64| {
            Stamp::sign(&key, request(body), vec![nonce; 16], expires).to_header()
        };
        // No stamp.
        assert_eq!(
            check(None, request(body), &known, &mut cache, NOW),
            Err(StampError::Missing)
        );
        // Tampered body, path, method.
        let s = fresh(8, NOW + 60);
        assert_eq!(
            check(
                Some(&s),
                request(br#"{"label":"treasurx"}"#),
                &known,
                &mut cache,
                NOW
            ),
            Err(StampError::BadSignature)
        );
        let other_path = Request {
            path: "/v1/keys/x",
            ..request(body)
        };
        assert_eq!(
            check(Some(&s), other_path, &known, &mut cache, NOW),
            Err(StampError::BadSignature)
        );
        // A refused stamp did not burn its nonce: the genuine request still passes.
        assert!(check(Some(&s), request(body), &known, &mut cache, NOW).is_ok());
        // Expired, and too long-lived.
        let old = fresh(9, NOW - 1);
        assert!(matches!(
            check(Some(&old), request(body), &known, &mut cache, NOW),
            Err(StampError::Expired { .. })
        ));
        let long = fresh(10, NOW + 301);
        assert!(matches!(
            check(Some(&long), request(body), &known, &mut cache, NOW),
            Err(StampError::TooLong { .. })
        ));
        // Unknown key: a stamp by a key the policy does not list.
        let stranger = SigningKey::ed25519_from_seed(&[9; 32]);
        let forged = Stamp::sign(&stranger, request(body), vec![11; 16], NOW + 60).to_header();
        assert!(matches!(
            check(Some(&forged), request(body), &known, &mut cache, NOW),
            Err(StampError::UnknownKey(_))
        ));
        // A stranger's signature under the principal's key id.
        let mut relabelled = Stamp::parse(&forged).unwrap();
        relabelled.key_id = key.public().id().to_string();
        assert_eq!(
            check(
                Some(&relabelled.to_header()),
                request(body),
                &known,
                &mut cache,
                NOW
            ),
            Err(StampError::BadSignature)
        );
    }
}

#[test]
fn a_stamp_bound_to_a_deployment_is_refused_by_any_other() {
    use strongroom_auth::authenticate_for;
    let key = SigningKey::ed25519_from_seed(&[1; 32]);
    let known = [key.public()];
    let lookup = |id: &str| known.iter().find(|k| k.id() == id);
    let body = br#"{"label":"treasury"}"#;
    let ours = [0x11; 32];
    let bound = Stamp::sign_for(&key, request(body), vec![7; 16], NOW + 60, Some(ours));
    let header = bound.to_header();
    assert!(header.contains(&format!(";deployment={};sig=", "11".repeat(32))));
    assert_eq!(Stamp::parse(&header).unwrap(), bound);
    // Its own deployment, or a verifier that knows none, accepts it.
    assert!(authenticate_for(Some(&header), request(body), lookup, NOW, Some(&ours)).is_ok());
    assert!(authenticate_for(Some(&header), request(body), lookup, NOW, None).is_ok());
    // Another deployment refuses it, naming both.
    let e =
        authenticate_for(Some(&header), request(body), lookup, NOW, Some(&[0x22; 32])).unwrap_err();
    assert_eq!(
        e,
        StampError::OtherDeployment {
            named: "11".repeat(32),
            this: "22".repeat(32)
        }
    );
    // The binding is signed: dropping it, or naming another deployment, breaks the signature.
    let mut unbound = bound.clone();
    unbound.deployment = None;
    let mut moved = bound.clone();
    moved.deployment = Some([0x22; 32]);
    for forged in [unbound, moved] {
        assert_eq!(
            authenticate_for(
                Some(&forged.to_header()),
                request(body),
                lookup,
                NOW,
                Some(&[0x22; 32])
            )
            .unwrap_err(),
            StampError::BadSignature
        );
    }
    // An unbound stamp still works anywhere (clients that pin nothing).
    let plain = Stamp::sign(&key, request(body), vec![8; 16], NOW + 60).to_header();
    assert!(authenticate_for(Some(&plain), request(body), lookup, NOW, Some(&ours)).is_ok());
    for bad in [
        header.replace(";deployment=", ";deployment=zz"),
        header.replace(";deployment=", ";deploy="),
        header.replace(
            &format!(";sig={}", &header[header.find(";sig=").unwrap() + 5..]),
            "",
        ),
    ] {
        assert!(Stamp::parse(&bad).is_err(), "{bad}");
    }
}

#[test]
fn key_ids_are_stable_and_distinct() {
    let ed = SigningKey::ed25519_from_seed(&[1; 32]).public();
    let again = PrincipalKey::new(Algorithm::Ed25519, ed.public_bytes()).unwrap();
    assert_eq!(ed.id(), again.id());
    let p = SigningKey::p256_from_bytes(&[2; 32]).unwrap().public();
    assert_ne!(ed.id(), p.id());
    assert!(PrincipalKey::new(Algorithm::Ed25519, &[0; 31]).is_err());
    assert!(PrincipalKey::new(Algorithm::EcdsaP256, &[4; 65]).is_err());
}

#[test]
fn malformed_headers_have_clear_errors() {
    for bad in [
        "",
        "v2;key=aa;nonce=00;expires=1;sig=AA",
        "v1;nonce=00;key=aa;expires=1;sig=AA",
        "v1;key=AA;nonce=00000000000000000000000000000000;expires=1;sig=AA",
        "v1;key=aa;nonce=00;expires=1;sig=AA",
        "v1;key=aa;nonce=00000000000000000000000000000000;expires=-1;sig=AA",
        "v1;key=aa;nonce=00000000000000000000000000000000;expires=1;sig=AA",
        "v1;key=aa;nonce=00000000000000000000000000000000;expires=1;sig=AA;x=1",
    ] {
        assert!(
            matches!(Stamp::parse(bad), Err(StampError::Malformed(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        Stamp::parse(&"v".repeat(2000)),
        Err(StampError::Malformed(_))
    ));
}

proptest! {
    #[test]
    fn parsing_never_panics(s in ".{0,1200}") {
        let _ = Stamp::parse(&s);
    }

    #[test]
    fn stamps_round_trip(nonce in proptest::collection::vec(any::<u8>(), 16..=64), expires in any::<u64>(), body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let key = SigningKey::ed25519_from_seed(&[3; 32]);
        let stamp = Stamp::sign(&key, request(&body), nonce, expires);
        prop_assert_eq!(Stamp::parse(&stamp.to_header()).unwrap(), stamp);
    }
}
