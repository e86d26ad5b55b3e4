//! Property tests: the decoder never panics, and encoding round-trips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use strongroom_protocol::{
    DEFAULT_MAX_FRAME_LEN, Envelope, FrameStatus, LENGTH_PREFIX_LEN, PROTOCOL_VERSION,
    ProtocolError, decode_frame, decode_payload, encode_frame, parse_frame,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TestMsg {
    Ping,
    Echo(String),
    Blob(Vec<u8>),
    Pair { id: u64, delta: Option<i64> },
    Batch(Vec<TestMsg>),
}

fn test_msg() -> impl Strategy<Value = TestMsg> {
    let leaf = prop_oneof![
        Just(TestMsg::Ping),
        any::<String>().prop_map(TestMsg::Echo),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(TestMsg::Blob),
        (any::<u64>(), any::<Option<i64>>()).prop_map(|(id, delta)| TestMsg::Pair { id, delta }),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(TestMsg::Batch)
    })
}

/// A length prefix that matches `payload`, so the decoder gets past the framing.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), max in 0u32..1024) {
        let _ = parse_frame(&bytes, max);
        let _ = decode_frame::<ciborium::Value>(&bytes, max);
        let _ = decode_frame::<TestMsg>(&bytes, max);
    }

    #[test]
    fn arbitrary_payloads_never_panic(payload in prop::collection::vec(any::<u8>(), 0..512)) {
        let frame = framed(&payload);
        let value = decode_frame::<ciborium::Value>(&frame, DEFAULT_MAX_FRAME_LEN);
        let typed = decode_frame::<TestMsg>(&frame, DEFAULT_MAX_FRAME_LEN);
        // Framing is right, so any failure is a body error.
        for err in [value.err(), typed.err()].into_iter().flatten() {
            prop_assert!(err.is_body_error(), "{err:?}");
        }
    }

    #[test]
    fn payloads_behind_a_valid_envelope_start_never_panic(
        request_id in any::<u64>(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        // [1, request_id, <arbitrary bytes>] reaches the body decoder every time.
        let mut payload = vec![0x83];
        ciborium::ser::into_writer(&PROTOCOL_VERSION, &mut payload).unwrap();
        ciborium::ser::into_writer(&request_id, &mut payload).unwrap();
        payload.extend_from_slice(&body);
        let _ = decode_payload::<ciborium::Value>(&payload);
        let _ = decode_payload::<TestMsg>(&payload);
    }

    #[test]
    fn envelopes_round_trip(request_id in any::<u64>(), body in test_msg()) {
        let envelope = Envelope::new(request_id, body);
        let frame = encode_frame(&envelope, DEFAULT_MAX_FRAME_LEN).unwrap();
        let (decoded, consumed) = decode_frame::<TestMsg>(&frame, DEFAULT_MAX_FRAME_LEN).unwrap();
        prop_assert_eq!(decoded, envelope);
        prop_assert_eq!(consumed, frame.len());
    }

    #[test]
    fn frames_split_anywhere_reassemble(
        bodies in prop::collection::vec(test_msg(), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut stream = Vec::new();
        for (id, body) in bodies.iter().enumerate() {
            let envelope = Envelope::new(id as u64, body.clone());
            stream.extend_from_slice(&encode_frame(&envelope, DEFAULT_MAX_FRAME_LEN).unwrap());
        }
        // Feed the bytes in two pieces, as a socket might deliver them.
        let cut = cut.index(stream.len() + 1);
        let mut buffer = stream[..cut].to_vec();
        let mut later = &stream[cut..];
        let mut decoded = Vec::new();
        loop {
            match parse_frame(&buffer, DEFAULT_MAX_FRAME_LEN).unwrap() {
                FrameStatus::Complete { payload, consumed } => {
                    let envelope = strongroom_protocol::decode_payload::<TestMsg>(payload).unwrap();
                    decoded.push(envelope.body);
                    buffer.drain(..consumed);
                }
                FrameStatus::Incomplete { missing } => {
                    prop_assert!(missing > 0);
                    if later.is_empty() {
                        break;
                    }
                    buffer.extend_from_slice(later);
                    later = &[];
                }
            }
        }
        prop_assert!(buffer.is_empty());
        prop_assert_eq!(decoded, bodies);
    }

    #[test]
    fn other_versions_are_mismatches(version in any::<u16>(), request_id in any::<u64>(), body in test_msg()) {
        prop_assume!(version != PROTOCOL_VERSION);
        let frame = encode_frame(&Envelope { version, request_id, body }, DEFAULT_MAX_FRAME_LEN).unwrap();
        let err = decode_frame::<TestMsg>(&frame, DEFAULT_MAX_FRAME_LEN).unwrap_err();
        prop_assert!(
            matches!(err, ProtocolError::VersionMismatch { ours: PROTOCOL_VERSION, theirs } if theirs == version),
            "{:?}", err
        );
    }

    #[test]
    fn oversized_prefixes_are_refused_from_the_prefix_alone(max in 0u32..u32::MAX, extra in 1u32..1000) {
        let declared = max.saturating_add(extra);
        prop_assume!(declared > max);
        let prefix: [u8; LENGTH_PREFIX_LEN] = declared.to_be_bytes();
        prop_assert!(
            matches!(parse_frame(&prefix, max), Err(ProtocolError::FrameTooLarge { .. })),
            "declared {} max {}", declared, max
        );
    }
}
