//! Protocol messages from other enclaves, and sealed messages as parents relay them, on
//! arbitrary bytes: no input panics a party (FROST key generation and signing, CGGMP24
//! key generation through its state-machine driver), the channel or the invitation
//! decoder. The input's first byte picks the party; the rest is a sequence of messages
//! `from ‖ to ‖ len (u16 BE) ‖ body`, or for the channel one sealed message in CBOR, or
//! an invitation (whatever decodes has a session id and is checked without panicking).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strongroom_threshold::channel::{ChannelSecret, Channels, Sealed};
use strongroom_threshold::frost::{Dkg, Ed25519Sha512, FrostKey, Secp256K1Sha256TR, Sign};
use strongroom_threshold::session::Invitation;
use strongroom_threshold::{Message, Party, Recipient, ecdsa};

fn messages(mut bytes: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    while let [from, to, hi, lo, rest @ ..] = bytes {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
        let (body, tail) = rest.split_at(len);
        out.push(Message {
            from: u16::from(*from % 4),
            to: if *to == 0xff { Recipient::All } else { Recipient::One(u16::from(*to % 4)) },
            body: body.to_vec(),
        });
        bytes = tail;
    }
    out
}

fn drive<P: Party>(mut party: P, incoming: Vec<Message>) {
    if party.step(Vec::new()).is_ok() {
        let _ = party.step(incoming);
    }
}

/// Party 0's share of a 2-of-3 Ed25519 key, made once.
fn frost_share() -> &'static [u8] {
    static SHARE: OnceLock<Vec<u8>> = OnceLock::new();
    SHARE.get_or_init(|| {
        let mut parties: Vec<Dkg<Ed25519Sha512>> =
            (0..3).map(|i| Dkg::new(i, 3, 2).expect("2-of-3")).collect();
        let mut inboxes: Vec<Vec<Message>> = vec![Vec::new(); 3];
        let mut keys: Vec<Option<FrostKey<Ed25519Sha512>>> = vec![None, None, None];
        for _ in 0..4 {
            let mut out = Vec::new();
            for (i, party) in parties.iter_mut().enumerate() {
                if keys[i].is_some() {
                    continue;
                }
                let step = party.step(std::mem::take(&mut inboxes[i])).expect("honest run");
                out.extend(step.outgoing);
                keys[i] = step.output;
            }
            for m in out {
                for to in 0..3u16 {
                    if to != m.from && (m.to == Recipient::All || m.to == Recipient::One(to)) {
                        inboxes[usize::from(to)].push(m.clone());
                    }
                }
            }
        }
        let key = keys[0].take().expect("key generation finished");
        key.to_bytes().expect("encodes").to_vec()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 6 {
        0 => drive(Dkg::<Ed25519Sha512>::new(0, 3, 2).expect("2-of-3"), messages(rest)),
        1 => drive(Dkg::<Secp256K1Sha256TR>::new(1, 3, 2).expect("2-of-3"), messages(rest)),
        2 => drive(ecdsa::keygen([0; 32], 2, 3, 2).expect("2-of-3"), messages(rest)),
        3 => {
            let key = FrostKey::<Ed25519Sha512>::from_bytes(frost_share()).expect("stored share");
            drive(Sign::new(0, &[0, 1], key, b"message".to_vec()).expect("signers"), messages(rest));
        }
        4 => {
            if let Ok(invitation) = Invitation::from_bytes(rest) {
                assert!(invitation.session_id().is_ok());
                let _ = invitation.check(&[1; 16], &[0; 32], 1_800_000_000, 60);
            }
        }
        _ => {
            let (Ok(a), Ok(b)) = (ChannelSecret::generate(), ChannelSecret::generate()) else {
                return;
            };
            let keys = [a.public(), b.public()];
            let Ok(mut channels) = Channels::new(&b, [9; 32], 1, &keys) else {
                return;
            };
            let mut reader = rest;
            if let Ok(sealed) = ciborium::from_reader::<Sealed, _>(&mut reader) {
                let _ = channels.open(sealed);
            }
        }
    }
});
