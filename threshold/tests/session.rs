//! Sessions bound to their invitations: three nodes run FROST key generation through
//! sealed relays; the session id changes with anything in the invitation; every
//! participant refuses a bad invitation; messages of one session are refused in another.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_bytes::ByteBuf;
use strongroom_threshold::channel::ChannelSecret;
use strongroom_threshold::frost::{Dkg, Ed25519Sha512, FrostKey};
use strongroom_threshold::session::{Invitation, NodeId, Progress, Relayed, Session, SessionKind};
use strongroom_threshold::{Scheme, ThresholdError};

const GENESIS: [u8; 32] = [0x6e; 32];
const NOW: u64 = 1_800_000_000;

fn nodes() -> Vec<NodeId> {
    vec![[1; 16], [2; 16], [3; 16]]
}

fn invitation() -> Invitation {
    Invitation {
        genesis: GENESIS,
        kind: SessionKind::Keygen {
            scheme: Scheme::Ed25519,
            threshold: 2,
        },
        participants: nodes(),
        request: Some(ByteBuf::from(
            b"POST /v1/keys {\"threshold\":\"2-of-3\"} stamped".to_vec(),
        )),
        nonce: [9; 32],
        issued_at: NOW,
    }
}

type KeySession = Session<FrostKey<Ed25519Sha512>>;

fn start(
    invitation: &Invitation,
    secrets: &[ChannelSecret],
) -> (Vec<KeySession>, Vec<Progress<FrostKey<Ed25519Sha512>>>) {
    let keys: Vec<[u8; 32]> = secrets.iter().map(ChannelSecret::public).collect();
    let mut sessions = Vec::new();
    let mut progress = Vec::new();
    for (i, node) in invitation.participants.iter().enumerate() {
        let me = invitation.check(node, &GENESIS, NOW + 5, 60).unwrap();
        assert_eq!(usize::from(me), i);
        let party = Box::new(Dkg::<Ed25519Sha512>::new(me, 3, 2).unwrap());
        let (session, first) = Session::start(invitation, me, &secrets[i], &keys, party).unwrap();
        sessions.push(session);
        progress.push(first);
    }
    (sessions, progress)
}

#[test]
fn three_nodes_make_a_key_through_relays() {
    let secrets: Vec<ChannelSecret> = (0..3).map(|_| ChannelSecret::generate().unwrap()).collect();
    let invitation = invitation();
    let (mut sessions, mut progress) = start(&invitation, &secrets);
    let id = invitation.session_id().unwrap();
    let mut keys: Vec<Option<FrostKey<Ed25519Sha512>>> = vec![None, None, None];
    for _round in 0..4 {
        let mut inboxes: Vec<Vec<_>> = vec![Vec::new(); 3];
        for p in progress.drain(..) {
            for sealed in p.outgoing {
                inboxes[usize::from(sealed.to)].push(sealed);
            }
        }
        for (i, inbox) in inboxes.into_iter().enumerate() {
            if keys[i].is_some() || inbox.is_empty() {
                continue;
            }
            let p = sessions[i]
                .receive(Relayed {
                    session: id,
                    messages: inbox,
                })
                .unwrap();
            if let Some(key) = p.output {
                keys[i] = Some(key);
            }
            progress.push(Progress {
                outgoing: p.outgoing,
                output: None,
            });
        }
    }
    let digests: Vec<[u8; 32]> = keys
        .iter()
        .map(|k| k.as_ref().unwrap().public_digest().unwrap())
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn messages_of_another_session_are_refused() {
    let secrets: Vec<ChannelSecret> = (0..3).map(|_| ChannelSecret::generate().unwrap()).collect();
    let one = invitation();
    let mut other = invitation();
    other.nonce = [8; 32];
    let (_, progress_one) = start(&one, &secrets);
    let (mut sessions_two, _) = start(&other, &secrets);
    let to_one: Vec<_> = progress_one[0]
        .outgoing
        .iter()
        .filter(|s| s.to == 1)
        .cloned()
        .collect();
    // Relabelled with the other session's id, the channel refuses them.
    let relayed = Relayed {
        session: other.session_id().unwrap(),
        messages: to_one.clone(),
    };
    assert!(matches!(
        sessions_two[1].receive(relayed),
        Err(ThresholdError::Channel(_))
    ));
    // Under their own id, the session refuses them before opening.
    let relayed = Relayed {
        session: one.session_id().unwrap(),
        messages: to_one,
    };
    assert!(matches!(
        sessions_two[1].receive(relayed),
        Err(ThresholdError::Material {
            what: "invitation",
            ..
        })
    ));
}

#[test]
fn the_session_id_binds_everything_in_the_invitation() {
    let base = invitation().session_id().unwrap();
    let mut changed = Vec::new();
    let mut i = invitation();
    i.participants.swap(0, 1);
    changed.push(i);
    let mut i = invitation();
    i.request = Some(ByteBuf::from(b"another request".to_vec()));
    changed.push(i);
    let mut i = invitation();
    i.kind = SessionKind::Keygen {
        scheme: Scheme::Ed25519,
        threshold: 3,
    };
    changed.push(i);
    let mut i = invitation();
    i.genesis = [0; 32];
    changed.push(i);
    let mut i = invitation();
    i.issued_at += 1;
    changed.push(i);
    for i in changed {
        assert_ne!(i.session_id().unwrap(), base);
    }
    let bytes = invitation().to_bytes().unwrap();
    assert_eq!(
        Invitation::from_bytes(&bytes)
            .unwrap()
            .session_id()
            .unwrap(),
        base
    );
}

#[test]
fn participants_refuse_a_bad_invitation() {
    let me = nodes()[0];
    let refuse = |i: &Invitation| {
        assert!(matches!(
            i.check(&me, &GENESIS, NOW, 60),
            Err(ThresholdError::Material {
                what: "invitation",
                ..
            })
        ));
    };
    let mut i = invitation();
    i.participants = vec![me, me, [3; 16]];
    refuse(&i);
    let mut i = invitation();
    i.participants = vec![me];
    refuse(&i);
    let mut i = invitation();
    i.participants = vec![[2; 16], [3; 16]];
    refuse(&i);
    let mut i = invitation();
    i.genesis = [0; 32];
    refuse(&i);
    let mut i = invitation();
    i.issued_at = NOW - 61;
    refuse(&i);
    let mut i = invitation();
    i.participants = (0..17u8).map(|b| [b; 16]).collect();
    refuse(&i);
    assert!(Invitation::from_bytes(&vec![0u8; 400 * 1024]).is_err());
}
