//! The boot path on parent-chosen input: a later boot given an arbitrary snapshot, the
//! genuine snapshot with arbitrary or mutated records after it, or a first boot with an
//! arbitrary genesis and records it must refuse. No input may panic the enclave, and a
//! boot that succeeds continues the chain right after the last record it applied.
#![no_main]

mod support;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_enclave::Enclave;
use strongroom_protocol::messages::{AuditRecord, CompleteUnseal, Request, Response};

/// What the first boot left: the root key's check value, a snapshot after the boot
/// record, and the records after it.
struct Stored {
    key_check: Vec<u8>,
    snapshot: Vec<u8>,
    snapshot_seq: u64,
    records: Vec<AuditRecord>,
}

static STORED: LazyLock<Stored> = LazyLock::new(|| {
    let enclave = Enclave::new(MockNsm::ephemeral(MockNsmConfig::default()).expect("NSM"));
    let (key_check, boot) = support::unseal_first_boot_records(&enclave, &support::signer_genesis());
    let (snapshot_seq, snapshot) = support::read_snapshot(&enclave);
    let mut records = boot;
    records.extend(support::sign_some(&enclave, 3));
    let records = records.into_iter().filter(|r| r.seq >= snapshot_seq).collect();
    Stored {
        key_check,
        snapshot,
        snapshot_seq,
        records,
    }
});

fn boot(genesis: Option<&[u8]>, snapshot: Option<&[u8]>, records: &[AuditRecord]) -> Response {
    let enclave = Enclave::new(MockNsm::ephemeral(MockNsmConfig::default()).expect("NSM"));
    let envelope = support::envelope_for_challenge(&enclave);
    let mut answer = enclave.handle(Request::CompleteUnseal(CompleteUnseal {
        ciphertext_for_recipient: envelope.into(),
        key_check: snapshot.map(|_| STORED.key_check.clone().into()),
        snapshot_len: snapshot.map(|s| s.len() as u64),
        genesis: genesis.map(|g| g.to_vec().into()),
        replica: None,
    }));
    for part in snapshot.unwrap_or_default().chunks(64 * 1024) {
        if !matches!(answer, Response::SnapshotReceived { .. }) {
            return answer;
        }
        answer = enclave.handle(Request::SnapshotChunk {
            bytes: part.to_vec().into(),
        });
    }
    if !matches!(answer, Response::ReplayFrom { .. }) {
        return answer;
    }
    let answer = enclave.handle(Request::ReplayRecords {
        records: records.to_vec(),
    });
    if !matches!(answer, Response::ReplayFrom { .. }) {
        return answer;
    }
    enclave.handle(Request::FinishBoot)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let stored = &*STORED;
    match mode % 4 {
        0 => {
            let _ = boot(None, Some(rest), &stored.records);
        }
        1 => {
            let mut records = stored.records.clone();
            for pair in rest.chunks_exact(3) {
                let r = usize::from(pair[0]) % records.len().max(1);
                if let Some(record) = records.get_mut(r) {
                    let mut bytes = std::mem::take(&mut record.line).into_bytes();
                    if !bytes.is_empty() {
                        let i = usize::from(pair[1]) * 7 % bytes.len();
                        bytes[i] ^= pair[2];
                    }
                    record.line = String::from_utf8_lossy(&bytes).into_owned();
                }
            }
            if let Response::Unsealed { audit, .. } = boot(None, Some(&stored.snapshot), &records) {
                assert!(audit[0].seq >= stored.snapshot_seq);
                assert!(audit[0].seq <= stored.snapshot_seq + records.len() as u64);
            }
        }
        2 => {
            let records: Vec<AuditRecord> = String::from_utf8_lossy(rest)
                .lines()
                .enumerate()
                .map(|(i, line)| AuditRecord {
                    seq: stored.snapshot_seq + i as u64,
                    line: line.to_string(),
                })
                .collect();
            let _ = boot(None, Some(&stored.snapshot), &records);
        }
        _ => {
            let answer = boot(Some(rest), None, &stored.records);
            assert!(
                !matches!(answer, Response::Unsealed { .. }) || stored.records.is_empty(),
                "a first boot replayed records"
            );
        }
    }
});
