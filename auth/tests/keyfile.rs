//! Key files: our PEM round-trips, OpenSSL's keys load with the public key OpenSSL reports,
//! OpenSSL reads ours, and bad text is refused without being quoted back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use strongroom_auth::{Algorithm, KeyFileError, PrincipalKey, SigningKey};

const ALGORITHMS: [Algorithm; 2] = [Algorithm::Ed25519, Algorithm::EcdsaP256];

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "strongroom-auth-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs openssl, returning stdout; None if openssl is not installed.
fn openssl(args: &[&str]) -> Option<Vec<u8>> {
    let out = match Command::new("openssl").args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("openssl: {e}"),
    };
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

fn have_openssl() -> bool {
    let found = openssl(&["version"]).is_some();
    if !found {
        eprintln!("openssl not installed: interop test skipped");
    }
    found
}

/// The public key OpenSSL derives from a private key file, as a [`PrincipalKey`].
fn openssl_public(path: &Path) -> PrincipalKey {
    let der = openssl(&[
        "pkey",
        "-in",
        path.to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
    ])
    .unwrap();
    // SubjectPublicKeyInfo: the key bytes are the BIT STRING at the end. Ed25519's is 32
    // bytes after a 12-byte header; P-256's is the 65-byte uncompressed point.
    match der.len() {
        44 => PrincipalKey::new(Algorithm::Ed25519, &der[12..]).unwrap(),
        91 => PrincipalKey::new(Algorithm::EcdsaP256, &der[26..]).unwrap(),
        n => panic!("unexpected SPKI length {n}"),
    }
}

#[test]
fn generated_keys_round_trip_through_pkcs8_pem() {
    for algorithm in ALGORITHMS {
        let key = SigningKey::generate(algorithm).unwrap();
        assert_eq!(key.algorithm(), algorithm);
        let pem = key.to_pkcs8_pem();
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{algorithm}"
        );
        assert!(pem.ends_with("-----END PRIVATE KEY-----\n"), "{algorithm}");
        let back = SigningKey::from_text(&pem).unwrap();
        assert_eq!(back.public(), key.public(), "{algorithm}");
        // And it signs the same (Ed25519 is deterministic; P-256 in RustCrypto is RFC 6979).
        assert_eq!(back.sign(&[7; 32]), key.sign(&[7; 32]), "{algorithm}");
        // Windows line endings and surrounding blank lines are fine.
        let crlf = format!("\r\n\n{}\r\n", pem.replace('\n', "\r\n"));
        assert_eq!(SigningKey::from_text(&crlf).unwrap().public(), key.public());
    }
    // Two generated keys differ.
    let a = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let b = SigningKey::generate(Algorithm::Ed25519).unwrap();
    assert_ne!(a.public(), b.public());
}

#[test]
fn hex_forms() {
    let seed = [0x11u8; 32];
    let ed = SigningKey::ed25519_from_seed(&seed).public();
    let hex_seed = hex::encode(seed);
    for text in [
        hex_seed.clone(),
        format!("0x{hex_seed}"),
        format!("  {}\n", hex_seed.to_uppercase()),
        format!("ed25519:{hex_seed}"),
    ] {
        assert_eq!(SigningKey::from_text(&text).unwrap().public(), ed, "{text}");
    }
    let p = SigningKey::p256_from_bytes(&seed).unwrap().public();
    for text in [
        format!("ecdsa-p256:{hex_seed}"),
        format!("ecdsa-p256:0x{hex_seed}\n"),
    ] {
        let key = SigningKey::from_text(&text).unwrap();
        assert_eq!(key.algorithm(), Algorithm::EcdsaP256);
        assert_eq!(key.public(), p);
    }
}

#[test]
fn policy_spec_accessors() {
    let key = SigningKey::ed25519_from_seed(&[3; 32]).public();
    assert_eq!(key.algorithm().name(), "ed25519");
    assert_eq!(key.public_hex().len(), 64);
    let p = SigningKey::p256_from_bytes(&[3; 32]).unwrap().public();
    assert_eq!(p.algorithm().to_string(), "ecdsa-p256");
    // SEC1 compressed: 33 bytes, 02 or 03 first.
    assert_eq!(p.public_hex().len(), 66);
    assert!(p.public_hex().starts_with("02") || p.public_hex().starts_with("03"));
    for a in ALGORITHMS {
        assert_eq!(Algorithm::from_name(a.name()), Some(a));
    }
    assert_eq!(Algorithm::from_name("rsa"), None);
    // The spec rebuilds the same key, with the same id.
    let again = PrincipalKey::new(
        Algorithm::from_name(p.algorithm().name()).unwrap(),
        &hex::decode(p.public_hex()).unwrap(),
    )
    .unwrap();
    assert_eq!(again.id(), p.id());
}

#[test]
fn openssl_keys_load_with_openssls_public_key() {
    if !have_openssl() {
        return;
    }
    let dir = temp_dir("openssl-in");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let cases: Vec<(&str, Vec<String>, Algorithm)> = vec![
        (
            "ed25519.pem",
            vec!["genpkey".into(), "-algorithm".into(), "ed25519".into()],
            Algorithm::Ed25519,
        ),
        (
            "p256-pkcs8.pem",
            vec![
                "genpkey".into(),
                "-algorithm".into(),
                "EC".into(),
                "-pkeyopt".into(),
                "ec_paramgen_curve:P-256".into(),
            ],
            Algorithm::EcdsaP256,
        ),
        (
            // SEC1 "EC PRIVATE KEY", preceded by an "EC PARAMETERS" block.
            "p256-sec1.pem",
            vec![
                "ecparam".into(),
                "-name".into(),
                "prime256v1".into(),
                "-genkey".into(),
            ],
            Algorithm::EcdsaP256,
        ),
    ];
    for (name, args, algorithm) in cases {
        let file = path(name);
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["-out", &file]);
        openssl(&all).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let key = SigningKey::from_text(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(key.algorithm(), algorithm, "{name}");
        assert_eq!(key.public(), openssl_public(Path::new(&file)), "{name}");
        // A signature made with it verifies under OpenSSL's public key.
        let digest = [9u8; 32];
        assert!(openssl_public(Path::new(&file)).verify(&digest, &key.sign(&digest)));
    }
    // SEC1 without the parameters block, and PKCS#8 made from SEC1 by openssl.
    let sec1 = path("p256-sec1.pem");
    let bare = path("p256-sec1-bare.pem");
    openssl(&["ec", "-in", &sec1, "-out", &bare]).unwrap();
    let text = std::fs::read_to_string(&bare).unwrap();
    assert!(text.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let key = SigningKey::from_text(&text).unwrap();
    assert_eq!(key.public(), openssl_public(Path::new(&sec1)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn openssl_reads_our_pem_byte_for_byte() {
    if !have_openssl() {
        return;
    }
    let dir = temp_dir("openssl-out");
    for algorithm in ALGORITHMS {
        let key = SigningKey::generate(algorithm).unwrap();
        let file = dir.join(format!("{algorithm}.pem"));
        std::fs::write(&file, key.to_pkcs8_pem().as_bytes()).unwrap();
        assert_eq!(openssl_public(&file), key.public(), "{algorithm}");
        // OpenSSL re-encodes it identically: our DER is the canonical layout.
        let again = openssl(&["pkey", "-in", file.to_str().unwrap()]).unwrap();
        assert_eq!(
            String::from_utf8(again).unwrap(),
            key.to_pkcs8_pem().as_str(),
            "{algorithm}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn other_keys_are_refused_with_a_reason() {
    if !have_openssl() {
        return;
    }
    let dir = temp_dir("openssl-other");
    let f = |n: &str| dir.join(n).to_str().unwrap().to_string();
    openssl(&["genpkey", "-algorithm", "ed448", "-out", &f("ed448.pem")]).unwrap();
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:secp384r1",
        "-out",
        &f("p384.pem"),
    ])
    .unwrap();
    openssl(&[
        "ecparam",
        "-name",
        "secp256k1",
        "-genkey",
        "-noout",
        "-out",
        &f("k1.pem"),
    ])
    .unwrap();
    openssl(&[
        "pkey",
        "-in",
        &f("ed448.pem"),
        "-aes-256-cbc",
        "-passout",
        "pass:x",
        "-out",
        &f("enc.pem"),
    ])
    .unwrap();
    openssl(&[
        "pkey",
        "-in",
        &f("p384.pem"),
        "-pubout",
        "-out",
        &f("pub.pem"),
    ])
    .unwrap();
    let read = |n: &str| SigningKey::from_text(&std::fs::read_to_string(f(n)).unwrap());
    assert_eq!(
        read("ed448.pem").unwrap_err(),
        KeyFileError::UnsupportedAlgorithm("1.3.101.113".into())
    );
    assert_eq!(
        read("p384.pem").unwrap_err(),
        KeyFileError::UnsupportedCurve("1.3.132.0.34".into())
    );
    assert_eq!(
        read("k1.pem").unwrap_err(),
        KeyFileError::UnsupportedCurve("1.3.132.0.10".into())
    );
    assert_eq!(read("enc.pem").unwrap_err(), KeyFileError::Encrypted);
    assert_eq!(
        read("pub.pem").unwrap_err(),
        KeyFileError::NotPrivate("PUBLIC KEY".into())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_text_is_refused_without_echoing_it() {
    // 63 hex digits: one short of an Ed25519 seed.
    let secret_hex = &format!("{}5ec", "5ec2e7".repeat(10));
    let pem = SigningKey::ed25519_from_seed(&[5; 32]).to_pkcs8_pem();
    let body_line = pem.lines().nth(1).unwrap().to_string();
    let mut corrupt = pem.to_string();
    corrupt.replace_range(40..41, "!");
    let cases: Vec<(String, KeyFileError)> = vec![
        (String::new(), KeyFileError::Unrecognised),
        ("hello world".into(), KeyFileError::Unrecognised),
        (secret_hex.clone(), KeyFileError::Hex),
        (
            format!("{secret_hex}0ab"),
            KeyFileError::Length {
                algorithm: "ed25519",
                got: 33,
            },
        ),
        (format!("ecdsa-p256:{secret_hex}g"), KeyFileError::Hex),
        (
            format!("ecdsa-p256:{}", "ff".repeat(32)),
            KeyFileError::Invalid("ecdsa-p256"),
        ),
        (
            format!("ecdsa-p256:{}", "00".repeat(32)),
            KeyFileError::Invalid("ecdsa-p256"),
        ),
        (
            format!("-----BEGIN PRIVATE KEY-----\n{body_line}\n"),
            KeyFileError::Pem("no END line matching the BEGIN line"),
        ),
        (corrupt, KeyFileError::Pem("the body is not base64")),
        (
            format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                &body_line[..20]
            ),
            KeyFileError::Der("PKCS#8"),
        ),
        (
            format!("{}{}", pem.as_str(), pem.as_str()),
            KeyFileError::Ambiguous,
        ),
        ("x".repeat(20_000), KeyFileError::TooLong),
    ];
    for (text, expected) in cases {
        let err = SigningKey::from_text(&text).unwrap_err();
        assert_eq!(err, expected, "{text:?}");
        let message = err.to_string();
        for fragment in [secret_hex, &secret_hex[..16], &body_line[..16], "5ec2e7"] {
            assert!(!message.contains(fragment), "{message}");
        }
        assert!(!format!("{err:?}").contains("5ec2e7"));
    }
}

#[test]
fn debug_of_a_signing_key_shows_only_its_id() {
    let key = SigningKey::from_text(&"ab".repeat(32)).unwrap();
    let debug = format!("{key:?}");
    assert_eq!(debug, format!("SigningKey({})", key.public().id()));
    assert!(!debug.contains("abab"));
}
