//! The crate's one error type.

/// Why a transaction, typed-data document or message was refused.
///
/// Every decoder in this crate reads hostile input: messages name the field and what is
/// wrong with it, so a caller can fix the request without guessing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is larger than its limit; refused before parsing.
    #[error("{what} is {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// What was too large ("request body", "calldata", …).
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON, or JSON with a duplicated object key.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A JSON value had the wrong shape (object expected, string expected, …).
    #[error("{what} must be {expected}")]
    WrongShape {
        /// Which value.
        what: String,
        /// What it must be.
        expected: &'static str,
    },
    /// An object has a field this decoder does not know.
    #[error("unknown field `{field}` in {context}")]
    UnknownField {
        /// Which object.
        context: &'static str,
        /// The field as written.
        field: String,
    },
    /// A required field is absent (or null).
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field is present but its value is malformed.
    #[error("field `{field}`: {reason}")]
    InvalidField {
        /// The field, with its path for nested values (`accessList[1].address`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A number does not fit its type.
    #[error("field `{field}` does not fit in {bits} bits")]
    Overflow {
        /// The field.
        field: &'static str,
        /// The width of the type it must fit.
        bits: u32,
    },
    /// Two fields that must not appear together, or that must agree and do not.
    #[error("fields `{0}` and `{1}` conflict: {2}")]
    Conflict(&'static str, &'static str, &'static str),
    /// A transaction type the enclave does not sign.
    #[error("transaction type {ty} ({name}) is not supported; only types 0, 1 and 2 are")]
    UnsupportedType {
        /// The EIP-2718 type number (saturated at 255 for JSON values beyond a byte).
        ty: u64,
        /// What that type is.
        name: &'static str,
    },
    /// A legacy transaction without EIP-155 replay protection: its signature would be
    /// valid on every chain.
    #[error("legacy transaction without a chain id (pre-EIP-155) is refused")]
    PreEip155,
    /// A chain id of zero: it protects against no replay.
    #[error("chain id 0 is refused")]
    ZeroChainId,
    /// `maxPriorityFeePerGas` above `maxFeePerGas`; nodes refuse these and they signal a
    /// confused or hostile client.
    #[error("maxPriorityFeePerGas ({priority}) exceeds maxFeePerGas ({max})")]
    PriorityFeeAboveMax {
        /// The priority fee.
        priority: u128,
        /// The max fee.
        max: u128,
    },
    /// The unsigned encoding is not well-formed RLP for its type.
    #[error("malformed RLP in {context}: {source}")]
    Rlp {
        /// Where in the encoding.
        context: &'static str,
        /// What alloy-rlp reported.
        source: alloy_rlp::Error,
    },
    /// Bytes left after a complete encoding.
    #[error("{0} trailing bytes after the transaction encoding")]
    TrailingBytes(usize),
    /// `transaction` and `unsigned` were both given and describe different transactions.
    #[error("`transaction` and `unsigned` differ in `{field}`")]
    Mismatch {
        /// The first field that differs.
        field: &'static str,
    },
    /// The EIP-712 document is malformed, or alloy could not encode or hash it.
    #[error("typed data: {0}")]
    TypedData(String),
}
