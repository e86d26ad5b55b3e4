//! The encoding of protocol messages: CBOR of the protocol crates' own serde types,
//! bounded before it is read.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ProtocolError;
use crate::party::PartyIndex;

/// Largest protocol message, in bytes. The largest are CGGMP24's auxiliary-information
/// proofs (212,066 bytes for three parties in the tests).
pub const MAX_MESSAGE_LEN: usize = 1024 * 1024;

/// CBOR of a message (or of stored material).
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| ProtocolError::Aborted {
        reason: format!("a message did not encode: {e}"),
        blame: Vec::new(),
    })?;
    Ok(out)
}

/// Reads a message from `from`, refusing one over the limit or with trailing bytes.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    from: PartyIndex,
) -> Result<T, ProtocolError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(ProtocolError::TooLarge {
            from,
            len: bytes.len(),
        });
    }
    let mut reader = bytes;
    let value =
        ciborium::from_reader(&mut reader).map_err(|_| ProtocolError::Undecodable { from })?;
    if !reader.is_empty() {
        return Err(ProtocolError::Undecodable { from });
    }
    Ok(value)
}
