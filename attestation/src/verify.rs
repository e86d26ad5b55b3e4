//! Verification of attestation documents, following section 3 of the nsm-api
//! `docs/attestation_process.md`: COSE decode, syntax checks, certificate chain to a pinned
//! root at a caller-chosen time, COSE signature, then the caller's expectations.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use coset::{CborSerializable, CoseSign1, HeaderBuilder, TaggedCborSerializable, iana};
use p384::ecdsa::signature::Verifier;
use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm,
    UnixTime, alg_id,
};
use x509_cert::Certificate;
use x509_cert::der::Decode;

use crate::document::AttestationDocument;
use crate::time_fmt::from_millis;
use crate::{TrustedRoot, VerifyError};

/// Largest input accepted; genuine documents are under 5 KiB.
pub const MAX_DOCUMENT_LEN: usize = 32 * 1024;

/// How far a document's timestamp may run ahead of the verifier's clock (clock skew).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// OID 1.2.840.10045.2.1 (id-ecPublicKey) and 1.3.132.0.34 (secp384r1).
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const SECP384R1: &str = "1.3.132.0.34";

/// What the caller requires of a document beyond a valid signature and chain.
#[derive(Clone, Debug)]
pub struct Expectations {
    root: TrustedRoot,
    at: SystemTime,
    /// The PCR sets accepted (releases of the image): a document must carry all of one.
    /// Empty: no PCR requirement.
    releases: Vec<BTreeMap<u8, Vec<u8>>>,
    nonce: Option<Vec<u8>>,
    public_key: Option<Vec<u8>>,
    user_data: Option<Vec<u8>>,
    max_age: Option<Duration>,
    allow_debug: bool,
}

impl Expectations {
    /// Verify at time `at` against the AWS root, with no PCR, nonce or age requirement and
    /// debug-mode documents refused.
    pub fn new(at: SystemTime) -> Self {
        Self {
            root: TrustedRoot::aws_nitro_g1(),
            at,
            releases: Vec::new(),
            nonce: None,
            public_key: None,
            user_data: None,
            max_age: None,
            allow_debug: false,
        }
    }

    /// Trust this root instead of the AWS root (a mock root, for example).
    pub fn root(mut self, root: TrustedRoot) -> Self {
        self.root = root;
        self
    }

    /// Require PCR `index` to equal `value` (in the first release, with
    /// [`Expectations::releases`]).
    pub fn pcr(mut self, index: u8, value: Vec<u8>) -> Self {
        match self.releases.first_mut() {
            Some(first) => {
                first.insert(index, value);
            }
            None => self.releases.push(BTreeMap::from([(index, value)])),
        }
        self
    }

    /// Require the document's PCRs to be those of ONE of these releases (sets of PCR
    /// values by index), completely: during an upgrade both the old and the new image are
    /// trusted, a mix of their values never. Replaces what [`Expectations::pcr`] set; the
    /// first set's differences are reported as with `pcr` when there is only one. An empty
    /// list requires nothing: callers refuse it.
    pub fn releases(mut self, releases: impl IntoIterator<Item = BTreeMap<u8, Vec<u8>>>) -> Self {
        self.releases = releases.into_iter().collect();
        self
    }

    /// Require the document's nonce to equal `nonce`.
    pub fn nonce(mut self, nonce: Vec<u8>) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Require the document's public key to equal `public_key`.
    pub fn public_key(mut self, public_key: Vec<u8>) -> Self {
        self.public_key = Some(public_key);
        self
    }

    /// Require the document's user data to equal `user_data`.
    pub fn user_data(mut self, user_data: Vec<u8>) -> Self {
        self.user_data = Some(user_data);
        self
    }

    /// Refuse documents older than `max_age` at the verification time.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Accept documents from debug-mode enclaves (PCR0 all zeros). Never in production.
    pub fn allow_debug(mut self, allow: bool) -> Self {
        self.allow_debug = allow;
        self
    }

    /// The verification time.
    pub fn at(&self) -> SystemTime {
        self.at
    }
}

/// Facts about a certificate, for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Subject, RFC 4514.
    pub subject: String,
    /// Issuer, RFC 4514.
    pub issuer: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

/// A document that passed every check.
#[derive(Clone, Debug)]
pub struct VerifiedDocument {
    /// The decoded payload.
    pub document: AttestationDocument,
    /// The signing (leaf) certificate.
    pub certificate: CertificateInfo,
}

impl VerifiedDocument {
    /// Document creation time.
    pub fn timestamp(&self) -> SystemTime {
        from_millis(self.document.timestamp)
    }
}

/// ECDSA P-384 with SHA-384 for rustls-webpki, on the RustCrypto `p384` crate, so the
/// verifier needs no C library and the same curve code checks chain and COSE signature.
#[derive(Debug)]
struct EcdsaP384Sha384;

impl SignatureVerificationAlgorithm for EcdsaP384Sha384 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key =
            p384::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let sig = p384::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &sig).map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P384
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA384
    }
}

struct ParsedCert {
    which: String,
    info: CertificateInfo,
    cert: Certificate,
}

fn parse_cert(which: String, der: &[u8]) -> Result<ParsedCert, VerifyError> {
    let cert = Certificate::from_der(der).map_err(|e| VerifyError::MalformedCertificate {
        which: which.clone(),
        reason: e.to_string(),
    })?;
    let tbs = cert.tbs_certificate();
    let info = CertificateInfo {
        subject: tbs.subject().to_string(),
        issuer: tbs.issuer().to_string(),
        not_before: tbs.validity().not_before.to_system_time(),
        not_after: tbs.validity().not_after.to_system_time(),
    };
    Ok(ParsedCert { which, info, cert })
}

fn check_validity(c: &ParsedCert, at: SystemTime) -> Result<(), VerifyError> {
    if at < c.info.not_before {
        return Err(VerifyError::CertificateNotYetValid {
            which: c.which.clone(),
            subject: c.info.subject.clone(),
            not_before: c.info.not_before,
            at,
        });
    }
    if at > c.info.not_after {
        return Err(VerifyError::CertificateExpired {
            which: c.which.clone(),
            subject: c.info.subject.clone(),
            not_after: c.info.not_after,
            at,
        });
    }
    Ok(())
}

fn leaf_key(leaf: &Certificate) -> Result<p384::ecdsa::VerifyingKey, VerifyError> {
    let spki = leaf.tbs_certificate().subject_public_key_info();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok());
    if spki.algorithm.oid.to_string() != EC_PUBLIC_KEY
        || curve.map(|c| c.to_string()).as_deref() != Some(SECP384R1)
    {
        return Err(VerifyError::LeafKeyNotP384);
    }
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or(VerifyError::LeafKeyNotP384)?;
    p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| VerifyError::LeafKeyNotP384)
}

fn check_chain(
    doc: &AttestationDocument,
    root: &TrustedRoot,
    at: SystemTime,
) -> Result<(), VerifyError> {
    static ALGS: &[&dyn SignatureVerificationAlgorithm] = &[&EcdsaP384Sha384];
    let root_der = CertificateDer::from(root.der());
    let anchor = webpki::anchor_from_trusted_cert(&root_der)
        .map_err(|e| VerifyError::BadRoot(format!("{e:?}")))?;
    let leaf_der = CertificateDer::from(doc.certificate.as_slice());
    let leaf = webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| {
        VerifyError::MalformedCertificate {
            which: "certificate".into(),
            reason: format!("{e:?}"),
        }
    })?;
    // The root is the anchor; only the certificates after it are intermediates.
    let intermediates: Vec<CertificateDer<'_>> = doc.cabundle[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let time = UnixTime::since_unix_epoch(
        at.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO),
    );
    // The leaf carries no extended key usage; "client auth if present" accepts that and
    // nothing else would be more accurate.
    let anchors = [anchor];
    let path = leaf
        .verify_for_usage(
            ALGS,
            &anchors,
            &intermediates,
            time,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(|e| {
            VerifyError::ChainInvalid(match e {
                webpki::Error::UnknownIssuer => {
                    "no path from the signing certificate through cabundle to the root".into()
                }
                webpki::Error::InvalidSignatureForPublicKey => {
                    "a certificate's signature does not verify under its issuer's key".into()
                }
                other => format!("{other:?}"),
            })
        })?;
    // The path webpki found must be exactly cabundle[1..], issuer of the leaf last.
    let used: Vec<CertificateDer<'_>> = path
        .intermediate_certificates()
        .rev()
        .map(|c| c.der())
        .collect();
    if used.len() != intermediates.len() || used.iter().zip(&intermediates).any(|(a, b)| a != b) {
        return Err(VerifyError::CabundleOrder);
    }
    Ok(())
}

fn hex_mismatch(field: &'static str, expected: &[u8], found: &[u8]) -> VerifyError {
    VerifyError::FieldMismatch {
        field,
        expected: hex::encode(expected),
        found: hex::encode(found),
    }
}

fn check_optional(
    field: &'static str,
    expected: Option<&Vec<u8>>,
    found: Option<&Vec<u8>>,
) -> Result<(), VerifyError> {
    match (expected, found) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(VerifyError::ExpectedFieldMissing(field)),
        (Some(e), Some(f)) if e == f => Ok(()),
        (Some(e), Some(f)) => Err(hex_mismatch(field, e, f)),
    }
}

/// The COSE_Sign1 structure of a document (tagged or untagged), its size checked first.
fn parse_sign1(bytes: &[u8]) -> Result<CoseSign1, VerifyError> {
    if bytes.len() > MAX_DOCUMENT_LEN {
        return Err(VerifyError::TooLarge {
            len: bytes.len(),
            max: MAX_DOCUMENT_LEN,
        });
    }
    // 0xd2 is CBOR tag 18 (COSE_Sign1); the NSM emits the untagged form.
    let parsed = if bytes.first() == Some(&0xd2) {
        CoseSign1::from_tagged_slice(bytes)
    } else {
        CoseSign1::from_slice(bytes)
    };
    parsed.map_err(|e| VerifyError::MalformedCose(e.to_string()))
}

/// The creation time a document claims, read WITHOUT verifying anything. Its one use is
/// choosing the verification time of an old document: an auditor verifies a document
/// from years ago at its own time (its certificates have long expired since), then
/// [`verify`] at that time checks the timestamp along with everything else.
pub fn claimed_timestamp(bytes: &[u8]) -> Result<SystemTime, VerifyError> {
    let sign1 = parse_sign1(bytes)?;
    let payload = sign1
        .payload
        .as_deref()
        .ok_or(VerifyError::MissingPayload)?;
    Ok(from_millis(
        AttestationDocument::from_payload(payload)?.timestamp,
    ))
}

/// The first PCR of `want` that `got` lacks or carries with another value.
fn pcr_difference(
    got: &BTreeMap<u8, Vec<u8>>,
    want: &BTreeMap<u8, Vec<u8>>,
) -> Option<VerifyError> {
    want.iter().find_map(|(index, want)| match got.get(index) {
        None => Some(VerifyError::PcrMissing(*index)),
        Some(got) if got != want => Some(VerifyError::PcrMismatch {
            index: *index,
            expected: hex::encode(want),
            found: hex::encode(got),
        }),
        Some(_) => None,
    })
}

/// The document's PCRs must be all those of one release, completely (a mix of two
/// releases' values matches none). With one release, its first difference is the error.
fn check_pcrs(got: &BTreeMap<u8, Vec<u8>>, exp: &Expectations) -> Result<(), VerifyError> {
    let mut differences = Vec::with_capacity(exp.releases.len());
    for release in &exp.releases {
        match pcr_difference(got, release) {
            None => return Ok(()),
            Some(e) => differences.push(e),
        }
    }
    match differences.len() {
        0 => Ok(()),
        1 => Err(differences.swap_remove(0)),
        _ => Err(VerifyError::NoTrustedRelease(differences)),
    }
}

/// Verifies an attestation document (COSE_Sign1 bytes, tagged or untagged) against `exp`.
pub fn verify(bytes: &[u8], exp: &Expectations) -> Result<VerifiedDocument, VerifyError> {
    let sign1 = parse_sign1(bytes)?;

    let expected_header = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES384)
        .build();
    if sign1.protected.header.alg != expected_header.alg {
        return Err(VerifyError::UnexpectedAlgorithm {
            found: format!("{:?}", sign1.protected.header.alg),
        });
    }
    if sign1.protected.header != expected_header {
        return Err(VerifyError::UnexpectedHeader(
            "protected header carries more than the algorithm",
        ));
    }
    if !sign1.unprotected.is_empty() {
        return Err(VerifyError::UnexpectedHeader(
            "unprotected header is not empty",
        ));
    }
    let payload = sign1
        .payload
        .as_deref()
        .ok_or(VerifyError::MissingPayload)?;
    if sign1.signature.len() != 96 {
        return Err(VerifyError::SignatureLength {
            len: sign1.signature.len(),
        });
    }

    let doc = AttestationDocument::from_payload(payload)?;

    let mut chain = Vec::with_capacity(doc.cabundle.len() + 1);
    for (i, der) in doc.cabundle.iter().enumerate() {
        chain.push(parse_cert(format!("cabundle[{i}]"), der)?);
    }
    let leaf = parse_cert("certificate".into(), &doc.certificate)?;

    exp.root.check_pin(&doc.cabundle[0])?;
    // Every certificate, the root included, must be valid at the chosen time; checked here
    // so the error names the certificate, before webpki (which skips the anchor's dates).
    for c in chain.iter().chain(std::iter::once(&leaf)) {
        check_validity(c, exp.at)?;
    }
    check_chain(&doc, &exp.root, exp.at)?;

    let key = leaf_key(&leaf.cert)?;
    sign1
        .verify_signature(b"", |sig, data| {
            let sig = p384::ecdsa::Signature::from_slice(sig).map_err(|_| ())?;
            key.verify(data, &sig).map_err(|_| ())
        })
        .map_err(|()| VerifyError::BadSignature)?;

    let timestamp = from_millis(doc.timestamp);
    if timestamp < leaf.info.not_before || timestamp > leaf.info.not_after {
        return Err(VerifyError::TimestampOutsideCertificate { timestamp });
    }
    if timestamp > exp.at + MAX_CLOCK_SKEW {
        return Err(VerifyError::TimestampInFuture {
            timestamp,
            at: exp.at,
        });
    }
    if let Some(max) = exp.max_age {
        let age = exp.at.duration_since(timestamp).unwrap_or(Duration::ZERO);
        if age > max {
            return Err(VerifyError::TooOld {
                age_secs: age.as_secs(),
                max_secs: max.as_secs(),
            });
        }
    }

    if doc.is_debug_mode() && !exp.allow_debug {
        return Err(VerifyError::DebugMode);
    }
    check_pcrs(&doc.pcrs, exp)?;
    check_optional("nonce", exp.nonce.as_ref(), doc.nonce.as_ref())?;
    check_optional(
        "public_key",
        exp.public_key.as_ref(),
        doc.public_key.as_ref(),
    )?;
    check_optional("user_data", exp.user_data.as_ref(), doc.user_data.as_ref())?;

    Ok(VerifiedDocument {
        document: doc,
        certificate: leaf.info,
    })
}
