//! The verifier: which enclaves to trust, and whether an answer comes from one of them.
//! Pure apart from the clock: bytes in, decisions out, so services with their own HTTP
//! stack can use it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strongroom_attestation::{Expectations, MAX_CLOCK_SKEW, TrustedRoot, parse_pcr_file, verify};
use strongroom_identity::{AnswerSignature, IdentityPublic, UserData, answer_request_digest};

use crate::error::ClientError;
use crate::heads::HeadBook;

/// Default oldest attestation document accepted, measured from its timestamp. The client
/// fetches documents with a fresh nonce, so this mostly bounds clock disagreement.
pub const DEFAULT_MAX_DOCUMENT_AGE: Duration = Duration::from_secs(300);

/// Default oldest answer accepted, from the enclave's signing time. Reads carry no stamp,
/// so their request digest repeats; without an age limit the parent could keep serving an
/// old signed answer (a key list, a policy) for ever.
pub const DEFAULT_MAX_ANSWER_AGE: Duration = Duration::from_secs(300);

/// Shortest nonce accepted: a challenge must be unpredictable.
pub const MIN_NONCE_LEN: usize = 16;

/// Most identities remembered; the oldest verified is forgotten first. Each boot of the
/// enclave makes one identity, so this is many restarts' worth.
const MAX_IDENTITIES: usize = 64;

/// An identity key that a verified attestation document binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// The Ed25519 key that signs this boot's answers.
    pub identity: IdentityPublic,
    /// Everything the document's user data says: root-key check value, genesis, current
    /// admin-set and policy digests at the document's time.
    pub user_data: UserData,
    /// The document's PCRs by index.
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// The NSM module id (which enclave).
    pub module_id: String,
    /// When the NSM made the document.
    pub document_time: SystemTime,
    /// When this verifier accepted it.
    pub verified_at: SystemTime,
}

/// An answer whose signature verified under an attested identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAnswer {
    /// The signature, as parsed from the header.
    pub signature: AnswerSignature,
    /// The identity that signed, as its attestation document showed it.
    pub identity: VerifiedIdentity,
    /// The HTTP status the signature covers.
    pub status: u16,
}

/// Which enclaves to trust, and the identities already found to be theirs.
///
/// Built from the expected PCRs (an enclave image's measurements), or several sets of them
/// (releases, during an upgrade: [`Verifier::also_trust`], [`Verifier::for_releases`]) of
/// which a document must match one completely; the root is the AWS
/// Nitro Enclaves Root G1 unless [`Verifier::with_root`] names another (mock mode).
/// Thread-safe: one verifier can serve many clients and threads.
#[derive(Debug)]
pub struct Verifier {
    root: TrustedRoot,
    /// The trusted releases: each a complete set of PCR values; never empty, no duplicates.
    releases: Vec<BTreeMap<u8, Vec<u8>>>,
    genesis: Option<[u8; 32]>,
    key_check: Option<[u8; 16]>,
    max_document_age: Duration,
    max_answer_age: Duration,
    allow_debug: bool,
    identities: RwLock<HashMap<IdentityPublic, VerifiedIdentity>>,
    heads: Option<std::sync::Arc<HeadBook>>,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Verifier {
    /// Trusts enclaves whose documents carry these PCR values (index → value), chained to
    /// the AWS root. Refuses an empty set, which would trust every enclave.
    pub fn new(expected_pcrs: BTreeMap<u16, Vec<u8>>) -> Result<Self, ClientError> {
        Ok(Self {
            root: TrustedRoot::aws_nitro_g1(),
            releases: vec![pcr_set(expected_pcrs)?],
            genesis: None,
            key_check: None,
            max_document_age: DEFAULT_MAX_DOCUMENT_AGE,
            max_answer_age: DEFAULT_MAX_ANSWER_AGE,
            allow_debug: false,
            identities: RwLock::new(HashMap::new()),
            heads: None,
        })
    }

    /// Trusts enclaves whose documents carry all the PCR values of one of these releases
    /// (during an upgrade: the running one and the next). A document mixing two releases'
    /// values matches none. Refuses an empty list, or an empty set in it.
    pub fn for_releases(
        releases: impl IntoIterator<Item = BTreeMap<u16, Vec<u8>>>,
    ) -> Result<Self, ClientError> {
        let mut releases = releases.into_iter();
        let first = releases.next().ok_or(ClientError::NoExpectedPcrs)?;
        releases.try_fold(Self::new(first)?, Self::also_trust)
    }

    /// The genesis digest this verifier pins, if any: stamps made with it are bound to it.
    pub fn pinned_genesis(&self) -> Option<[u8; 32]> {
        self.genesis
    }

    /// Remembers the audit head of every answer this verifier accepts in `heads` and
    /// refuses answers from an enclave whose log was rolled back or forked against them
    /// ([`HeadBook`]).
    pub fn with_heads(mut self, heads: std::sync::Arc<HeadBook>) -> Self {
        self.heads = Some(heads);
        self
    }

    /// Also trusts enclaves whose documents carry all these PCR values (another release),
    /// besides the sets already trusted; a set already trusted is not added twice.
    pub fn also_trust(
        mut self,
        expected_pcrs: BTreeMap<u16, Vec<u8>>,
    ) -> Result<Self, ClientError> {
        let set = pcr_set(expected_pcrs)?;
        if !self.releases.contains(&set) {
            self.releases.push(set);
        }
        Ok(self)
    }

    /// Trusts the PCRs in a file: what `nitro-cli build-enclave` prints, `{"PCR0": …}`, or
    /// the mock enclave's `{"0": …}` (see `strongroom_attestation::parse_pcr_file`).
    pub fn from_pcr_file(text: &str) -> Result<Self, ClientError> {
        Self::new(parse_pcr_file(text)?)
    }

    /// Trusts documents chained to `root` instead of the AWS root (mock mode's
    /// `<data-dir>/mock-nsm/root.pem`).
    pub fn with_root(mut self, root: TrustedRoot) -> Self {
        self.root = root;
        self
    }

    /// Requires this genesis digest in the documents' user data: refuses an enclave that
    /// was booted, as a first boot, with a genesis the parent chose.
    ///
    /// This alone does **not** pin a deployment: the parent holds the genesis document, so
    /// it can first-boot a fresh enclave with the real genesis and a root key of its own,
    /// and every key created there is the parent's. Pin the root-key check value too
    /// ([`Verifier::expect_deployment`]), or keep a state file ([`Verifier::with_heads`]),
    /// which refuses a genesis seen before with another root key.
    pub fn expect_genesis(mut self, digest: [u8; 32]) -> Self {
        self.genesis = Some(digest);
        self
    }

    /// Requires this root-key check value: refuses an enclave unsealed with another root key.
    /// Alone it does not pin a deployment either (the parent can first-boot the real root
    /// key with a genesis of its own): see [`Verifier::expect_deployment`].
    pub fn expect_key_check(mut self, check: [u8; 16]) -> Self {
        self.key_check = Some(check);
        self
    }

    /// Pins one deployment: its genesis digest and its root-key check value, both published
    /// by its operators at the first boot (`strongroom attestation fetch` prints them).
    pub fn expect_deployment(self, genesis: [u8; 32], key_check: [u8; 16]) -> Self {
        self.expect_genesis(genesis).expect_key_check(key_check)
    }

    /// Whether both halves of a deployment are pinned explicitly. Without that the
    /// verifier trusts a deployment on first use when it keeps a state file
    /// ([`Verifier::with_heads`]), and any deployment of the trusted images when it does not.
    pub fn pins_deployment(&self) -> bool {
        self.genesis.is_some() && self.key_check.is_some()
    }

    /// Refuses documents older than this (default [`DEFAULT_MAX_DOCUMENT_AGE`]).
    pub fn max_document_age(mut self, age: Duration) -> Self {
        self.max_document_age = age;
        self
    }

    /// Refuses answers signed longer ago than this (default [`DEFAULT_MAX_ANSWER_AGE`]).
    pub fn max_answer_age(mut self, age: Duration) -> Self {
        self.max_answer_age = age;
        self
    }

    /// Accepts debug-mode documents (PCR0 all zeros): a debug enclave's memory is open to
    /// the parent, so its answers prove nothing. Never in production.
    pub fn allow_debug(mut self, allow: bool) -> Self {
        self.allow_debug = allow;
        self
    }

    /// The trusted root.
    pub fn root(&self) -> &TrustedRoot {
        &self.root
    }

    /// The trusted releases, in the order given: each the PCR values (by index) a
    /// document must carry all of. One set unless [`Verifier::also_trust`] added others.
    pub fn expected_pcrs(&self) -> &[BTreeMap<u8, Vec<u8>>] {
        &self.releases
    }

    /// Verifies an attestation document (COSE_Sign1 bytes) fetched with `expected_nonce`:
    /// the chain to the trusted root, the expected PCRs (all of one trusted release's), the
    /// nonce, its age, no debug mode
    /// (unless allowed), then the user data and the pinned genesis and key-check values,
    /// and, with a state file, the known deployments ([`HeadBook::admit`]; no endpoint:
    /// see [`Verifier::verify_attestation_from`]).
    /// The identity it names is remembered, so answers it signs verify from then on.
    pub fn verify_attestation(
        &self,
        document: &[u8],
        expected_nonce: &[u8],
    ) -> Result<VerifiedIdentity, ClientError> {
        self.verify_attestation_from(document, expected_nonce, None)
    }

    /// [`Verifier::verify_attestation`] for a document fetched from `endpoint` (the
    /// server's base URL), which the known deployments also remember: a deployment that
    /// answered there first is the only one accepted there later, unless pinned.
    pub fn verify_attestation_from(
        &self,
        document: &[u8],
        expected_nonce: &[u8],
        endpoint: Option<&str>,
    ) -> Result<VerifiedIdentity, ClientError> {
        if expected_nonce.len() < MIN_NONCE_LEN {
            return Err(ClientError::NonceTooShort {
                len: expected_nonce.len(),
                min: MIN_NONCE_LEN,
            });
        }
        let now = SystemTime::now();
        let exp = Expectations::new(now)
            .root(self.root.clone())
            .nonce(expected_nonce.to_vec())
            .max_age(self.max_document_age)
            .allow_debug(self.allow_debug)
            .releases(self.releases.iter().cloned());
        let verified = verify(document, &exp).map_err(ClientError::Attestation)?;
        let bytes = verified
            .document
            .user_data
            .as_deref()
            .ok_or(ClientError::MissingUserData)?;
        let user_data = UserData::decode(bytes).map_err(ClientError::UserData)?;
        if let Some(expected) = self.genesis
            && expected != user_data.genesis
        {
            return Err(ClientError::GenesisMismatch {
                expected: hex::encode(expected),
                found: hex::encode(user_data.genesis),
            });
        }
        if let Some(expected) = self.key_check
            && expected != user_data.key_check
        {
            return Err(ClientError::KeyCheckMismatch {
                expected: hex::encode(expected),
                found: hex::encode(user_data.key_check),
            });
        }
        if let Some(heads) = &self.heads {
            heads.admit(endpoint, &user_data, self.pins_deployment())?;
        }
        let identity = VerifiedIdentity {
            identity: user_data.identity,
            user_data,
            pcrs: verified.document.pcrs.clone(),
            module_id: verified.document.module_id.clone(),
            document_time: verified.timestamp(),
            verified_at: now,
        };
        self.remember(identity.clone());
        Ok(identity)
    }

    fn remember(&self, identity: VerifiedIdentity) {
        // A panic elsewhere while holding the lock cannot leave the map half-updated in a
        // way that matters (entries are whole values), so a poisoned lock is still usable.
        let mut map = self
            .identities
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(&identity.identity) && map.len() >= MAX_IDENTITIES {
            let oldest = map
                .values()
                .min_by_key(|v| v.verified_at)
                .map(|v| v.identity);
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
        map.insert(identity.identity, identity);
    }

    /// The verified identity for this public key, if a document named it.
    pub fn identity(&self, identity: &IdentityPublic) -> Option<VerifiedIdentity> {
        self.identities
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(identity)
            .cloned()
    }

    /// Forgets every verified identity (the next answer needs a fresh attestation).
    pub fn forget_identities(&self) {
        self.identities
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Checks an answer to a request: `method`, `path` (with query, exactly as sent), the
    /// request body and stamp header as sent, then the answer's status, its
    /// `X-Strongroom-Answer` header and body as received.
    ///
    /// Refuses a missing or malformed header, a signature that does not cover exactly
    /// this request, status and body, an answer older than the maximum age, and an identity
    /// no verified document names ([`ClientError::UnknownIdentity`]: fetch an attestation
    /// document, [`Verifier::verify_attestation`] it, and check again once).
    // The parts of one HTTP exchange, in the order they happen; a struct would only move
    // the same seven names into a literal at every call site.
    #[allow(clippy::too_many_arguments)]
    pub fn check_answer(
        &self,
        method: &str,
        path: &str,
        request_body: &[u8],
        stamp: Option<&str>,
        status: u16,
        header: Option<&str>,
        response_body: &[u8],
    ) -> Result<VerifiedAnswer, ClientError> {
        let header = header.ok_or(ClientError::MissingAnswerSignature { status })?;
        let signature =
            AnswerSignature::parse(header).map_err(ClientError::MalformedAnswerSignature)?;
        let digest = answer_request_digest(method, path, request_body, stamp);
        signature
            .verify(&digest, status, response_body)
            .map_err(ClientError::BadAnswerSignature)?;
        let identity = self
            .identity(&signature.identity)
            .ok_or(ClientError::UnknownIdentity(signature.identity))?;
        let now = unix_secs(SystemTime::now());
        if signature.time > now + MAX_CLOCK_SKEW.as_secs() {
            return Err(ClientError::AnswerFromFuture {
                ahead_secs: signature.time - now,
            });
        }
        let age = now.saturating_sub(signature.time);
        if age > self.max_answer_age.as_secs() {
            return Err(ClientError::StaleAnswer {
                age_secs: age,
                max_secs: self.max_answer_age.as_secs(),
            });
        }
        if let Some(heads) = &self.heads {
            heads.observe(&identity.user_data, &signature.identity, &signature.head)?;
        }
        Ok(VerifiedAnswer {
            signature,
            identity,
            status,
        })
    }
}

/// A set of expected PCRs by index: not empty, indexes in 0..32.
fn pcr_set(expected_pcrs: BTreeMap<u16, Vec<u8>>) -> Result<BTreeMap<u8, Vec<u8>>, ClientError> {
    if expected_pcrs.is_empty() {
        return Err(ClientError::NoExpectedPcrs);
    }
    expected_pcrs
        .into_iter()
        .map(|(index, value)| {
            let i = u8::try_from(index)
                .ok()
                .filter(|i| *i < 32)
                .ok_or(ClientError::PcrIndex(index))?;
            Ok((i, value))
        })
        .collect()
}

/// A fresh 32-byte nonce for an attestation request, from the operating system.
pub fn random_nonce() -> Result<[u8; 32], ClientError> {
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|e| ClientError::Randomness(e.to_string()))?;
    Ok(nonce)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
    use strongroom_attestation::{AttestationRequest, Nsm, VerifyError};
    use strongroom_identity::IdentityKey;

    fn user_data(identity: &IdentityKey) -> UserData {
        UserData {
            key_check: [1; 16],
            genesis: [2; 32],
            admins: [3; 32],
            policy: [4; 32],
            identity: identity.public(),
            boot_seq: 0,
            replica: strongroom_identity::ReplicaName::SINGLE,
        }
    }

    struct Fixture {
        nsm: MockNsm,
        key: IdentityKey,
        nonce: Vec<u8>,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                nsm: MockNsm::ephemeral(MockNsmConfig::default()).unwrap(),
                key: IdentityKey::from_seed(&[9; 32]),
                nonce: vec![0x5a; 32],
            }
        }

        fn verifier(&self) -> Verifier {
            let pcrs = MockNsmConfig::default().pcrs;
            Verifier::new(pcrs)
                .unwrap()
                .with_root(self.nsm.trusted_root())
        }

        fn document(&self, user_data: Option<Vec<u8>>, at: SystemTime) -> Vec<u8> {
            let request = AttestationRequest {
                user_data,
                nonce: Some(self.nonce.clone()),
                public_key: None,
            };
            self.nsm.attestation_at(&request, at).unwrap()
        }

        fn good_document(&self) -> Vec<u8> {
            self.document(Some(user_data(&self.key).encode()), SystemTime::now())
        }

        fn sign(&self, status: u16, time: u64, body: &[u8]) -> String {
            let digest = answer_request_digest("GET", "/v1/keys", b"", None);
            let head = strongroom_identity::Head {
                seq: 3,
                hash: [3; 32],
            };
            AnswerSignature::sign(&self.key, &digest, status, time, head, body).to_header()
        }
    }

    fn now() -> u64 {
        unix_secs(SystemTime::now())
    }

    #[test]
    fn an_attested_identity_verifies_its_answers() {
        let f = Fixture::new();
        let v = f.verifier();
        let header = f.sign(200, now(), b"{}");
        assert!(matches!(
            v.check_answer("GET", "/v1/keys", b"", None, 200, Some(&header), b"{}"),
            Err(ClientError::UnknownIdentity(id)) if id == f.key.public()
        ));
        let identity = v.verify_attestation(&f.good_document(), &f.nonce).unwrap();
        assert_eq!(identity.identity, f.key.public());
        assert_eq!(identity.user_data.genesis, [2; 32]);
        let answer = v
            .check_answer("GET", "/v1/keys", b"", None, 200, Some(&header), b"{}")
            .unwrap();
        assert_eq!(answer.identity.identity, f.key.public());
        assert_eq!(answer.status, 200);
        // Bound to the request: the same answer for another path is refused.
        assert!(matches!(
            v.check_answer("GET", "/v1/policy", b"", None, 200, Some(&header), b"{}"),
            Err(ClientError::BadAnswerSignature(_))
        ));
        v.forget_identities();
        assert!(v.identity(&f.key.public()).is_none());
    }

    #[test]
    fn missing_malformed_old_and_future_answers_are_refused() {
        let f = Fixture::new();
        let v = f.verifier();
        v.verify_attestation(&f.good_document(), &f.nonce).unwrap();
        let check =
            |header: Option<&str>| v.check_answer("GET", "/v1/keys", b"", None, 200, header, b"{}");
        assert!(matches!(
            check(None),
            Err(ClientError::MissingAnswerSignature { status: 200 })
        ));
        assert!(matches!(
            check(Some("v1;identity=zz")),
            Err(ClientError::MalformedAnswerSignature(_))
        ));
        let old = f.sign(200, now() - 301, b"{}");
        assert!(matches!(
            check(Some(&old)),
            Err(ClientError::StaleAnswer { max_secs: 300, .. })
        ));
        let future = f.sign(200, now() + 3600, b"{}");
        assert!(matches!(
            check(Some(&future)),
            Err(ClientError::AnswerFromFuture { .. })
        ));
        // Within the limits it passes, so the refusals above are about the time alone.
        assert!(check(Some(&f.sign(200, now() - 250, b"{}"))).is_ok());
    }

    #[test]
    fn documents_that_do_not_match_the_expectations_are_refused() {
        let f = Fixture::new();
        let v = f.verifier();
        // Another nonce: a replayed document.
        assert!(matches!(
            v.verify_attestation(&f.good_document(), &[0x11; 32]),
            Err(ClientError::Attestation(VerifyError::FieldMismatch {
                field: "nonce",
                ..
            }))
        ));
        assert!(matches!(
            v.verify_attestation(&f.good_document(), &[0x11; 8]),
            Err(ClientError::NonceTooShort { len: 8, .. })
        ));
        // Made an hour ago.
        let old = f.document(
            Some(user_data(&f.key).encode()),
            SystemTime::now() - Duration::from_secs(3600),
        );
        assert!(matches!(
            v.verify_attestation(&old, &f.nonce),
            Err(ClientError::Attestation(VerifyError::TooOld { .. }))
        ));
        assert!(matches!(
            v.verify_attestation(&f.document(None, SystemTime::now()), &f.nonce),
            Err(ClientError::MissingUserData)
        ));
        assert!(matches!(
            v.verify_attestation(&f.document(Some(vec![0xa0]), SystemTime::now()), &f.nonce),
            Err(ClientError::UserData(_))
        ));
        // Another root: the AWS root by default.
        let aws = Verifier::new(MockNsmConfig::default().pcrs).unwrap();
        assert!(matches!(
            aws.verify_attestation(&f.good_document(), &f.nonce),
            Err(ClientError::Attestation(VerifyError::RootMismatch { .. }))
        ));
        assert!(v.identity(&f.key.public()).is_none(), "nothing cached");
    }

    #[test]
    fn pinned_genesis_and_key_check_are_enforced() {
        let f = Fixture::new();
        let doc = f.good_document();
        let wrong_genesis = f.verifier().expect_genesis([7; 32]);
        assert!(matches!(
            wrong_genesis.verify_attestation(&doc, &f.nonce),
            Err(ClientError::GenesisMismatch { .. })
        ));
        let wrong_check = f.verifier().expect_key_check([7; 16]);
        assert!(matches!(
            wrong_check.verify_attestation(&doc, &f.nonce),
            Err(ClientError::KeyCheckMismatch { .. })
        ));
        let right = f
            .verifier()
            .expect_genesis([2; 32])
            .expect_key_check([1; 16]);
        right.verify_attestation(&doc, &f.nonce).unwrap();
        assert!(wrong_genesis.identity(&f.key.public()).is_none());
    }

    #[test]
    fn expected_pcrs_must_be_given_and_in_range() {
        assert!(matches!(
            Verifier::new(BTreeMap::new()),
            Err(ClientError::NoExpectedPcrs)
        ));
        assert!(matches!(
            Verifier::new(BTreeMap::from([(32, vec![0; 48])])),
            Err(ClientError::PcrIndex(32))
        ));
        let h = "ab".repeat(48);
        let v = Verifier::from_pcr_file(&format!(r#"{{"PCR0": "{h}", "PCR8": "{h}"}}"#)).unwrap();
        assert_eq!(
            v.expected_pcrs()[0].keys().copied().collect::<Vec<_>>(),
            [0, 8]
        );
        assert_eq!(v.expected_pcrs().len(), 1);
        assert!(matches!(
            Verifier::for_releases(Vec::new()),
            Err(ClientError::NoExpectedPcrs)
        ));
        assert!(matches!(
            Verifier::new(BTreeMap::from([(0, vec![1; 48])]))
                .unwrap()
                .also_trust(BTreeMap::new()),
            Err(ClientError::NoExpectedPcrs)
        ));
        assert!(matches!(
            Verifier::from_pcr_file("{}"),
            Err(ClientError::PcrFile(_))
        ));
        assert_eq!(
            v.root().fingerprint(),
            strongroom_attestation::AWS_ROOT_G1_SHA256
        );
    }

    type Pcrs = BTreeMap<u16, Vec<u8>>;

    /// Two releases' mock NSMs sharing one root: A (the default PCRs) and B (all three
    /// PCRs different), and the document of each for `f`'s identity and nonce.
    fn two_releases(f: &Fixture) -> (TrustedRoot, [Pcrs; 2], [Vec<u8>; 2]) {
        let dir = std::env::temp_dir().join(format!(
            "strongroom-verifier-releases-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let a = MockNsmConfig::default();
        let mut b = a.clone();
        for (i, v) in &mut b.pcrs {
            *v = vec![0xb0 + *i as u8; 48];
        }
        let nsm_a = MockNsm::open_or_create(&dir, a.clone()).unwrap();
        let nsm_b = MockNsm::open_or_create(&dir, b.clone()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let request = AttestationRequest {
            user_data: Some(user_data(&f.key).encode()),
            nonce: Some(f.nonce.clone()),
            public_key: None,
        };
        let doc = |nsm: &MockNsm| nsm.attestation_at(&request, SystemTime::now()).unwrap();
        let docs = [doc(&nsm_a), doc(&nsm_b)];
        (nsm_a.trusted_root(), [a.pcrs, b.pcrs], docs)
    }

    #[test]
    fn documents_of_either_trusted_release_verify_and_a_mix_never() {
        let f = Fixture::new();
        let (root, [a, b], [doc_a, doc_b]) = two_releases(&f);
        let both = Verifier::for_releases([a.clone(), b.clone()])
            .unwrap()
            .with_root(root.clone());
        assert_eq!(both.expected_pcrs().len(), 2);
        both.verify_attestation(&doc_a, &f.nonce).unwrap();
        both.verify_attestation(&doc_b, &f.nonce).unwrap();
        // The same with also_trust, in the other order.
        let both = Verifier::new(b.clone())
            .unwrap()
            .also_trust(a.clone())
            .unwrap()
            .also_trust(b.clone())
            .unwrap()
            .with_root(root.clone());
        assert_eq!(both.expected_pcrs().len(), 2, "no duplicate release");
        both.verify_attestation(&doc_a, &f.nonce).unwrap();
        both.verify_attestation(&doc_b, &f.nonce).unwrap();

        // A alone: B's document is refused, as with one set today (its first difference).
        let only_a = Verifier::new(a.clone()).unwrap().with_root(root.clone());
        only_a.verify_attestation(&doc_a, &f.nonce).unwrap();
        assert!(matches!(
            only_a.verify_attestation(&doc_b, &f.nonce),
            Err(ClientError::Attestation(VerifyError::PcrMismatch {
                index: 0,
                ..
            }))
        ));
        assert!(only_a.identity(&f.key.public()).is_some());

        // Sets mixing the two releases (A's PCR0 with B's PCR1 and PCR2, and so on) trust
        // neither document, alone or together, even with a third, unrelated set.
        let mix = |from_b: &[u16]| -> BTreeMap<u16, Vec<u8>> {
            a.iter()
                .map(|(i, v)| {
                    (
                        *i,
                        if from_b.contains(i) {
                            b[i].clone()
                        } else {
                            v.clone()
                        },
                    )
                })
                .collect()
        };
        let mixes = [mix(&[0]), mix(&[1]), mix(&[2]), mix(&[1, 2]), mix(&[0, 2])];
        let unrelated = BTreeMap::from([(0, vec![7; 48]), (1, vec![7; 48]), (2, vec![7; 48])]);
        let v = Verifier::for_releases(mixes.iter().cloned().chain([unrelated]))
            .unwrap()
            .with_root(root.clone());
        for doc in [&doc_a, &doc_b] {
            let e = v.verify_attestation(doc, &f.nonce).unwrap_err();
            let ClientError::Attestation(VerifyError::NoTrustedRelease(differences)) = &e else {
                panic!("{e}");
            };
            assert_eq!(differences.len(), 6);
            let text = e.to_string();
            assert!(
                text.contains("match none of the 6 trusted releases")
                    && text.contains("release 1: PCR")
                    && text.contains("release 6: PCR0 is"),
                "{text}"
            );
        }
        assert!(v.identity(&f.key.public()).is_none(), "nothing cached");

        // Two releases trusted, a document of neither: both differences named.
        let c = BTreeMap::from([
            (0, vec![0xc0; 48]),
            (1, vec![0xc1; 48]),
            (2, vec![0xc2; 48]),
        ]);
        let e = Verifier::for_releases([b, c])
            .unwrap()
            .with_root(root)
            .verify_attestation(&doc_a, &f.nonce)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("none of the 2 trusted releases")
                && e.contains(&format!(
                    "release 1: PCR0 is {}, expected {}",
                    hex::encode(&a[&0]),
                    "b0".repeat(48)
                ))
                && e.contains(&format!(
                    "release 2: PCR0 is {}, expected {}",
                    hex::encode(&a[&0]),
                    "c0".repeat(48)
                )),
            "{e}"
        );
    }

    #[test]
    fn the_cache_keeps_the_newest_identities() {
        let f = Fixture::new();
        let v = f.verifier();
        let first = IdentityKey::from_seed(&[0; 32]).public();
        for i in 0..=MAX_IDENTITIES {
            let key = IdentityKey::from_seed(&[i as u8; 32]);
            v.remember(VerifiedIdentity {
                identity: key.public(),
                user_data: user_data(&key),
                pcrs: BTreeMap::new(),
                module_id: String::new(),
                document_time: UNIX_EPOCH,
                verified_at: UNIX_EPOCH + Duration::from_secs(i as u64),
            });
        }
        assert!(v.identity(&first).is_none(), "the oldest was forgotten");
        let last = IdentityKey::from_seed(&[MAX_IDENTITIES as u8; 32]).public();
        assert!(v.identity(&last).is_some());
        assert_eq!(
            v.identities.read().unwrap().len(),
            MAX_IDENTITIES,
            "bounded"
        );
    }

    #[test]
    fn nonces_are_fresh() {
        assert_ne!(random_nonce().unwrap(), random_nonce().unwrap());
    }
}
