//! `strongroom audit verify|fetch|head` as an auditor runs them, on chains built here as
//! the enclave builds them (boots carrying real mock-NSM attestation documents), from a
//! file and from a stand-in server that serves the chain as the proxy does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Map, Value, json};
use strongroom_attestation::AttestationRequest;
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_identity::{AuditEntry, Checkpoint, GENESIS_PREV, IdentityKey, UserData};
use strongroom_log::{
    By, Decided, DecisionRecord, KeyCreated, KeyDestroyed, PolicyChanged, ProposalApproved,
    ProposalMade, Record, RequestCompleted,
};
use strongroom_policy::{Action, Decision, Intent, Outcome};

const DAY: u64 = 24 * 3600;
/// The key the chains' signatures are made with.
const KEY: &str = "5f0c6a1e2b3d4c5e6f708192a3b4c5d6";
const ADDRESS: &str = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "strongroom-audit-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn strongroom(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// The mock NSM, the files an auditor is given (expected PCRs, the mock root) and the
/// time of the first boot (ahead of now, so the mock's certificates are valid then).
struct World {
    nsm: MockNsm,
    /// The next release's NSM (same root; PCR0 and PCR2 differ, PCR1 is the same kernel).
    next: MockNsm,
    dir: PathBuf,
    pcrs: PathBuf,
    /// The next release's PCR file.
    next_pcrs: PathBuf,
    root: PathBuf,
    t0: u64,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = temp_dir("world");
        let config = MockNsmConfig::default();
        let nsm = MockNsm::open_or_create(&dir.join("nsm"), config.clone()).unwrap();
        let mut next_config = config.clone();
        next_config.pcrs.insert(0, vec![0xd0; 48]);
        next_config.pcrs.insert(2, vec![0xd2; 48]);
        let next = MockNsm::open_or_create(&dir.join("nsm"), next_config.clone()).unwrap();
        let write_pcrs = |name: &str, config: &MockNsmConfig| {
            let pcrs: Map<String, Value> = config
                .pcrs
                .iter()
                .map(|(i, v)| (i.to_string(), json!(hex::encode(v))))
                .collect();
            let path = dir.join(name);
            std::fs::write(&path, Value::Object(pcrs).to_string()).unwrap();
            path
        };
        let pcr_file = write_pcrs("pcrs.json", &config);
        let next_pcrs = write_pcrs("next-pcrs.json", &next_config);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        World {
            nsm,
            next,
            root: dir.join("nsm").join("root.pem"),
            pcrs: pcr_file,
            next_pcrs,
            dir,
            t0: now + 2 * DAY,
        }
    })
}

/// A chain built as the enclave builds it. Each boot's document is made `doc_delay`
/// seconds after the entry's time, as the enclave asks for it moments after it reads its
/// clock; its leaf certificate is not valid yet at the entry's own time.
struct Builder {
    keys: Vec<IdentityKey>,
    lines: Vec<String>,
    seq: u64,
    prev: [u8; 32],
    time: u64,
    /// The next boots are of the next release (the world's `next` NSM).
    next_release: bool,
}

impl Builder {
    fn new() -> Self {
        Self {
            keys: Vec::new(),
            lines: Vec::new(),
            seq: 0,
            prev: GENESIS_PREV,
            time: world().t0,
            next_release: false,
        }
    }

    fn push(&mut self, kind: &str, fields: Value) {
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        let key = self.keys.last().unwrap();
        let (entry, hash) =
            AuditEntry::build(key, self.seq, &self.prev, self.time, kind, fields).unwrap();
        self.lines.push(entry.to_line());
        self.seq += 1;
        self.prev = hash;
    }

    fn boot(&mut self, seed: u8, doc_delay: i64) -> &mut Self {
        if self.seq > 0 {
            self.time = world().t0 + 3 * DAY * self.keys.len() as u64;
        }
        let key = IdentityKey::from_seed(&[seed; 32]);
        let user_data = UserData {
            key_check: [1; 16],
            genesis: [2; 32],
            admins: [3; 32],
            policy: [4; 32],
            identity: key.public(),
            boot_seq: self.seq,
            replica: strongroom_identity::ReplicaName::SINGLE,
        };
        let request = AttestationRequest {
            user_data: Some(user_data.encode()),
            nonce: Some(self.prev.to_vec()),
            public_key: None,
        };
        let made = (self.time as i64 + doc_delay) as u64;
        let nsm = if self.next_release {
            &world().next
        } else {
            &world().nsm
        };
        let doc = nsm
            .attestation_at(&request, UNIX_EPOCH + Duration::from_secs(made))
            .unwrap();
        self.keys.push(key);
        let first = self.seq == 0;
        self.push(
            "boot",
            json!({
                "identity": self.keys.last().unwrap().public().to_string(),
                "attestation": base64::engine::general_purpose::STANDARD.encode(doc),
                "first_boot": first,
            }),
        );
        self
    }

    /// Appends a typed record, a minute after the entry before.
    fn record(&mut self, record: &Record) -> &mut Self {
        self.time += 60;
        let (kind, fields) = record.to_fields().unwrap();
        self.push(kind, Value::Object(fields));
        self
    }

    /// `n` decisions to sign a digest with [`KEY`], each with this outcome.
    fn decided(&mut self, n: u64, outcome: Outcome) -> &mut Self {
        for _ in 0..n {
            let record = Record::Decision(DecisionRecord {
                by: by(self.seq, Some("desk")),
                decided: signing(outcome.clone()),
                request_id: None,
                held: None,
            });
            self.record(&record);
        }
        self
    }

    /// `n` signatures allowed.
    fn decisions(&mut self, n: u64) -> &mut Self {
        self.decided(n, Outcome::Allow)
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint::sign(
            self.keys.last().unwrap(),
            self.seq - 1,
            self.prev,
            self.time + 1,
        )
    }
}

/// A call by `principal` (an admin key without one).
fn by(seq: u64, principal: Option<&str>) -> By {
    By {
        request: hex::encode([seq as u8; 32]),
        principal: principal.map(str::to_owned),
        stamp_key: format!("{}-1", principal.unwrap_or("admin")),
    }
}

/// A blind signature with [`KEY`] and its decision.
fn signing(outcome: Outcome) -> Decided {
    Decided {
        action: Action::SignDigest,
        key: Some(KEY.into()),
        intent: Intent::Digest {
            digest: [7u8; 32].into(),
        },
        decision: Decision {
            outcome,
            rule: Some("digests".into()),
            reason: "within limits".into(),
        },
        output: None,
    }
}

/// Boots at 0, 20 and 40; 60 entries.
fn standard() -> &'static Builder {
    static CHAIN: OnceLock<Builder> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let mut b = Builder::new();
        b.boot(1, 7).decisions(19);
        b.boot(2, 7).decisions(19);
        b.boot(3, -2).decisions(19);
        b
    })
}

fn write_chain(tag: &str, lines: &[String]) -> PathBuf {
    let path = world().dir.join(format!("{tag}.ndjson"));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// `audit verify` with the world's PCR file and root, unless `extra` names others.
fn verify_args<'a>(w: &'a World, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["audit", "verify"];
    for (flag, default) in [
        ("--expect-pcrs", w.pcrs.to_str().unwrap()),
        ("--attestation-root", w.root.to_str().unwrap()),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    args.extend_from_slice(extra);
    args
}

/// Runs `audit verify --from-file` on `lines`: Ok(report) or Err(stderr), checking the
/// exit status and that a refusal prints nothing on stdout.
fn verify_file(tag: &str, lines: &[String], extra: &[&str]) -> Result<Value, String> {
    let path = write_chain(tag, lines);
    let mut args = vec!["--from-file", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    outcome(strongroom(&verify_args(world(), &args), None))
}

fn outcome(out: Output) -> Result<Value, String> {
    let stderr = String::from_utf8(out.stderr).unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing on stdout when refused");
        Err(stderr)
    }
}

#[test]
fn a_chain_across_three_boots_verifies_from_a_file_and_from_stdin() {
    let b = standard();
    let report = verify_file("good", &b.lines, &[]).unwrap();
    assert_eq!(report["verified"], true);
    assert_eq!(report["entries"], 60);
    assert_eq!(report["head"]["seq"], 59);
    let ranges: Vec<(u64, u64)> = report["boots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["first_seq"].as_u64().unwrap(),
                b["last_seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ranges, [(0, 19), (20, 39), (40, 59)]);
    assert_eq!(
        report["boots"][1]["identity"],
        IdentityKey::from_seed(&[2; 32]).public().to_string()
    );
    assert_eq!(report["deployment"]["genesis"], hex::encode([2u8; 32]));
    assert!(report["first_time_utc"].as_str().unwrap().ends_with('Z'));

    let text = b.lines.join("\n") + "\n";
    let out = strongroom(
        &verify_args(world(), &["--from-file", "-"]),
        Some(text.as_bytes()),
    );
    let from_stdin = outcome(out).unwrap();
    assert_eq!(from_stdin["head"], report["head"]);
}

#[test]
fn a_broken_chain_exits_1_naming_the_entry() {
    let lines = &standard().lines;
    let mut deleted = lines.clone();
    deleted.remove(27);
    let err = verify_file("deleted", &deleted, &[]).unwrap_err();
    assert!(
        err.contains(
            "the audit chain breaks: entry 27 is missing (found 28 where 27 was expected, \
             line 28) (entries 0 to 26 verified)"
        ),
        "{err}"
    );

    let mut swapped = lines.clone();
    swapped.swap(30, 31);
    let err = verify_file("swapped", &swapped, &[]).unwrap_err();
    assert!(err.contains("entries out of order at 30"), "{err}");

    let mut twice = lines.clone();
    twice.insert(45, lines[44].clone());
    let err = verify_file("twice", &twice, &[]).unwrap_err();
    assert!(err.contains("entry 44 appears twice"), "{err}");

    let mut edited = lines.clone();
    edited[50] = edited[50].replace("\"result\":\"allow\"", "\"result\":\"deny\"");
    assert_ne!(edited[50], lines[50]);
    let err = verify_file("edited", &edited, &[]).unwrap_err();
    assert!(
        err.contains(&format!(
            "entry 50 was altered: its signature does not verify under identity {}",
            IdentityKey::from_seed(&[3; 32]).public()
        )),
        "{err}"
    );

    let mut garbled = lines.clone();
    garbled[12] = "{\"entry\":".into();
    let err = verify_file("garbled", &garbled, &[]).unwrap_err();
    assert!(
        err.contains("line 13 (where entry 12 was expected) is malformed"),
        "{err}"
    );
}

/// Runs `audit verify --from-file` on `lines`; on success, the report and the summary
/// printed on standard error.
fn verify_file_with_summary(tag: &str, lines: &[String]) -> (Value, String) {
    let path = write_chain(tag, lines);
    let out = strongroom(
        &verify_args(world(), &["--from-file", path.to_str().unwrap()]),
        None,
    );
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    (outcome(out).expect(&stderr), stderr)
}

#[test]
fn verify_reports_what_the_records_say() {
    let mut b = Builder::new();
    b.boot(1, 7);
    b.record(&Record::KeyCreated(KeyCreated {
        by: by(1, Some("desk")),
        key: KEY.into(),
        address: ADDRESS.into(),
        label: "treasury".into(),
    }));
    b.decisions(3)
        .decided(2, Outcome::Deny)
        .decided(1, Outcome::TimeLocked { until: 5 })
        .decided(
            1,
            Outcome::NeedsApproval {
                threshold: 1,
                approvers: vec!["ops".into()],
                approved: vec![],
            },
        );
    b.boot(2, 7);
    b.record(&Record::RequestCompleted(RequestCompleted {
        by: by(11, Some("ops")),
        request_id: "0011223344556677".into(),
        decided: signing(Outcome::Allow),
        signed: Some(json!({"status": 200})),
    }));
    b.record(&Record::Proposal(ProposalMade {
        by: by(12, None),
        proposal: "p-17".into(),
        change: "policy".into(),
        digest: "44".repeat(32),
        document: json!({"rules": []}),
        base_admins_digest: "55".repeat(32),
        base_policy_digest: "66".repeat(32),
    }));
    b.record(&Record::ProposalApproved(ProposalApproved {
        by: by(13, None),
        proposal: "p-17".into(),
        change: "policy".into(),
        digest: "44".repeat(32),
        approvals: 1,
        applied: true,
    }));
    b.record(&Record::PolicyChanged(PolicyChanged {
        proposal: "p-17".into(),
        change: "policy".into(),
        policy_digest: "44".repeat(32),
        admins_digest: "55".repeat(32),
        discarded_proposals: vec![],
    }));
    b.record(&Record::KeyDestroyed(KeyDestroyed {
        by: by(15, None),
        key: KEY.into(),
        address: ADDRESS.into(),
    }));
    let (report, summary) = verify_file_with_summary("records", &b.lines);
    assert_eq!(report["entries"], 15, "{report}");
    assert_eq!(report["verified"], true, "the fields of before stay");
    let records = &report["records"];
    assert_eq!(records["records"], 15, "{records}");
    let kinds = &records["by_kind"];
    assert_eq!(kinds["boot"], 2);
    assert_eq!(kinds["decision"], 7);
    assert_eq!(kinds["key_created"], 1);
    assert_eq!(kinds["key_destroyed"], 1);
    assert_eq!(kinds["request_completed"], 1);
    assert_eq!(kinds["proposal"], 1);
    assert_eq!(kinds["proposal_approved"], 1);
    assert_eq!(kinds["policy_changed"], 1);
    assert_eq!(kinds["request_cancelled"], 0);
    assert_eq!(
        records["decisions"],
        json!({"allowed": 3, "denied": 2, "held": 2})
    );
    assert_eq!(records["requests_completed"]["allowed"], 1);
    // Three allowed decisions and the held request completed.
    assert_eq!(records["signatures"], json!({KEY: 4}));
    assert_eq!(records["keys_created"][0]["seq"], 1);
    assert_eq!(records["keys_created"][0]["label"], "treasury");
    assert_eq!(records["keys_destroyed"][0]["seq"], 14);
    assert_eq!(records["keys_destroyed"][0]["principal"], Value::Null);
    let change = &records["policy_changes"][0];
    assert_eq!(change["seq"], 13);
    assert_eq!(change["proposal"], "p-17");
    assert_eq!(change["policy_digest"], "44".repeat(32));

    for line in [
        "audit chain verified: 15 entries (0 to 14), 2 boot(s)",
        "decisions: 3 allowed, 2 denied, 2 held",
        "held requests completed: 1 allowed, 0 denied, 0 held",
        &format!("signatures: 4 (4 by key {KEY})"),
        "keys: 1 created, 1 destroyed",
        &format!("  created key {KEY} {ADDRESS} \"treasury\" at seq 1"),
        &format!("  destroyed key {KEY} {ADDRESS} at seq 14"),
        "policy changes: 1",
        "  policy changed by proposal p-17 at seq 13",
    ] {
        assert!(summary.contains(line), "{line:?} in {summary}");
    }
    assert!(
        summary.contains("records: 2 boot, 7 decision, "),
        "{summary}"
    );
}

#[test]
fn a_record_this_strongroom_cannot_read_fails_naming_its_seq() {
    // A kind from a newer enclave, signed like any other entry.
    let mut b = Builder::new();
    b.boot(1, 7).decisions(4);
    b.push("teleport", json!({"to": "mars"}));
    b.decisions(2);
    let err = verify_file("newer", &b.lines, &[]).unwrap_err();
    assert!(
        err.contains(
            "unknown record kind teleport at seq 5: this strongroom is older than the \
             enclave that wrote it (its signature verified; entries 0 to 4 read)"
        ),
        "{err}"
    );

    // A known kind whose fields do not decode.
    let mut b = Builder::new();
    b.boot(1, 7).decisions(2);
    b.push(
        "decision",
        json!({"request": "00", "principal": "desk", "action": "sign_digest"}),
    );
    b.decisions(2);
    let err = verify_file("malformed", &b.lines, &[]).unwrap_err();
    assert!(
        err.contains("the decision record at seq 3 does not decode: missing field"),
        "{err}"
    );

    // A field of the wrong type, and a break of the chain after it: the first finding in
    // the chain's order is the one named.
    let mut b = Builder::new();
    b.boot(1, 7).decisions(1);
    b.push(
        "key_destroyed",
        json!({"request": "00", "principal": null, "stamp_key": "admin-1", "key": KEY,
            "address": 42}),
    );
    b.decisions(5);
    b.lines.remove(5);
    let err = verify_file("wrong-type", &b.lines, &[]).unwrap_err();
    assert!(
        err.contains("the key_destroyed record at seq 2 does not decode: invalid type"),
        "{err}"
    );
}

#[test]
fn boots_are_checked_against_the_root_the_pcrs_and_their_time() {
    let lines = &standard().lines;
    let err = verify_file("aws", lines, &["--attestation-root", "aws"]).unwrap_err();
    assert!(
        err.contains("boot entry 0: attestation refused: ") && err.contains("root"),
        "{err}"
    );

    let other = world().dir.join("other-pcrs.json");
    std::fs::write(&other, json!({"PCR2": "ee".repeat(48)}).to_string()).unwrap();
    let err = verify_file(
        "other-pcrs",
        lines,
        &["--expect-pcrs", other.to_str().unwrap()],
    )
    .unwrap_err();
    assert!(
        err.contains("boot entry 0: attestation refused: ") && err.contains("PCR2"),
        "{err}"
    );

    // A document made an hour after its entry is not that boot's.
    let mut b = Builder::new();
    b.boot(1, 7).decisions(3);
    b.boot(2, 3600).decisions(3);
    let err = verify_file("late-doc", &b.lines, &[]).unwrap_err();
    assert!(
        err.contains("boot entry 4: attestation refused: the document is from")
            && err.contains("3600 s apart"),
        "{err}"
    );
}

#[test]
fn a_chain_of_another_deployment_is_refused_by_the_pins_in_file_mode() {
    // The test world's boots carry genesis 02…02 and root-key check 01…01.
    let lines = &standard().lines;
    let genesis = "02".repeat(32);
    let key_check = "01".repeat(16);
    let pinned = [
        "--expect-genesis",
        &genesis,
        "--expect-key-check",
        &key_check,
    ];
    verify_file("pinned", lines, &pinned).unwrap();

    let other_genesis = "03".repeat(32);
    let err = verify_file(
        "other-genesis",
        lines,
        &["--expect-genesis", &other_genesis],
    )
    .unwrap_err();
    assert!(
        err.contains("boot entry 0: attestation refused: ")
            && err.contains(&format!("genesis digest is {genesis}, not {other_genesis}")),
        "{err}"
    );
    let other_check = "09".repeat(16);
    let err = verify_file("other-check", lines, &["--expect-key-check", &other_check]).unwrap_err();
    assert!(
        err.contains("boot entry 0: attestation refused: ")
            && err.contains(&format!("check value is {key_check}, not {other_check}")),
        "{err}"
    );
}

#[test]
fn a_chain_across_an_upgrade_verifies_with_every_release_given() {
    let w = world();
    // Boots 0 and 20 of the running release, 40 of the next, 60 of the running one again
    // (a rollback), 80 of the next.
    let mut b = Builder::new();
    b.boot(1, 7).decisions(19);
    b.boot(2, 7).decisions(19);
    b.next_release = true;
    b.boot(3, 7).decisions(19);
    b.next_release = false;
    b.boot(4, 7).decisions(19);
    b.next_release = true;
    b.boot(5, 7).decisions(2);
    let (old, next) = (w.pcrs.to_str().unwrap(), w.next_pcrs.to_str().unwrap());
    for files in [[old, next], [next, old]] {
        let report = verify_file(
            "upgrade-both",
            &b.lines,
            &["--expect-pcrs", files[0], "--expect-pcrs", files[1]],
        )
        .unwrap();
        assert_eq!(report["entries"], 83, "{report}");
        assert_eq!(report["boots"].as_array().unwrap().len(), 5, "{report}");
    }

    // The running release's file alone: refused at the next release's first boot.
    let err = verify_file("upgrade-old", &b.lines, &["--expect-pcrs", old]).unwrap_err();
    assert!(
        err.contains("boot entry 40: attestation refused: ")
            && err.contains("PCR0 is d0d0")
            && err.contains("entries 0 to 39 verified"),
        "{err}"
    );
    // The next release's alone: refused at entry 0.
    let err = verify_file("upgrade-new", &b.lines, &["--expect-pcrs", next]).unwrap_err();
    assert!(err.contains("boot entry 0: attestation refused: "), "{err}");

    // A file mixing the two releases (the next release's PCR0, the running one's PCR1 and
    // PCR2) with the next release's: the running release's boots match neither.
    let mix = w.dir.join("mix-pcrs.json");
    let old_pcrs: Value = serde_json::from_str(&std::fs::read_to_string(&w.pcrs).unwrap()).unwrap();
    let mut mixed = old_pcrs.clone();
    mixed["0"] = json!("d0".repeat(48));
    std::fs::write(&mix, mixed.to_string()).unwrap();
    let err = verify_file(
        "upgrade-mix",
        &b.lines,
        &[
            "--expect-pcrs",
            mix.to_str().unwrap(),
            "--expect-pcrs",
            next,
        ],
    )
    .unwrap_err();
    assert!(
        err.contains("boot entry 0: attestation refused: ")
            && err.contains("match none of the 2 trusted releases (release 1: PCR0 is")
            && err.contains("release 2: PCR0 is"),
        "{err}"
    );
}

#[test]
fn a_saved_checkpoint_catches_a_chain_cut_short() {
    let b = standard();
    let cp = world().dir.join("checkpoint.json");
    std::fs::write(&cp, b.checkpoint().to_json().to_string()).unwrap();
    let report = verify_file("cp-ok", &b.lines, &["--checkpoint", cp.to_str().unwrap()]).unwrap();
    assert_eq!(report["checkpoint"]["seq"], 59);
    let err = verify_file(
        "cp-cut",
        &b.lines[..50],
        &["--checkpoint", cp.to_str().unwrap()],
    )
    .unwrap_err();
    assert!(
        err.contains("the chain ends at entry 49 but the checkpoint names entry 59"),
        "{err}"
    );
    // A checkpoint whose signature does not verify is refused before anything else.
    let mut forged = b.checkpoint().to_json();
    forged["seq"] = json!(40);
    std::fs::write(&cp, forged.to_string()).unwrap();
    let err = verify_file(
        "cp-forged",
        &b.lines,
        &["--checkpoint", cp.to_str().unwrap()],
    )
    .unwrap_err();
    assert!(err.contains("checkpoint"), "{err}");
}

/// What the stand-in server serves, and how it misbehaves.
struct Served {
    lines: Vec<String>,
    head: Value,
    /// Most entries per page, whatever the client asks (the proxy may cap it).
    page_cap: usize,
    /// An entry left out of what is served.
    drop: Option<usize>,
    queries: Mutex<Vec<String>>,
}

async fn audit(State(s): State<Arc<Served>>, uri: Uri) -> Response {
    let query = uri.query().unwrap_or_default().to_string();
    s.queries.lock().unwrap().push(query.clone());
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let from = param("from").unwrap_or(0);
    let limit = param("limit").unwrap_or(usize::MAX).min(s.page_cap);
    let served: Vec<&String> = s
        .lines
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != s.drop)
        .map(|(_, l)| l)
        .collect();
    let body: String = served
        .iter()
        .skip(from)
        .take(limit)
        .map(|l| format!("{l}\n"))
        .collect();
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

async fn head(State(s): State<Arc<Served>>) -> Response {
    (StatusCode::OK, axum::Json(s.head.clone())).into_response()
}

fn serve(served: Served) -> (String, Arc<Served>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(served);
    let app = Router::new()
        .route("/v1/audit", get(audit))
        .route("/v1/audit/head", get(head))
        .with_state(served.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (format!("http://{addr}"), served)
}

fn served(drop: Option<usize>) -> Served {
    let b = standard();
    Served {
        lines: b.lines.clone(),
        head: b.checkpoint().to_json(),
        page_cap: 7,
        drop,
        queries: Mutex::new(Vec::new()),
    }
}

#[test]
fn the_chain_verifies_from_the_server_page_by_page_against_its_head() {
    let (url, s) = serve(served(None));
    let report = outcome(strongroom(&verify_args(world(), &["--url", &url]), None)).unwrap();
    assert_eq!(report["entries"], 60);
    assert_eq!(report["checkpoint"]["seq"], 59);
    assert_eq!(report["source"], format!("{url}/v1/audit"));
    let queries = s.queries.lock().unwrap().clone();
    // Pages of at most 7: 0, 7, … 56, then an empty one.
    assert_eq!(queries.len(), 10, "{queries:?}");
    assert_eq!(queries[1], "from=7&limit=1000");

    // A server that leaves an entry out is caught at that entry.
    let (url, _) = serve(served(Some(33)));
    let err = outcome(strongroom(&verify_args(world(), &["--url", &url]), None)).unwrap_err();
    assert!(err.contains("entry 33 is missing"), "{err}");
}

#[test]
fn a_server_that_serves_less_than_its_head_is_caught() {
    let mut s = served(None);
    s.lines.truncate(45);
    let (url, _) = serve(s);
    let err = outcome(strongroom(&verify_args(world(), &["--url", &url]), None)).unwrap_err();
    assert!(err.contains("the checkpoint names entry 59"), "{err}");
}

#[test]
fn head_prints_the_checked_checkpoint_and_fetch_saves_the_lines() {
    let (url, _) = serve(served(None));
    let out = strongroom(&["audit", "head", "--url", &url], None);
    let head: Value = outcome(out).unwrap();
    assert_eq!(head, standard().checkpoint().to_json());

    let file = world().dir.join("fetched.ndjson");
    let out = strongroom(
        &[
            "audit",
            "fetch",
            "--url",
            &url,
            "--from",
            "10",
            "--out",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("fetched 50 entries (10 to 59)")
    );
    let saved = std::fs::read_to_string(&file).unwrap();
    assert_eq!(saved, standard().lines[10..].join("\n") + "\n");

    // A head whose signature does not verify is refused.
    let mut s = served(None);
    s.head["seq"] = json!(58);
    let (url, _) = serve(s);
    let out = strongroom(&["audit", "head", "--url", &url], None);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("signature does not verify"), "{err}");
}
