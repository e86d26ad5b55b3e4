//! A relaying parent that flips, drops, replays, re-orders or re-routes sealed messages, or
//! replays them into another session: the session stops, and no party finishes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::network;

use strongroom_threshold::channel::{ChannelSecret, Channels, Sealed};
use strongroom_threshold::frost::{Dkg, Ed25519Sha512, FrostKey};
use strongroom_threshold::{ChannelError, Message, Party, Recipient, ThresholdError};

fn parties() -> Vec<Box<dyn Party<Output = FrostKey<Ed25519Sha512>>>> {
    (0..3)
        .map(|i| {
            Box::new(Dkg::<Ed25519Sha512>::new(i, 3, 2).unwrap()) as Box<dyn Party<Output = _>>
        })
        .collect()
}

fn refused(
    results: &[Result<FrostKey<Ed25519Sha512>, ThresholdError>],
    check: impl Fn(&ChannelError) -> bool,
) {
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(ThresholdError::Channel(e)) if check(e))),
        "{:?}",
        results.iter().map(|r| r.as_ref().err()).collect::<Vec<_>>()
    );
    assert!(
        results.iter().all(Result::is_err),
        "no party may finish with a key"
    );
}

#[test]
fn honest_relay_finishes() {
    let results = network::run_sealed(parties(), [1; 32], &mut |s| vec![s]);
    assert!(results.iter().all(Result::is_ok));
}

#[test]
fn flipped_bit_is_refused() {
    let mut n = 0;
    let results = network::run_sealed(parties(), [1; 32], &mut |mut s| {
        n += 1;
        if n == 4 {
            s.ciphertext[0] ^= 0x80;
        }
        vec![s]
    });
    refused(&results, |e| matches!(e, ChannelError::Unauthentic { .. }));
}

#[test]
fn dropped_message_is_refused() {
    let mut n = 0;
    let results = network::run_sealed(parties(), [1; 32], &mut |s| {
        n += 1;
        if n == 2 { Vec::new() } else { vec![s] }
    });
    // The recipient sees the next message from that sender out of order, or never
    // finishes: either way nobody holds a key.
    assert!(results.iter().all(Result::is_err));
}

#[test]
fn replayed_message_is_refused() {
    let mut n = 0;
    let results = network::run_sealed(parties(), [1; 32], &mut |s| {
        n += 1;
        if n == 1 { vec![s.clone(), s] } else { vec![s] }
    });
    refused(&results, |e| matches!(e, ChannelError::OutOfOrder { .. }));
}

#[test]
fn re_ordered_messages_are_refused() {
    let mut held: Option<Sealed> = None;
    let results = network::run_sealed(parties(), [1; 32], &mut |s| {
        // Hold the first round-2 message from 0 to 1 back behind the next one.
        if s.from == 0 && s.to == 1 && s.seq == 0 && held.is_none() {
            held = Some(s);
            return Vec::new();
        }
        if s.from == 0
            && s.to == 1
            && let Some(h) = held.take()
        {
            return vec![s, h];
        }
        vec![s]
    });
    assert!(results.iter().all(Result::is_err));
}

#[test]
fn re_routed_message_is_refused() {
    let results = network::run_sealed(parties(), [1; 32], &mut |mut s| {
        if s.from == 0 && s.to == 1 {
            s.to = 2;
        }
        vec![s]
    });
    refused(&results, |e| {
        matches!(
            e,
            ChannelError::Unauthentic { .. } | ChannelError::OutOfOrder { .. }
        )
    });
}

#[test]
fn a_message_of_another_session_is_refused() {
    let a = ChannelSecret::generate().unwrap();
    let b = ChannelSecret::generate().unwrap();
    let keys = [a.public(), b.public()];
    let mut a_one = Channels::new(&a, [1; 32], 0, &keys).unwrap();
    let mut b_two = Channels::new(&b, [2; 32], 1, &keys).unwrap();
    let mut b_one = Channels::new(&b, [1; 32], 1, &keys).unwrap();
    let message = Message {
        from: 0,
        to: Recipient::One(1),
        body: b"round one".to_vec(),
    };
    let sealed = a_one.seal(&message).unwrap().remove(0);
    assert_eq!(
        b_two.open(sealed.clone()),
        Err(ChannelError::Unauthentic { from: 0 })
    );
    let opened = b_one.open(sealed.clone()).unwrap();
    assert_eq!(opened, message);
    assert_eq!(
        b_one.open(sealed),
        Err(ChannelError::OutOfOrder {
            from: 0,
            expected: 1,
            got: 0
        })
    );
}

#[test]
fn a_broadcast_copy_cannot_pass_as_private() {
    let a = ChannelSecret::generate().unwrap();
    let b = ChannelSecret::generate().unwrap();
    let keys = [a.public(), b.public()];
    let mut sender = Channels::new(&a, [1; 32], 0, &keys).unwrap();
    let mut receiver = Channels::new(&b, [1; 32], 1, &keys).unwrap();
    let mut sealed = sender
        .seal(&Message {
            from: 0,
            to: Recipient::All,
            body: b"x".to_vec(),
        })
        .unwrap()
        .remove(0);
    assert!(sealed.broadcast);
    sealed.broadcast = false;
    assert_eq!(
        receiver.open(sealed),
        Err(ChannelError::Unauthentic { from: 0 })
    );
}
