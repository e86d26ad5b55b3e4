//! The storage conformance suite: what the proxy, the replicas and the enclave's boot rely
//! on from every [`Store`](crate::Store), checked against each backend the same way
//! (`store/tests/conformance.rs` runs it on SQLite files and on a real PostgreSQL server).
//! Each check takes a fresh, empty [`Database`] and panics on a breach, naming it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use strongroom_protocol::messages::{AuditRecord, CreatedKey, Effects, KeyInfo, PendingRef};

use crate::testing::Database;
use crate::{LAYOUT, Store, StoreError};

/// The checks, by name, for a runner that wants to list them.
pub const CHECKS: &[&str] = &[
    "root_record",
    "audit_order_and_conflicts",
    "effects_are_all_or_nothing",
    "replicas_race_for_each_number",
    "concurrent_answers_fail_alone",
    "everything_survives_reopening",
    "a_later_layout_is_refused",
    "the_append_lock_is_held_by_one_at_a_time",
];

fn audit(seq: u64, line: &str) -> AuditRecord {
    AuditRecord {
        seq,
        line: line.into(),
    }
}

fn created(id: &str, sealed: &[u8], address: &str) -> Effects {
    Effects {
        key_created: Some(CreatedKey {
            info: KeyInfo {
                id: id.into(),
                label: "l".into(),
                curve: "secp256k1".into(),
                public_key: vec![4; 65].into(),
                address: address.into(),
                created_at: 1_700_000_000,
            },
            sealed: sealed.to_vec().into(),
        }),
        ..Default::default()
    }
}

async fn lines(s: &dyn Store) -> Vec<(u64, String)> {
    s.audit_range(0, 10_000).await.unwrap()
}

/// The root key blob is written once; the check value once and then only confirmed; a
/// snapshot replaces the stored one only when it is newer.
pub async fn root_record(db: &dyn Database) {
    let s = db.open().await.unwrap();
    assert_eq!(s.root().await.unwrap(), None);
    s.put_root_blob("alias/k", b"blob").await.unwrap();
    assert_eq!(
        s.put_root_blob("alias/k", b"another").await,
        Err(StoreError::RootExists),
        "a second first boot must lose to the first"
    );
    let root = s.root().await.unwrap().unwrap();
    assert_eq!(
        (root.kms_key_id.as_str(), root.ciphertext_blob.as_slice()),
        ("alias/k", &b"blob"[..])
    );
    assert_eq!(
        (root.key_check, root.snapshot, root.snapshot_seq),
        (None, None, 0)
    );
    s.put_unsealed(b"kcv", &[audit(0, "boot0")]).await.unwrap();
    // A later boot (another replica's) stores its own boot record under the same value.
    s.put_unsealed(b"kcv", &[audit(1, "boot1")]).await.unwrap();
    assert!(
        s.put_unsealed(b"other", &[audit(2, "boot2")])
            .await
            .is_err(),
        "another root key's check value is refused"
    );
    assert_eq!(
        s.audit_head().await.unwrap(),
        Some(1),
        "and its record with it"
    );
    assert_eq!(
        s.put_unsealed(b"kcv", &[audit(1, "boot1'")]).await,
        Err(StoreError::AuditConflict { seq: 1 })
    );
    assert_eq!(
        s.root().await.unwrap().unwrap().key_check.as_deref(),
        Some(&b"kcv"[..])
    );
    s.put_snapshot(3, b"snapshot3").await.unwrap();
    s.put_snapshot(2, b"snapshot2").await.unwrap();
    let root = s.root().await.unwrap().unwrap();
    assert_eq!(
        (root.snapshot.as_deref(), root.snapshot_seq),
        (Some(&b"snapshot3"[..]), 3),
        "an older snapshot taken late does not replace a newer one"
    );
    s.put_snapshot(7, b"snapshot7").await.unwrap();
    assert_eq!(s.root().await.unwrap().unwrap().snapshot_seq, 7);
}

/// Records are kept under their numbers, in order; the same line again is a no-op,
/// another line under a stored number is a typed conflict and a failed batch stores none
/// of itself; gaps are counted.
pub async fn audit_order_and_conflicts(db: &dyn Database) {
    let s = db.open().await.unwrap();
    assert_eq!(
        (
            s.audit_stored().await.unwrap(),
            s.audit_head().await.unwrap()
        ),
        (0, None)
    );
    s.put_audit(&[audit(0, "e0"), audit(1, "e1")])
        .await
        .unwrap();
    assert_eq!(s.audit_stored().await.unwrap(), 2);
    s.apply(Effects {
        audit: vec![audit(3, "e3")],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(s.audit_stored().await.unwrap(), 2, "entry 2 is missing");
    assert_eq!(s.audit_head().await.unwrap(), Some(3));
    s.put_audit(&[audit(2, "e2"), audit(3, "e3")])
        .await
        .unwrap();
    assert_eq!(
        s.audit_stored().await.unwrap(),
        4,
        "the same line again is a no-op"
    );
    assert_eq!(
        s.put_audit(&[audit(1, "forged")]).await,
        Err(StoreError::AuditConflict { seq: 1 })
    );
    assert_eq!(
        s.put_audit(&[audit(4, "e4"), audit(0, "x")]).await,
        Err(StoreError::AuditConflict { seq: 0 })
    );
    assert_eq!(
        s.audit_stored().await.unwrap(),
        4,
        "the failed batch stored nothing"
    );
    assert_eq!(
        s.audit_range(1, 2).await.unwrap(),
        [(1, "e1".to_string()), (2, "e2".to_string())]
    );
    assert!(s.audit_range(9, 10).await.unwrap().is_empty());
    let long = "x".repeat(200_000);
    s.put_audit(&[audit(4, &long)]).await.unwrap();
    assert_eq!(
        s.audit_range(4, 1).await.unwrap()[0].1,
        long,
        "long lines whole"
    );
}

/// One answer's effects are stored together or not at all.
pub async fn effects_are_all_or_nothing(db: &dyn Database) {
    let s = db.open().await.unwrap();
    let mut first = created("a", b"sealed-a", "0xAbCd");
    first.audit = vec![audit(0, "created a")];
    s.apply(first).await.unwrap();
    let mut b = created("b", b"sealed-b", "0x00bb");
    b.audit = vec![audit(1, "created b")];
    s.apply(b).await.unwrap();
    // The same key again, with a new record: refused, and the record goes with it.
    let mut again = created("a", b"again", "0x1111");
    again.audit = vec![audit(2, "created a again")];
    assert!(s.apply(again).await.is_err());
    assert_eq!(s.audit_head().await.unwrap(), Some(1));
    // A new key whose record conflicts: neither is stored.
    let mut lost = created("c", b"sealed-c", "0x00cc");
    lost.audit = vec![audit(1, "another b")];
    assert_eq!(
        s.apply(lost).await,
        Err(StoreError::AuditConflict { seq: 1 })
    );
    assert_eq!(
        s.key("c").await.unwrap(),
        None,
        "the loser's key is not stored"
    );
    assert_eq!(s.key("a").await.unwrap().as_deref(), Some(&b"sealed-a"[..]));
    assert_eq!(
        s.key_by_address("0xABCD").await.unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(
        s.key_by_address("0xabcd").await.unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(s.key_by_address("0x1111").await.unwrap(), None);
    let ids = |page: Vec<(String, Vec<u8>)>| page.into_iter().map(|(i, _)| i).collect::<Vec<_>>();
    assert_eq!(ids(s.key_page(None, 10).await.unwrap()), ["a", "b"]);
    assert_eq!(ids(s.key_page(Some("a"), 10).await.unwrap()), ["b"]);
    assert_eq!(ids(s.key_page(None, 1).await.unwrap()), ["a"]);
    s.apply(Effects {
        pending_request: Some(PendingRef {
            request_id: "r1".into(),
            key_id: "a".into(),
        }),
        audit: vec![audit(2, "held r1")],
        ..Default::default()
    })
    .await
    .unwrap();
    s.apply(Effects {
        pending_request: Some(PendingRef {
            request_id: "r1".into(),
            key_id: "b".into(),
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(s.request_key("r1").await.unwrap().as_deref(), Some("b"));
    assert_eq!(s.request_key("r2").await.unwrap(), None);
    s.apply(Effects {
        key_destroyed: Some("b".into()),
        audit: vec![audit(3, "destroyed b")],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(s.key("b").await.unwrap(), None);
    assert_eq!(ids(s.key_page(None, 10).await.unwrap()), ["a"]);
}

/// Two handles on one database (two replicas) append under the same numbers at once:
/// for each number exactly one wins, the other gets the conflict naming it, and nothing of
/// the loser's answer is stored.
pub async fn replicas_race_for_each_number(db: &dyn Database) {
    const ROUNDS: u64 = 40;
    let replicas = [db.open().await.unwrap(), db.open().await.unwrap()];
    let mut winners = Vec::new();
    for seq in 0..ROUNDS {
        let tries = replicas.iter().enumerate().map(|(r, s)| {
            let s = Arc::clone(s);
            let mut effects = created(&format!("{r}-{seq:03}"), b"sealed", &format!("0x{r}{seq}"));
            effects.audit = vec![audit(seq, &format!("replica {r} record {seq}"))];
            tokio::spawn(async move { s.apply(effects).await })
        });
        let mut results = Vec::new();
        for t in tries.collect::<Vec<_>>() {
            results.push(t.await.unwrap());
        }
        let won: Vec<usize> = (0..2).filter(|r| results[*r].is_ok()).collect();
        assert_eq!(won.len(), 1, "number {seq}: {results:?}");
        let lost = 1 - won[0];
        assert_eq!(results[lost], Err(StoreError::AuditConflict { seq }));
        winners.push(won[0]);
    }
    for s in &replicas {
        let stored = lines(s.as_ref()).await;
        assert_eq!(stored.len() as u64, ROUNDS);
        for ((seq, line), r) in stored.iter().zip(&winners) {
            assert_eq!(line, &format!("replica {r} record {seq}"));
        }
        let keys = s.key_page(None, 1000).await.unwrap();
        assert_eq!(
            keys.len() as u64,
            ROUNDS,
            "one key per number: the winner's"
        );
        for (seq, r) in winners.iter().enumerate() {
            assert!(s.key(&format!("{r}-{seq:03}")).await.unwrap().is_some());
            assert!(
                s.key(&format!("{}-{seq:03}", 1 - r))
                    .await
                    .unwrap()
                    .is_none()
            );
        }
    }
}

/// Many answers at once through one handle: each is stored or refused on its own.
pub async fn concurrent_answers_fail_alone(db: &dyn Database) {
    let s = db.open().await.unwrap();
    s.apply(created("k", b"sealed", "0xkk")).await.unwrap();
    let tasks: Vec<_> = (0..16u64)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                // Every fourth one also re-creates key "k": refused, and only it.
                let mut effects = if i % 4 == 3 {
                    created("k", b"again", "0xkk2")
                } else {
                    Effects::default()
                };
                effects.audit = vec![audit(i, &format!("e{i}"))];
                (i, s.apply(effects).await)
            })
        })
        .collect();
    for t in tasks {
        let (i, result) = t.await.unwrap();
        assert_eq!(result.is_err(), i % 4 == 3, "answer {i}: {result:?}");
    }
    let stored: Vec<u64> = lines(s.as_ref()).await.iter().map(|(q, _)| *q).collect();
    let expected: Vec<u64> = (0..16).filter(|i| i % 4 != 3).collect();
    assert_eq!(
        stored, expected,
        "the refused answers' records went with them"
    );
    assert_eq!(s.key("k").await.unwrap().as_deref(), Some(&b"sealed"[..]));
}

/// What one handle stored, a handle opened later reads.
pub async fn everything_survives_reopening(db: &dyn Database) {
    {
        let s = db.open().await.unwrap();
        s.put_root_blob("arn:k", b"blob").await.unwrap();
        s.put_unsealed(b"kcv", &[audit(0, "boot")]).await.unwrap();
        s.put_snapshot(1, b"snap").await.unwrap();
        let mut effects = created("a", b"sealed-a", "0xaa");
        effects.audit = vec![audit(1, "created")];
        effects.pending_request = Some(PendingRef {
            request_id: "r".into(),
            key_id: "a".into(),
        });
        s.apply(effects).await.unwrap();
    }
    let s = db.open().await.unwrap();
    let root = s.root().await.unwrap().unwrap();
    assert_eq!(root.ciphertext_blob, b"blob");
    assert_eq!(root.key_check.as_deref(), Some(&b"kcv"[..]));
    assert_eq!(
        (root.snapshot.as_deref(), root.snapshot_seq),
        (Some(&b"snap"[..]), 1)
    );
    assert_eq!(s.key("a").await.unwrap().as_deref(), Some(&b"sealed-a"[..]));
    assert_eq!(s.request_key("r").await.unwrap().as_deref(), Some("a"));
    assert_eq!(s.audit_stored().await.unwrap(), 2);
    assert_eq!(lines(s.as_ref()).await[1], (1, "created".to_string()));
}

/// A database a later release wrote is refused at open, with advice, and left as it was.
pub async fn a_later_layout_is_refused(db: &dyn Database) {
    {
        let s = db.open().await.unwrap();
        s.put_audit(&[audit(0, "kept")]).await.unwrap();
    }
    db.set_layout(LAYOUT + 1).await.unwrap();
    let e = db
        .open()
        .await
        .err()
        .expect("a later layout must be refused");
    let StoreError::Layout { found, latest, .. } = &e else {
        panic!("not a layout error: {e}");
    };
    assert_eq!((*found, *latest), (LAYOUT + 1, LAYOUT));
    assert!(e.to_string().contains("later Strongroom release"), "{e}");
    db.set_layout(LAYOUT).await.unwrap();
    let s = db.open().await.unwrap();
    assert_eq!(
        lines(s.as_ref()).await,
        [(0, "kept".to_string())],
        "left as it was"
    );
}

/// The append lock: while one handle (a replica) holds it, another waits; released, or
/// dropped without release (its holder gone), the other gets it.
pub async fn the_append_lock_is_held_by_one_at_a_time(db: &dyn Database) {
    let a = db.open().await.unwrap();
    let b = db.open().await.unwrap();
    let held = a.lock_appends().await.unwrap();
    let waiting = {
        let b = Arc::clone(&b);
        tokio::spawn(async move { b.lock_appends().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a second holder got the lock");
    // Appends do not wait for it.
    a.put_audit(&[audit(0, "e0")]).await.unwrap();
    held.release().await.unwrap();
    let second = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("the lock passed on")
        .unwrap()
        .unwrap();
    // Dropped without release: the next one still gets it.
    drop(second);
    let third = tokio::time::timeout(std::time::Duration::from_secs(10), a.lock_appends())
        .await
        .expect("a dropped lock is free again")
        .unwrap();
    third.release().await.unwrap();
}
