//! Ethereum payload decoding for the enclave: transactions, EIP-712 typed data and
//! personal_sign messages, each decoded into the intent the policy engine judges.
//!
//! Every decoder reads hostile input (the parent instance is untrusted): sizes are checked
//! before parsing, nothing panics, and refusals are typed [`DecodeError`]s that name the
//! field. RLP, ABI and EIP-712 encoding are alloy's; this crate adds the strictness a
//! signer needs on top. It never signs: the enclave signs [`UnsignedTransaction::signing_hash`],
//! [`TypedData::signing_hash`] or the message intent's hash with its own k256 code and
//! hands the signature back to [`UnsignedTransaction::encode_signed`] or
//! [`signature_hex`].

mod calldata;
mod erc20;
mod error;
mod json;
mod message;
mod tx;
mod typed_data;

pub use alloy_primitives::{Address, B256};
pub use error::DecodeError;
pub use json::{from_slice_strict, parse_strict};
pub use message::{MAX_MESSAGE_BODY_LEN, message_from_request_body};
pub use tx::{MAX_UNSIGNED_TRANSACTION_LEN, SignedTransaction, UnsignedTransaction};
pub use typed_data::{MAX_TYPE_DEPTH, MAX_TYPE_NODES, TypedData};

/// Longest `/sign/transaction` request body.
pub const MAX_TRANSACTION_BODY_LEN: usize = 128 * 1024;
/// Longest transaction calldata.
pub const MAX_CALLDATA_LEN: usize = 64 * 1024;
/// Longest `/sign/typed-data` body (the typed-data JSON).
pub const MAX_TYPED_DATA_LEN: usize = 64 * 1024;
/// Longest personal_sign message, in bytes.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;

/// The 65-byte `r ‖ s ‖ v` signature wallets return for typed data and messages, as
/// `0x` hex, with `v = 27 + y_parity`.
pub fn signature_hex(r: [u8; 32], s: [u8; 32], y_parity: bool) -> String {
    let mut sig = [0u8; 65];
    sig[..32].copy_from_slice(&r);
    sig[32..64].copy_from_slice(&s);
    sig[64] = 27 + u8::from(y_parity);
    format!("0x{}", alloy_primitives::hex::encode(sig))
}
