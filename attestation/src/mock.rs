//! A mock Nitro Security Module for mock mode and tests.
//!
//! It owns a CA shaped like AWS's (root → regional → zonal → instance → per-document leaf,
//! all ECDSA P-384 with SHA-384, the same basic-constraints path lengths and key usages)
//! and returns documents with the same bytes layout as the NSM's. The root key persists in
//! a state directory so that a mock KMS in another process can pin `DIR/root.pem`; the
//! intermediates are made afresh when a process starts and when they near expiry, as
//! AWS rotates its own.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use coset::{CborSerializable, CoseSign1Builder, HeaderBuilder, iana};
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{DerSignature, SigningKey};
use p384::elliptic_curve::Generate;
use p384::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use sha2::{Digest, Sha384};
use x509_cert::builder::{Builder, CertificateBuilder, profile::BuilderProfile};
use x509_cert::der::{Decode, Encode, EncodePem};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfo, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate};
use zeroize::Zeroizing;

use crate::TrustedRoot;
use crate::document::AttestationDocument;
use crate::nsm::{AttestationRequest, Nsm, NsmError, PcrDescription};

/// Number of PCRs the NSM reports, all of them in every document.
pub const PCR_COUNT: u16 = 16;
/// PCRs that are locked at boot on a real enclave (0-4 measured by Nitro, 8 the signing cert).
const LOCKED_PCRS: [u16; 6] = [0, 1, 2, 3, 4, 8];

const ROOT_SUBJECT: &str = "CN=mock.nitro-enclaves,OU=Strongroom mock NSM,O=Strongroom,C=US";
const STATE_FILE: &str = "mock-nsm-ca.pem";
/// The root certificate, for verifiers in other processes to pin.
pub const ROOT_PEM_FILE: &str = "root.pem";

const ROOT_LIFETIME: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
const REGIONAL_LIFETIME: Duration = Duration::from_secs(20 * 24 * 3600);
const ZONAL_LIFETIME: Duration = Duration::from_secs(5 * 24 * 3600);
const INSTANCE_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Leaf lifetime: three hours, as on AWS.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(3 * 3600);
/// Certificates are back-dated a little, as AWS does, to absorb clock skew.
const BACKDATE: Duration = Duration::from_secs(5);

/// The mock's PCR values and identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockNsmConfig {
    /// PCR values by index; indices not given are all zeros. Each value is 48 bytes.
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    /// The enclave's module id, like `i-0123456789abcdef0-enc0123456789abcdef`.
    pub module_id: String,
}

impl Default for MockNsmConfig {
    /// Distinct non-zero PCR0/1/2 (so documents are not debug-mode), zero elsewhere.
    fn default() -> Self {
        let pcrs = [0u16, 1, 2]
            .into_iter()
            .map(|i| {
                let label = format!("strongroom mock enclave PCR{i}");
                (i, Sha384::digest(label.as_bytes()).to_vec())
            })
            .collect();
        Self {
            pcrs,
            module_id: "i-0000000000000000m-enc0000000000000001".into(),
        }
    }
}

impl MockNsmConfig {
    /// Reads PCRs from JSON: `{"0": "hex", "1": "hex", ...}` (indices as strings or the
    /// `{"PCR0": ...}` form that `nitro-cli build-enclave` prints under `Measurements`).
    pub fn pcrs_from_json(text: &str) -> Result<BTreeMap<u16, Vec<u8>>, NsmError> {
        let pcrs = crate::parse_pcr_file(text).map_err(|e| NsmError::State(e.to_string()))?;
        if let Some(i) = pcrs.keys().find(|i| **i >= PCR_COUNT) {
            return Err(NsmError::State(format!(
                "PCR file: PCR{i} is beyond the mock NSM's {PCR_COUNT} PCRs"
            )));
        }
        Ok(pcrs)
    }
}

/// One certificate with its signing key.
struct Issued {
    key: SigningKey,
    cert: Certificate,
    der: Vec<u8>,
    not_before: SystemTime,
    not_after: SystemTime,
}

/// The rotating part of the chain: regional, zonal and instance CAs.
struct Intermediates {
    regional: Issued,
    zonal: Issued,
    instance: Issued,
    instance_id: String,
}

/// A mock NSM whose documents chain to its own mock root.
pub struct MockNsm {
    root: Issued,
    intermediates: Mutex<Intermediates>,
    config: MockNsmConfig,
}

impl std::fmt::Debug for MockNsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockNsm")
            .field("module_id", &self.config.module_id)
            .finish_non_exhaustive()
    }
}

/// Which kind of certificate a profile makes.
enum Kind {
    Root,
    Ca { path_len: u8 },
    Leaf,
}

/// A certificate profile reproducing the extensions of AWS's attestation PKI.
struct NitroProfile {
    issuer: Name,
    subject: Name,
    kind: Kind,
}

impl BuilderProfile for NitroProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut ext = Vec::new();
        let subject = &tbs.subject().clone();
        let ca_usage =
            KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyCertSign | KeyUsages::CRLSign);
        match self.kind {
            Kind::Root => {
                let bc = BasicConstraints {
                    ca: true,
                    path_len_constraint: None,
                };
                ext.push((true, &bc).to_extension(subject, &ext)?);
                let ski = SubjectKeyIdentifier::try_from(spk)?;
                ext.push((false, &ski).to_extension(subject, &ext)?);
                ext.push((true, &ca_usage).to_extension(subject, &ext)?);
            }
            Kind::Ca { path_len } => {
                let bc = BasicConstraints {
                    ca: true,
                    path_len_constraint: Some(path_len),
                };
                ext.push((true, &bc).to_extension(subject, &ext)?);
                let aki = AuthorityKeyIdentifier::try_from(issuer_spk)?;
                ext.push((false, &aki).to_extension(subject, &ext)?);
                let ski = SubjectKeyIdentifier::try_from(spk)?;
                ext.push((false, &ski).to_extension(subject, &ext)?);
                ext.push((true, &ca_usage).to_extension(subject, &ext)?);
            }
            Kind::Leaf => {
                let bc = BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                };
                ext.push((true, &bc).to_extension(subject, &ext)?);
                let usage = KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation);
                ext.push((false, &usage).to_extension(subject, &ext)?);
            }
        }
        Ok(ext)
    }
}

fn state_err(what: &str) -> impl Fn(String) -> NsmError + '_ {
    move |e| NsmError::State(format!("{what}: {e}"))
}

fn random_hex(bytes: usize) -> Result<String, NsmError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| NsmError::State(format!("OS RNG: {e}")))?;
    Ok(hex::encode(buf))
}

fn system_time_to_x509(t: SystemTime) -> Result<Time, NsmError> {
    Time::try_from(t).map_err(|e| NsmError::State(format!("certificate time: {e}")))
}

fn new_key() -> Result<SigningKey, NsmError> {
    SigningKey::try_generate().map_err(|e| NsmError::State(format!("key generation: {e}")))
}

/// Issues a certificate for `key` signed by `issuer` (or self-signed when `issuer` is None).
fn issue(
    subject: &str,
    kind: Kind,
    key: SigningKey,
    issuer: Option<&Issued>,
    not_before: SystemTime,
    lifetime: Duration,
) -> Result<Issued, NsmError> {
    let subject_name = Name::from_str(subject).map_err(|e| state_err("subject")(e.to_string()))?;
    let issuer_name = match issuer {
        Some(i) => i.cert.tbs_certificate().subject().clone(),
        None => subject_name.clone(),
    };
    let not_after = not_before + lifetime;
    let validity = Validity::new(
        system_time_to_x509(not_before)?,
        system_time_to_x509(not_after)?,
    );
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| NsmError::State(format!("OS RNG: {e}")))?;
    serial[0] &= 0x7f; // positive INTEGER
    serial[0] |= 0x01; // and no leading zero byte
    let serial = SerialNumber::new(&serial).map_err(|e| state_err("serial")(e.to_string()))?;
    let spki = SubjectPublicKeyInfo::from_key(key.verifying_key())
        .map_err(|e| state_err("public key")(e.to_string()))?;
    let profile = NitroProfile {
        issuer: issuer_name,
        subject: subject_name,
        kind,
    };
    let builder = CertificateBuilder::new(profile, serial, validity, spki)
        .map_err(|e| state_err("certificate")(e.to_string()))?;
    let signer = issuer.map_or(&key, |i| &i.key);
    let cert = builder
        .build::<_, DerSignature>(signer)
        .map_err(|e| state_err("certificate")(e.to_string()))?;
    let der = cert
        .to_der()
        .map_err(|e| state_err("certificate")(e.to_string()))?;
    Ok(Issued {
        key,
        cert,
        der,
        not_before,
        not_after,
    })
}

fn new_intermediates(root: &Issued, now: SystemTime) -> Result<Intermediates, NsmError> {
    let start = now - BACKDATE;
    let region = random_hex(8)?;
    let regional = issue(
        &format!(
            "CN={region}.mock-region-1.mock.nitro-enclaves,OU=Strongroom mock NSM,O=Strongroom,C=US"
        ),
        Kind::Ca { path_len: 2 },
        new_key()?,
        Some(root),
        start,
        REGIONAL_LIFETIME,
    )?;
    let zone = random_hex(8)?;
    let zonal = issue(
        &format!(
            "CN={zone}.zonal.mock-region-1.mock.nitro-enclaves,OU=Strongroom mock NSM,O=Strongroom,C=US"
        ),
        Kind::Ca { path_len: 1 },
        new_key()?,
        Some(&regional),
        start,
        ZONAL_LIFETIME,
    )?;
    let instance_id = format!("i-{}", &random_hex(9)?[..17]);
    let instance = issue(
        &format!(
            "CN={instance_id}.mock-region-1.mock.nitro-enclaves,OU=Strongroom mock NSM,O=Strongroom,C=US"
        ),
        Kind::Ca { path_len: 0 },
        new_key()?,
        Some(&zonal),
        start,
        INSTANCE_LIFETIME,
    )?;
    Ok(Intermediates {
        regional,
        zonal,
        instance,
        instance_id,
    })
}

impl MockNsm {
    /// A mock NSM with a fresh root that lives only in memory (tests).
    pub fn ephemeral(config: MockNsmConfig) -> Result<Self, NsmError> {
        let now = SystemTime::now();
        let root = issue(
            ROOT_SUBJECT,
            Kind::Root,
            new_key()?,
            None,
            now - BACKDATE,
            ROOT_LIFETIME,
        )?;
        Self::with_root(root, config, now)
    }

    /// A mock NSM whose root lives in `dir` (created with its root on first use; the root
    /// certificate is written to `dir/root.pem` for other processes to pin).
    pub fn open_or_create(dir: &Path, config: MockNsmConfig) -> Result<Self, NsmError> {
        fs::create_dir_all(dir).map_err(|e| state_err("state directory")(e.to_string()))?;
        let state = dir.join(STATE_FILE);
        let root = match fs::read_to_string(&state) {
            Ok(text) => load_root(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_root(dir, &state)?,
            Err(e) => return Err(state_err("reading CA state")(e.to_string())),
        };
        let pem = root
            .cert
            .to_pem(LineEnding::LF)
            .map_err(|e| state_err("root PEM")(e.to_string()))?;
        write_atomically(dir, &dir.join(ROOT_PEM_FILE), pem.as_bytes(), 0o644)?;
        Self::with_root(root, config, SystemTime::now())
    }

    fn with_root(root: Issued, config: MockNsmConfig, now: SystemTime) -> Result<Self, NsmError> {
        for (i, v) in &config.pcrs {
            if *i >= PCR_COUNT || v.len() != 48 {
                return Err(NsmError::State(format!(
                    "PCR{i}: index must be below {PCR_COUNT} and the value 48 bytes"
                )));
            }
        }
        let intermediates = new_intermediates(&root, now)?;
        Ok(Self {
            root,
            intermediates: Mutex::new(intermediates),
            config,
        })
    }

    /// The mock root certificate, PEM.
    pub fn root_pem(&self) -> Result<String, NsmError> {
        self.root
            .cert
            .to_pem(LineEnding::LF)
            .map_err(|e| state_err("root PEM")(e.to_string()))
    }

    fn pcr_value(&self, index: u16) -> Vec<u8> {
        self.config
            .pcrs
            .get(&index)
            .cloned()
            .unwrap_or_else(|| vec![0; 48])
    }

    /// A document as the NSM would make it at time `now` (tests choose the time).
    pub fn attestation_at(
        &self,
        request: &AttestationRequest,
        now: SystemTime,
    ) -> Result<Vec<u8>, NsmError> {
        request.check_limits()?;
        let mut chain = self
            .intermediates
            .lock()
            .map_err(|_| NsmError::State("intermediate CA lock poisoned".into()))?;
        let leaf_starts = now - Duration::from_secs(3);
        let leaf_ends = now + LEAF_LIFETIME;
        // Made afresh when they would expire during the leaf's life, and when a test asks
        // for a document from before they start (after one from later on).
        let cover = |c: &Issued| c.not_before <= leaf_starts && leaf_ends <= c.not_after;
        if ![&chain.regional, &chain.zonal, &chain.instance]
            .into_iter()
            .all(cover)
        {
            *chain = new_intermediates(&self.root, now)?;
        }
        let module_id = self.config.module_id.clone();
        let leaf = issue(
            &format!(
                "CN={}-{}.mock-region-1.mock,OU=Strongroom mock NSM,O=Strongroom,C=US",
                chain.instance_id,
                module_id.rsplit('-').next().unwrap_or("enc")
            ),
            Kind::Leaf,
            new_key()?,
            Some(&chain.instance),
            leaf_starts,
            LEAF_LIFETIME,
        )?;
        let timestamp = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| NsmError::State("clock before 1970".into()))?
            .as_millis();
        let doc = AttestationDocument {
            module_id,
            digest: "SHA384".into(),
            timestamp: u64::try_from(timestamp)
                .map_err(|_| NsmError::State("clock out of range".into()))?,
            pcrs: (0..PCR_COUNT)
                .map(|i| (i as u8, self.pcr_value(i)))
                .collect(),
            certificate: leaf.der.clone(),
            cabundle: vec![
                self.root.der.clone(),
                chain.regional.der.clone(),
                chain.zonal.der.clone(),
                chain.instance.der.clone(),
            ],
            public_key: request.public_key.clone(),
            user_data: request.user_data.clone(),
            nonce: request.nonce.clone(),
        };
        drop(chain);
        sign_document(&leaf.key, &doc)
    }
}

impl Nsm for MockNsm {
    fn attestation(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError> {
        self.attestation_at(request, SystemTime::now())
    }

    fn fill_random(&self, out: &mut [u8]) -> Result<(), NsmError> {
        getrandom::fill(out).map_err(|e| NsmError::Device(format!("OS RNG: {e}")))
    }

    fn describe_pcr(&self, index: u16) -> Result<PcrDescription, NsmError> {
        if index >= PCR_COUNT {
            return Err(NsmError::InvalidPcrIndex(index));
        }
        Ok(PcrDescription {
            locked: LOCKED_PCRS.contains(&index),
            data: self.pcr_value(index),
        })
    }

    fn trusted_root(&self) -> TrustedRoot {
        TrustedRoot::from_der(self.root.der.clone())
    }
}

/// COSE_Sign1 (ES384, untagged, empty unprotected header) over the document payload.
fn sign_document(key: &SigningKey, doc: &AttestationDocument) -> Result<Vec<u8>, NsmError> {
    CoseSign1Builder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES384)
                .build(),
        )
        .payload(doc.to_payload())
        .create_signature(b"", |tbs| {
            let sig: p384::ecdsa::Signature = key.sign(tbs);
            sig.to_bytes().to_vec()
        })
        .build()
        .to_vec()
        .map_err(|e| NsmError::State(format!("COSE encoding: {e}")))
}

fn load_root(text: &str) -> Result<Issued, NsmError> {
    let blocks = pem::parse_many(text).map_err(|e| state_err("CA state")(e.to_string()))?;
    let key_block = blocks
        .iter()
        .find(|b| b.tag() == "PRIVATE KEY")
        .ok_or_else(|| NsmError::State("CA state has no PRIVATE KEY".into()))?;
    let cert_block = blocks
        .iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .ok_or_else(|| NsmError::State("CA state has no CERTIFICATE".into()))?;
    let key = SigningKey::from_pkcs8_der(key_block.contents())
        .map_err(|e| state_err("CA key")(e.to_string()))?;
    let der = cert_block.contents().to_vec();
    let cert =
        Certificate::from_der(&der).map_err(|e| state_err("CA certificate")(e.to_string()))?;
    let not_before = cert
        .tbs_certificate()
        .validity()
        .not_before
        .to_system_time();
    let not_after = cert.tbs_certificate().validity().not_after.to_system_time();
    if cert.tbs_certificate().subject_public_key_info()
        != &SubjectPublicKeyInfo::from_key(key.verifying_key())
            .map_err(|e| state_err("CA key")(e.to_string()))?
    {
        return Err(NsmError::State(
            "CA state: the key does not match the certificate".into(),
        ));
    }
    Ok(Issued {
        key,
        cert,
        der,
        not_before,
        not_after,
    })
}

/// Creates the root and publishes it with a hard link, which fails if another process won
/// the race; the loser then loads the winner's root, so both agree.
fn create_root(dir: &Path, state: &Path) -> Result<Issued, NsmError> {
    let root = issue(
        ROOT_SUBJECT,
        Kind::Root,
        new_key()?,
        None,
        SystemTime::now() - BACKDATE,
        ROOT_LIFETIME,
    )?;
    let key_pem = root
        .key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| state_err("CA key")(e.to_string()))?;
    let cert_pem = root
        .cert
        .to_pem(LineEnding::LF)
        .map_err(|e| state_err("CA certificate")(e.to_string()))?;
    let mut text = Zeroizing::new(String::new());
    text.push_str(&key_pem);
    text.push_str(&cert_pem);
    let tmp = temp_path(dir)?;
    write_new(&tmp, text.as_bytes(), 0o600)?;
    let linked = fs::hard_link(&tmp, state);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(root),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(state)
                .map_err(|e| state_err("reading CA state")(e.to_string()))?;
            load_root(&text)
        }
        Err(e) => Err(state_err("publishing CA state")(e.to_string())),
    }
}

fn temp_path(dir: &Path) -> Result<PathBuf, NsmError> {
    Ok(dir.join(format!(".tmp-{}", random_hex(8)?)))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), NsmError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options
        .open(path)
        .map_err(|e| state_err("writing state")(e.to_string()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| state_err("writing state")(e.to_string()))
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8], mode: u32) -> Result<(), NsmError> {
    let tmp = temp_path(dir)?;
    write_new(&tmp, bytes, mode)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        state_err("writing state")(e.to_string())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::{Expectations, VerifyError, verify};

    /// A genuine mock document and the pieces to forge variants of it.
    fn parts() -> (MockNsm, AttestationDocument, Issued) {
        let nsm = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
        let doc_bytes = nsm.attestation(&AttestationRequest::default()).unwrap();
        let doc = crate::verify(
            &doc_bytes,
            &Expectations::new(SystemTime::now()).root(nsm.trusted_root()),
        )
        .unwrap()
        .document;
        let chain = nsm.intermediates.lock().unwrap();
        let leaf = issue(
            "CN=leaf,O=Strongroom,C=US",
            Kind::Leaf,
            new_key().unwrap(),
            Some(&chain.instance),
            SystemTime::now() - Duration::from_secs(3),
            LEAF_LIFETIME,
        )
        .unwrap();
        drop(chain);
        (nsm, doc, leaf)
    }

    #[test]
    fn a_cabundle_out_of_order_is_refused() {
        let (nsm, mut doc, leaf) = parts();
        doc.certificate = leaf.der.clone();
        let e = Expectations::new(SystemTime::now()).root(nsm.trusted_root());
        assert!(verify(&sign_document(&leaf.key, &doc).unwrap(), &e).is_ok());
        doc.cabundle.swap(1, 2);
        let err = verify(&sign_document(&leaf.key, &doc).unwrap(), &e).unwrap_err();
        assert_eq!(err, VerifyError::CabundleOrder);
    }

    #[test]
    fn a_leaf_from_a_rogue_ca_is_refused() {
        let (nsm, mut doc, _) = parts();
        // A CA outside the chain, with a key of its own.
        let rogue = issue(
            "CN=rogue,O=Strongroom,C=US",
            Kind::Root,
            new_key().unwrap(),
            None,
            SystemTime::now() - BACKDATE,
            INSTANCE_LIFETIME,
        )
        .unwrap();
        let leaf = issue(
            "CN=leaf,O=Strongroom,C=US",
            Kind::Leaf,
            new_key().unwrap(),
            Some(&rogue),
            SystemTime::now() - Duration::from_secs(3),
            LEAF_LIFETIME,
        )
        .unwrap();
        doc.certificate = leaf.der.clone();
        let e = Expectations::new(SystemTime::now()).root(nsm.trusted_root());
        let err = verify(&sign_document(&leaf.key, &doc).unwrap(), &e).unwrap_err();
        assert!(matches!(err, VerifyError::ChainInvalid(_)), "{err}");
    }

    #[test]
    fn a_document_signed_by_another_key_is_refused() {
        let (nsm, mut doc, leaf) = parts();
        doc.certificate = leaf.der.clone();
        let e = Expectations::new(SystemTime::now()).root(nsm.trusted_root());
        let err = verify(&sign_document(&new_key().unwrap(), &doc).unwrap(), &e).unwrap_err();
        assert_eq!(err, VerifyError::BadSignature);
    }

    #[test]
    fn pcr_file_forms() {
        let plain = format!(
            "{{\"0\": \"{}\", \"PCR2\": \"{}\"}}",
            "ab".repeat(48),
            "cd".repeat(48)
        );
        let pcrs = MockNsmConfig::pcrs_from_json(&plain).unwrap();
        assert_eq!(pcrs[&0], vec![0xab; 48]);
        assert_eq!(pcrs[&2], vec![0xcd; 48]);
        let nitro = format!(
            "{{\"Measurements\": {{\"HashAlgorithm\": \"Sha384 {{ ... }}\", \"PCR1\": \"{}\"}}}}",
            "01".repeat(48)
        );
        // nitro-cli's HashAlgorithm entry names the hash; it is not a PCR.
        assert_eq!(
            MockNsmConfig::pcrs_from_json(&nitro).unwrap()[&1],
            vec![0x01; 48]
        );
        let short = format!("{{\"0\": \"{}\"}}", "ab".repeat(32));
        assert!(MockNsmConfig::pcrs_from_json(&short).is_err());
        assert!(MockNsmConfig::pcrs_from_json("{\"16\": \"00\"}").is_err());
    }

    #[test]
    fn describe_pcr_reports_values_and_locks() {
        let nsm = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
        let pcr0 = nsm.describe_pcr(0).unwrap();
        assert!(pcr0.locked);
        assert_eq!(pcr0.data, MockNsmConfig::default().pcrs[&0]);
        assert!(!nsm.describe_pcr(5).unwrap().locked);
        assert_eq!(nsm.describe_pcr(5).unwrap().data, vec![0; 48]);
        assert!(matches!(
            nsm.describe_pcr(16),
            Err(NsmError::InvalidPcrIndex(16))
        ));
    }

    #[test]
    fn random_bytes_differ() {
        let nsm = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
        let a = nsm.random(32).unwrap();
        let b = nsm.random(32).unwrap();
        assert_ne!(*a, *b);
    }

    #[test]
    fn state_persists_and_rejects_a_mismatched_key() {
        let dir = std::env::temp_dir().join(format!("mock-nsm-test-{}", random_hex(6).unwrap()));
        let a = MockNsm::open_or_create(&dir, MockNsmConfig::default()).unwrap();
        let b = MockNsm::open_or_create(&dir, MockNsmConfig::default()).unwrap();
        assert_eq!(a.root_pem().unwrap(), b.root_pem().unwrap());
        assert_eq!(
            fs::read_to_string(dir.join(ROOT_PEM_FILE)).unwrap(),
            a.root_pem().unwrap()
        );
        // A state file whose key is not the certificate's is refused, not silently used.
        let other = new_key().unwrap().to_pkcs8_pem(LineEnding::LF).unwrap();
        let text = format!("{}{}", &*other, a.root_pem().unwrap());
        fs::write(dir.join(STATE_FILE), text).unwrap();
        assert!(matches!(
            MockNsm::open_or_create(&dir, MockNsmConfig::default()),
            Err(NsmError::State(_))
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
