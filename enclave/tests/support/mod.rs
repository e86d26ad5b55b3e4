//! Test harness: an enclave on a mock NSM, unsealed with a real CMS envelope, with a
//! genesis of three admins (2 of 3) and one principal, and a `Proxy` that relays stamped
//! calls and stores their effects the way the parent proxy does.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_bytes::ByteBuf;
use serde_json::{Value, json};
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_attestation::{Expectations, Nsm, TrustedRoot, verify};
use strongroom_auth::{Request as StampedRequest, SigningKey, Stamp};
use strongroom_enclave::Enclave;
use strongroom_envelope::seal_for_recipient;
use strongroom_identity::{AnswerSignature, AuditEntry, IdentityPublic, answer_request_digest};
use strongroom_protocol::messages::{
    Answer, AuditRecord, Call, CompleteUnseal, ErrorCode, Request, Response, SNAPSHOT_CHUNK_LEN,
    SealedKey,
};

/// Development keys: the principal "dev", a second principal "ops" (an approver), three
/// admins.
pub struct Keys {
    pub dev: SigningKey,
    pub ops: SigningKey,
    pub admins: [SigningKey; 3],
    pub stranger: SigningKey,
}

impl Keys {
    pub fn new() -> Self {
        Self {
            dev: SigningKey::ed25519_from_seed(&[1; 32]),
            ops: SigningKey::p256_from_bytes(&[2; 32]).unwrap(),
            admins: [
                SigningKey::ed25519_from_seed(&[11; 32]),
                SigningKey::ed25519_from_seed(&[12; 32]),
                SigningKey::p256_from_bytes(&[13; 32]).unwrap(),
            ],
            stranger: SigningKey::ed25519_from_seed(&[99; 32]),
        }
    }
}

pub fn spec(key: &SigningKey) -> Value {
    let public = key.public();
    let algorithm = match public.algorithm() {
        strongroom_auth::Algorithm::Ed25519 => "ed25519",
        strongroom_auth::Algorithm::EcdsaP256 => "ecdsa-p256",
    };
    json!({"algorithm": algorithm, "public": hex::encode(public.public_bytes())})
}

/// The principals section for `keys`.
pub fn principals(keys: &Keys) -> Value {
    json!([
        {"id": "dev", "roles": ["signer"], "keys": [spec(&keys.dev)]},
        {"id": "ops", "roles": ["approver"], "keys": [spec(&keys.ops)]},
    ])
}

/// The mock-mode development policy (README walk-through) plus an approval rule.
pub fn dev_rules() -> Value {
    json!([
        {"name": "dev-create-keys", "effect": "allow", "principals": ["dev"], "actions": ["create_key", "destroy_key"]},
        {"name": "dev-transactions", "effect": "allow", "principals": ["dev"], "actions": ["sign_transaction"],
         "conditions": {"chain_ids": [1, 11155111], "max_value": "1 ether",
                        "velocity": [{"scope": "key", "window": "24h", "max_value": "5 ether"}]}},
        {"name": "dev-typed-data", "effect": "allow", "principals": ["dev"], "actions": ["sign_typed_data"],
         "conditions": {"typed_data": {"allow_unknown_types": true}}},
        {"name": "dev-messages", "effect": "allow", "principals": ["dev"], "actions": ["sign_message"]},
        {"name": "dev-digests", "effect": "allow", "principals": ["dev"], "actions": ["sign_digest"]},
        {"name": "big-sepolia", "effect": "allow", "principals": ["dev"], "actions": ["sign_transaction"],
         "conditions": {"chain_ids": [11155111], "max_value": "100 ether",
                        "approvals": {"threshold": 1, "approvers": ["ops"]}}}
    ])
}

pub fn policy(keys: &Keys, rules: Value) -> Value {
    json!({"version": 1, "principals": principals(keys), "rules": rules})
}

pub fn genesis(keys: &Keys, rules: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": 1,
        "admins": {"threshold": 2, "keys": keys.admins.iter().map(spec).collect::<Vec<_>>()},
        "policy": policy(keys, rules),
    }))
    .unwrap()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A stamp header for the request, valid for the full window.
pub fn stamp(key: &SigningKey, method: &str, path: &str, body: &[u8]) -> String {
    stamp_at(key, method, path, body, now() + 300)
}

static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub fn stamp_at(key: &SigningKey, method: &str, path: &str, body: &[u8], expires: u64) -> String {
    let mut nonce = vec![0u8; 16];
    nonce[..8].copy_from_slice(
        &NONCE
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_be_bytes(),
    );
    nonce[8..].copy_from_slice(&std::process::id().to_be_bytes().repeat(2));
    Stamp::sign(key, StampedRequest { method, path, body }, nonce, expires).to_header()
}

pub fn nsm() -> MockNsm {
    MockNsm::ephemeral(MockNsmConfig::default()).unwrap()
}

pub fn code(r: Response) -> ErrorCode {
    match r {
        Response::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// What the proxy keeps between boots besides the audit chain.
#[derive(Clone, Debug)]
pub struct Stored {
    pub key_check: Vec<u8>,
    /// The newest sealed snapshot the proxy took.
    pub snapshot: Vec<u8>,
    /// Its position: the sequence number of the first record after it.
    pub snapshot_seq: u64,
}

/// Plays KMS for one BeginUnseal: checks the document, wraps `root` for its RSA key.
pub fn challenge(enclave: &Enclave<MockNsm>, trusted: &TrustedRoot, root: &[u8]) -> Vec<u8> {
    let Response::UnsealChallenge {
        attestation_document,
    } = enclave.handle(Request::BeginUnseal)
    else {
        panic!("no challenge")
    };
    let doc = verify(
        &attestation_document,
        &Expectations::new(SystemTime::now()).root(trusted.clone()),
    )
    .unwrap();
    let spki = doc.document.public_key.expect("RSA key in the document");
    seal_for_recipient(&spki, root).unwrap()
}

/// The lines of a chain as the records the proxy replays (line `i` is record `i`).
pub fn records(chain: &[String]) -> Vec<AuditRecord> {
    chain
        .iter()
        .enumerate()
        .map(|(i, line)| AuditRecord {
            seq: i as u64,
            line: line.clone(),
        })
        .collect()
}

/// An enclave with the trusted root of its NSM.
pub struct Booted {
    pub enclave: Enclave<MockNsm>,
    pub trusted: TrustedRoot,
}

pub fn boot() -> Booted {
    boot_with(|e| e)
}

/// Boots an enclave configured by `configure`.
pub fn boot_with(configure: impl FnOnce(Enclave<MockNsm>) -> Enclave<MockNsm>) -> Booted {
    let nsm = nsm();
    let trusted = nsm.trusted_root();
    Booted {
        enclave: configure(Enclave::new(nsm)),
        trusted,
    }
}

impl Booted {
    /// A first boot (`stored` None, `genesis` given) or a later one from `stored` and the
    /// records `chain` holds after its snapshot, run the way the proxy runs it: challenge,
    /// KMS, snapshot in parts, records in pages, finish. Returns the first refusal, or
    /// the final answer.
    pub fn unseal(&self, root: &[u8], stored: Option<&Stored>, genesis: Option<&[u8]>) -> Response {
        self.unseal_with(root, stored, genesis, &[])
    }

    /// [`Booted::unseal`] replaying the lines of `chain` (line `i` is record `i`) after the
    /// snapshot.
    pub fn unseal_with(
        &self,
        root: &[u8],
        stored: Option<&Stored>,
        genesis: Option<&[u8]>,
        chain: &[String],
    ) -> Response {
        self.unseal_records(root, stored, genesis, &records(chain))
    }

    /// [`Booted::unseal`] offering exactly `records` (those from the asked sequence number
    /// on are sent, in pages of 100).
    pub fn unseal_records(
        &self,
        root: &[u8],
        stored: Option<&Stored>,
        genesis: Option<&[u8]>,
        records: &[AuditRecord],
    ) -> Response {
        let envelope = challenge(&self.enclave, &self.trusted, root);
        let mut answer = self.enclave.handle(Request::CompleteUnseal(CompleteUnseal {
            ciphertext_for_recipient: envelope.into(),
            key_check: stored.map(|s| ByteBuf::from(s.key_check.clone())),
            snapshot_len: stored.map(|s| s.snapshot.len() as u64),
            genesis: genesis.map(|g| ByteBuf::from(g.to_vec())),
            replica: None,
        }));
        if let Some(s) = stored {
            for chunk in s.snapshot.chunks(SNAPSHOT_CHUNK_LEN) {
                if !matches!(answer, Response::SnapshotReceived { .. }) {
                    return answer;
                }
                answer = self.enclave.handle(Request::SnapshotChunk {
                    bytes: chunk.to_vec().into(),
                });
            }
        }
        let Response::ReplayFrom { seq } = answer else {
            return answer;
        };
        let after: Vec<AuditRecord> = records.iter().filter(|r| r.seq >= seq).cloned().collect();
        for page in after.chunks(100) {
            let answer = self.enclave.handle(Request::ReplayRecords {
                records: page.to_vec(),
            });
            if !matches!(answer, Response::ReplayFrom { .. }) {
                return answer;
            }
        }
        self.enclave.handle(Request::FinishBoot)
    }
}

/// Reads a whole snapshot from an unsealed enclave, the way the proxy does.
pub fn read_snapshot(enclave: &Enclave<MockNsm>) -> (u64, Vec<u8>) {
    let mut bytes = Vec::new();
    loop {
        let Response::Snapshot {
            seq,
            total_len,
            offset,
            bytes: part,
        } = enclave.handle(Request::ReadSnapshot {
            offset: bytes.len() as u64,
        })
        else {
            panic!("no snapshot")
        };
        assert_eq!(offset, bytes.len() as u64);
        bytes.extend_from_slice(&part);
        if bytes.len() as u64 == total_len {
            return (seq, bytes);
        }
    }
}

/// The parent proxy's part: relays calls with the blob the path names, stores effects.
pub struct Proxy {
    pub booted: Booted,
    pub stored: Stored,
    pub blobs: HashMap<String, Vec<u8>>,
    pub requests: HashMap<String, String>,
    /// The audit chain as stored: line `i` is entry `i`.
    pub audit: Vec<String>,
    /// The current boot's identity (from its boot entry); every answer must verify under it.
    pub identity: IdentityPublic,
    /// Each boot's trusted attestation root (the mock NSM makes a new one per boot).
    pub roots: Vec<TrustedRoot>,
    /// When set, every call tells the enclave only this many entries are stored (a proxy
    /// whose storage stopped), instead of all it holds.
    pub frozen: Option<u64>,
}

/// The identity a boot entry hands over to.
pub fn boot_identity(line: &str) -> IdentityPublic {
    let entry = AuditEntry::parse_line(line).unwrap();
    let fields = entry.fields().unwrap();
    assert_eq!(fields["kind"], "boot");
    let identity = IdentityPublic::from_hex(fields["identity"].as_str().unwrap()).unwrap();
    entry
        .verify(&identity)
        .expect("boot entry signed by its identity");
    identity
}

/// A call's answer, decoded.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub answer: Answer,
}

impl Reply {
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

impl Proxy {
    /// First boot with `genesis`.
    pub fn first_boot(root: &[u8], genesis: &[u8]) -> Self {
        Self::first_boot_with(root, genesis, |e| e)
    }

    /// First boot of an enclave configured by `configure`.
    pub fn first_boot_with(
        root: &[u8],
        genesis: &[u8],
        configure: impl FnOnce(Enclave<MockNsm>) -> Enclave<MockNsm>,
    ) -> Self {
        let booted = boot_with(configure);
        let Response::Unsealed { key_check, audit } = booted.unseal(root, None, Some(genesis))
        else {
            panic!("first boot failed")
        };
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].seq, 0);
        let (snapshot_seq, snapshot) = read_snapshot(&booted.enclave);
        assert_eq!(
            snapshot_seq, 1,
            "the snapshot after the first boot follows its record"
        );
        Self {
            stored: Stored {
                key_check: key_check.into_vec(),
                snapshot,
                snapshot_seq,
            },
            blobs: HashMap::new(),
            requests: HashMap::new(),
            identity: boot_identity(&audit[0].line),
            audit: vec![audit[0].line.clone()],
            roots: vec![booted.trusted.clone()],
            booted,
            frozen: None,
        }
    }

    /// Takes a snapshot now, as the proxy does every so many records.
    pub fn snapshot(&mut self) {
        let (seq, bytes) = read_snapshot(self.enclave());
        assert_eq!(
            seq,
            self.audit.len() as u64,
            "a snapshot of everything stored"
        );
        self.stored.snapshot = bytes;
        self.stored.snapshot_seq = seq;
    }

    /// A new enclave process unsealed with what was stored: the newest snapshot and the
    /// records after it.
    pub fn restart(&mut self, root: &[u8]) {
        let booted = boot();
        let answer = booted.unseal_with(root, Some(&self.stored), None, &self.audit);
        self.adopt(booted, answer);
    }

    /// Takes a new enclave's boot answer as the proxy does: stores the boot record and a
    /// snapshot.
    pub fn adopt(&mut self, booted: Booted, answer: Response) {
        let Response::Unsealed { key_check, audit } = answer else {
            panic!("restart failed: {answer:?}")
        };
        assert_eq!(key_check.as_slice(), self.stored.key_check.as_slice());
        assert_eq!(audit.len(), 1);
        assert_eq!(
            audit[0].seq,
            self.audit.len() as u64,
            "the boot entry continues the chain"
        );
        self.identity = boot_identity(&audit[0].line);
        self.audit.push(audit[0].line.clone());
        self.roots.push(booted.trusted.clone());
        self.booted = booted;
        self.snapshot();
    }

    pub fn enclave(&self) -> &Enclave<MockNsm> {
        &self.booted.enclave
    }

    fn key_for(&self, path: &str) -> Option<SealedKey> {
        let parts: Vec<&str> = path.split('/').collect();
        let id = match parts.as_slice() {
            ["", "v1", "keys", id, ..] => Some(id.to_string()),
            ["", "v1", "requests", id, "approve" | "execute"] => self.requests.get(*id).cloned(),
            _ => None,
        }?;
        self.blobs.get(&id).map(|b| SealedKey {
            id,
            sealed: b.clone().into(),
        })
    }

    /// Relays a call with an explicit stamp header (or none).
    pub fn raw(&mut self, method: &str, path: &str, body: &[u8], stamp: Option<String>) -> Reply {
        let key = self.key_for(path);
        self.raw_with_key(method, path, body, stamp, key)
    }

    pub fn raw_with_key(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        stamp: Option<String>,
        key: Option<SealedKey>,
    ) -> Reply {
        self.raw_call(Call {
            method: method.into(),
            path: path.into(),
            body: body.to_vec().into(),
            stamp,
            key,
            keys: Vec::new(),
            audit_stored: Some(self.frozen.unwrap_or(self.audit.len() as u64)),
        })
    }

    /// Relays a call as given; checks the answer's signature and stores its effects.
    pub fn raw_call(&mut self, call: Call) -> Reply {
        let digest =
            answer_request_digest(&call.method, &call.path, &call.body, call.stamp.as_deref());
        let response = self.enclave().handle(Request::Call(call));
        let Response::Answer(answer) = response else {
            panic!("not an answer: {response:?}")
        };
        let signature = AnswerSignature::parse(answer.signature.as_deref().expect("signed answer"))
            .expect("well-formed answer signature");
        assert_eq!(
            signature.identity, self.identity,
            "signed by this boot's identity"
        );
        signature
            .verify(&digest, answer.status, &answer.body)
            .expect("answer signature verifies");
        let e = &answer.effects;
        for record in &e.audit {
            assert_eq!(
                record.seq,
                self.audit.len() as u64,
                "audit entries arrive in order"
            );
            self.audit.push(record.line.clone());
        }
        if let Some(k) = &e.key_created {
            self.blobs.insert(k.info.id.clone(), k.sealed.to_vec());
        }
        if let Some(id) = &e.key_destroyed {
            self.blobs.remove(id);
        }
        if let Some(p) = &e.pending_request {
            self.requests.insert(p.request_id.clone(), p.key_id.clone());
        }
        let body = serde_json::from_slice(&answer.body).expect("JSON answer");
        Reply {
            status: answer.status,
            body,
            answer,
        }
    }

    /// A stamped call by `key`.
    pub fn call(&mut self, key: &SigningKey, method: &str, path: &str, body: &Value) -> Reply {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(body).unwrap()
        };
        let header = stamp(key, method, path, &bytes);
        self.raw(method, path, &bytes, Some(header))
    }

    /// Creates a key as `key`; returns its id.
    pub fn create_key_id(&mut self, key: &SigningKey, label: &str) -> String {
        self.create_key(key, label)["id"]
            .as_str()
            .expect("a key id")
            .to_string()
    }

    /// Creates a key as `key`; returns its JSON.
    pub fn create_key(&mut self, key: &SigningKey, label: &str) -> Value {
        let r = self.call(key, "POST", "/v1/keys", &json!({ "label": label }));
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body.clone()
    }
}
