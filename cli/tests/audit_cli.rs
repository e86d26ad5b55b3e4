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

const DAY: u64 = 24 * 3600;

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

    fn decisions(&mut self, n: u64) -> &mut Self {
        for _ in 0..n {
            self.time += 60;
            let seq = self.seq;
            self.push(
                "decision",
                json!({
                    "request": hex::encode([seq as u8; 32]),
                    "principal": "desk",
                    "action": "sign_transaction",
                    "key": "k1",
                    "intent": {"kind": "transaction", "chain_id": 1, "value": "0x1"},
                    "result": "allowed",
                    "rule": "dev-transactions",
                    "reason": "within limits",
                }),
            );
        }
        self
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
    edited[50] = edited[50].replace("\"allowed\"", "\"denied\"");
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
