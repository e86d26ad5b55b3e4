//! personal_sign messages (EIP-191 version 0x45).

use alloy_primitives::eip191_hash_message;
use strongroom_policy::MessageIntent;

use crate::json::{hex_bytes, object, parse_strict};
use crate::{DecodeError, MAX_MESSAGE_LEN};

/// Longest `/sign/message` body: the message hex-encoded plus room for the JSON around it.
pub const MAX_MESSAGE_BODY_LEN: usize = 2 * MAX_MESSAGE_LEN + 1024;

/// Decodes the body of `/sign/message`, `{"message": "0x…"}`, and hashes it.
///
/// The message is `0x`-prefixed hex bytes, like personal_sign's data parameter; plain
/// text is refused, because a string that happens to look like hex would otherwise be
/// ambiguous. At most [`MAX_MESSAGE_LEN`] bytes; `0x` (empty) is allowed. The hash is
/// `keccak256("\x19Ethereum Signed Message:\n" ‖ len ‖ message)`.
pub fn message_from_request_body(body: &[u8]) -> Result<(Vec<u8>, MessageIntent), DecodeError> {
    if body.len() > MAX_MESSAGE_BODY_LEN {
        return Err(DecodeError::TooLarge {
            what: "request body",
            len: body.len(),
            max: MAX_MESSAGE_BODY_LEN,
        });
    }
    let value = parse_strict(body)?;
    let map = object(&value, "request body", "request body", &["message"])?;
    let message = map
        .get("message")
        .ok_or(DecodeError::MissingField("message"))?;
    let message = hex_bytes("message", "message", message, MAX_MESSAGE_LEN)?;
    let intent = MessageIntent {
        len: message.len(),
        text: printable_text(&message),
        signing_hash: eip191_hash_message(&message),
    };
    Ok((message, intent))
}

/// The message as text when it is UTF-8 that displays as what it is: no control
/// characters but tab and newlines, and none of the invisible or direction-changing
/// characters that let one text pose as another in an approver's view.
fn printable_text(message: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(message).ok()?;
    let deceptive = |c: char| {
        matches!(c,
            '\u{200B}'..='\u{200F}' // zero-width spaces and joiners, LRM/RLM
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{FEFF}' // zero-width no-break space
        )
    };
    let printable = text
        .chars()
        .all(|c| matches!(c, '\t' | '\n' | '\r') || (!c.is_control() && !deceptive(c)));
    printable.then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn hex_message_decodes_and_hashes() {
        let (msg, intent) = message_from_request_body(br#"{"message":"0x68656c6c6f"}"#).unwrap();
        assert_eq!(msg, b"hello");
        assert_eq!(intent.len, 5);
        assert_eq!(intent.text.as_deref(), Some("hello"));
        assert_eq!(intent.signing_hash, eip191_hash_message(b"hello"));
        let (msg, intent) = message_from_request_body(br#"{"message":"0x"}"#).unwrap();
        assert!(msg.is_empty());
        assert_eq!(intent.text.as_deref(), Some(""));
    }

    #[test]
    fn refusals() {
        for body in [
            &br#"{"message":"hello"}"#[..],
            br#"{"message":"0x123"}"#,
            br#"{"message":"0xzz"}"#,
            br#"{"message":5}"#,
            br#"{}"#,
            br#"{"message":"0x00","extra":1}"#,
            br#"{"message":"0x00","message":"0x01"}"#,
            br#"["0x00"]"#,
            b"not json",
        ] {
            assert!(
                message_from_request_body(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let big = format!(r#"{{"message":"0x{}"}}"#, "00".repeat(MAX_MESSAGE_LEN + 1));
        assert!(matches!(
            message_from_request_body(big.as_bytes()),
            Err(DecodeError::TooLarge {
                what: "message",
                ..
            })
        ));
        let huge = vec![b' '; MAX_MESSAGE_BODY_LEN + 1];
        assert!(matches!(
            message_from_request_body(&huge),
            Err(DecodeError::TooLarge {
                what: "request body",
                ..
            })
        ));
    }

    #[test]
    fn text_only_when_printable() {
        assert_eq!(
            printable_text(b"line one\nline two\t!").as_deref(),
            Some("line one\nline two\t!")
        );
        assert_eq!(
            printable_text("héllo ✓".as_bytes()).as_deref(),
            Some("héllo ✓")
        );
        assert_eq!(printable_text(b"\x00\x01"), None);
        assert_eq!(printable_text(b"\xff\xfe"), None);
        assert_eq!(printable_text("pay \u{202E}evil".as_bytes()), None);
        assert_eq!(printable_text("a\u{200B}b".as_bytes()), None);
        assert_eq!(printable_text(b"bell\x07"), None);
    }
}
