//! What a request would do once signed, as decoded inside the enclave. The policy engine
//! judges intents, never opaque bytes; the decoders (`strongroom-eth`) produce them.

use alloy_primitives::{Address, B256, Bytes, U256};
use serde::{Deserialize, Serialize};

/// What the caller asks the enclave to do with a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Generate a new signing key.
    CreateKey,
    /// Destroy a key.
    DestroyKey,
    /// Sign an Ethereum transaction decoded by the enclave.
    SignTransaction,
    /// Sign EIP-712 typed data decoded by the enclave.
    SignTypedData,
    /// Sign a personal_sign (EIP-191) message.
    SignMessage,
    /// Sign an opaque 32-byte digest (blind signing).
    SignDigest,
}

impl Action {
    /// The name used in policy documents and decisions.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::CreateKey => "create_key",
            Action::DestroyKey => "destroy_key",
            Action::SignTransaction => "sign_transaction",
            Action::SignTypedData => "sign_typed_data",
            Action::SignMessage => "sign_message",
            Action::SignDigest => "sign_digest",
        }
    }
}

/// The decoded payload of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Intent {
    /// Create a key with this label.
    CreateKey {
        /// The new key's label.
        label: String,
    },
    /// Destroy the request's key.
    DestroyKey,
    /// An Ethereum transaction.
    Transaction(TransactionIntent),
    /// EIP-712 typed data.
    TypedData(TypedDataIntent),
    /// A personal_sign message (EIP-191 version 0x45).
    Message(MessageIntent),
    /// A blind 32-byte digest.
    Digest {
        /// The digest to sign.
        digest: B256,
    },
}

impl Intent {
    /// The action this intent needs.
    pub fn action(&self) -> Action {
        match self {
            Intent::CreateKey { .. } => Action::CreateKey,
            Intent::DestroyKey => Action::DestroyKey,
            Intent::Transaction(_) => Action::SignTransaction,
            Intent::TypedData(_) => Action::SignTypedData,
            Intent::Message(_) => Action::SignMessage,
            Intent::Digest { .. } => Action::SignDigest,
        }
    }

    /// The digest approvers sign: SHA-256 over a domain tag, the key id and the compact
    /// JSON of the intent (serde's field order). Approvers approve what a request does, not
    /// opaque bytes, and anyone holding the intent's JSON can recompute it.
    pub fn digest(&self, key_id: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        // Serialising plain data cannot fail; an empty encoding would still be bound to
        // the key id and could only ever match itself.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(b"strongroom/v1/intent");
        h.update((key_id.len() as u32).to_be_bytes());
        h.update(key_id.as_bytes());
        h.update((json.len() as u64).to_be_bytes());
        h.update(&json);
        h.finalize().into()
    }

    /// Native value moved (wei); zero for anything but a transaction.
    pub fn native_value(&self) -> U256 {
        match self {
            Intent::Transaction(t) => t.value,
            _ => U256::ZERO,
        }
    }
}

/// Which transaction envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxType {
    /// Legacy with EIP-155 replay protection (type 0).
    Legacy,
    /// EIP-2930 access-list transaction (type 1).
    Eip2930,
    /// EIP-1559 dynamic-fee transaction (type 2).
    Eip1559,
}

/// A decoded Ethereum transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionIntent {
    /// Envelope type.
    pub tx_type: TxType,
    /// EIP-155 chain id (always present: the enclave refuses transactions without one).
    pub chain_id: u64,
    /// Sender's account nonce.
    pub nonce: u64,
    /// Recipient; `None` deploys a contract.
    pub to: Option<Address>,
    /// Native value in wei.
    pub value: U256,
    /// Gas limit.
    pub gas_limit: u64,
    /// Most the sender pays per gas: `gasPrice` (types 0, 1) or `maxFeePerGas` (type 2).
    #[serde(with = "quantity")]
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas` (type 2 only).
    #[serde(with = "optional_quantity")]
    pub max_priority_fee_per_gas: Option<u128>,
    /// The first four bytes of calldata, when there are at least four.
    pub selector: Option<[u8; 4]>,
    /// Length of the calldata in bytes.
    pub data_len: usize,
    /// The calldata decoded as an ERC-20 call, when the selector is one of them and the
    /// arguments decode.
    pub erc20: Option<Erc20Call>,
    /// The whole calldata: approvers approve every byte that is signed, not a summary.
    #[serde(default)]
    pub data: Bytes,
    /// The EIP-2930 access list (types 1 and 2; empty otherwise).
    #[serde(default)]
    pub access_list: Vec<AccessListEntry>,
    /// The hash the enclave signs (keccak256 of the unsigned encoding). It covers every
    /// field, so two transactions that differ anywhere have different intent digests.
    #[serde(default)]
    pub signing_hash: B256,
    /// The calldata decoded for approvers, when its function is one the enclave knows
    /// (ERC-20, ERC-721, ERC-1155, Permit2, Safe, Uniswap's universal router).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Box<DecodedCall>>,
}

/// One EIP-2930 access-list entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessListEntry {
    /// The account.
    pub address: Address,
    /// Its storage slots.
    pub storage_keys: Vec<B256>,
}

/// Calldata decoded for display: which function, and its arguments by name. Derived from
/// `data` by the enclave, and part of the intent approvers sign; the policy's rules read
/// `selector` and `erc20`, never this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodedCall {
    /// Which interface the function belongs to (`ERC-20`, `Safe`, …).
    pub standard: String,
    /// The function's signature with argument names, e.g.
    /// `transfer(address to, uint256 amount)`.
    pub function: String,
    /// The arguments in order.
    pub args: Vec<CallArg>,
    /// Calls this one makes that the enclave could read: a Safe transaction's call, a
    /// `multiSend` batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<InnerCall>,
    /// A universal router `execute`'s commands, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<RouterCommand>,
    /// What the decoding could not vouch for (trailing bytes, non-canonical encoding, a
    /// nesting or size limit reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One decoded argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallArg {
    /// Its name in the interface.
    pub name: String,
    /// Its ABI type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Its value as text: addresses checksummed, integers in decimal, bytes as hex, arrays
    /// in `[…]`, tuples in `(…)`.
    pub value: String,
}

/// A call made on the signer's behalf by the contract called (a Safe's `execTransaction`,
/// each transaction of a `multiSend`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InnerCall {
    /// `call` or `delegatecall` (a delegatecall runs foreign code with the Safe's rights).
    pub operation: String,
    /// The account called.
    pub to: Address,
    /// Native value sent (wei).
    pub value: U256,
    /// The calldata.
    pub data: Bytes,
    /// The calldata decoded, when its function is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Box<DecodedCall>>,
}

/// One command of a universal router `execute`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterCommand {
    /// The command's name (`V3_SWAP_EXACT_IN`, …), or `UNKNOWN_0xNN`.
    pub command: String,
    /// Whether a revert of this command is allowed (the `0x80` flag).
    pub allow_revert: bool,
    /// Its input decoded, when the command's layout is known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<CallArg>,
    /// Its input as hex.
    pub input: Bytes,
}

impl TransactionIntent {
    /// The most this transaction can pay in fees: gas limit × max fee per gas.
    pub fn max_fee_total(&self) -> U256 {
        U256::from(self.gas_limit) * U256::from(self.max_fee_per_gas)
    }
}

/// An ERC-20 call decoded from calldata; `token` is the transaction's `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Erc20Call {
    /// `transfer(address to, uint256 amount)`, selector a9059cbb.
    Transfer {
        /// Token contract.
        token: Address,
        /// Recipient of the tokens.
        to: Address,
        /// Amount in the token's base units.
        amount: U256,
    },
    /// `transferFrom(address from, address to, uint256 amount)`, selector 23b872dd.
    TransferFrom {
        /// Token contract.
        token: Address,
        /// Owner the tokens move from.
        from: Address,
        /// Recipient of the tokens.
        to: Address,
        /// Amount in the token's base units.
        amount: U256,
    },
    /// `approve(address spender, uint256 amount)`, selector 095ea7b3.
    Approve {
        /// Token contract.
        token: Address,
        /// Who may spend.
        spender: Address,
        /// Allowance in the token's base units.
        amount: U256,
    },
}

impl Erc20Call {
    /// The token contract.
    pub fn token(&self) -> Address {
        match self {
            Erc20Call::Transfer { token, .. }
            | Erc20Call::TransferFrom { token, .. }
            | Erc20Call::Approve { token, .. } => *token,
        }
    }

    /// The amount moved or allowed.
    pub fn amount(&self) -> U256 {
        match self {
            Erc20Call::Transfer { amount, .. }
            | Erc20Call::TransferFrom { amount, .. }
            | Erc20Call::Approve { amount, .. } => *amount,
        }
    }
}

/// Decoded EIP-712 typed data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypedDataIntent {
    /// `domain.name`, if present.
    pub domain_name: Option<String>,
    /// `domain.version`, if present.
    pub domain_version: Option<String>,
    /// `domain.chainId`, if present.
    pub chain_id: Option<u64>,
    /// `domain.verifyingContract`, if present.
    pub verifying_contract: Option<Address>,
    /// The primary type's name.
    pub primary_type: String,
    /// The EIP-712 signing hash the enclave computed.
    pub signing_hash: B256,
    /// The value-moving structure found in the message, if the primary type is one the
    /// enclave recognises (a permit, a transfer by authorisation, an order).
    pub permit: Option<Permit>,
}

/// Value-moving typed data: a signature over it lets `spender` move the signer's tokens
/// (a permit, an order) or moves them to `spender` outright (a transfer by authorisation).
/// Spender lists exist because signing one of these is a classic way to drain a wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permit {
    /// Which scheme.
    pub scheme: PermitScheme,
    /// The counterparty: who may spend (permits; for orders the exchange contract that
    /// settles them), or who receives (transfers by authorisation).
    pub spender: Address,
    /// Token(s) covered: the verifying contract for EIP-2612, DAI and EIP-3009,
    /// `details.token` / `permitted.token` for Permit2, the offered or sold tokens of an
    /// order.
    pub tokens: Vec<Address>,
    /// Largest amount covered (`U256::MAX` when unlimited or unknown).
    pub amount: U256,
}

/// Value-moving typed-data schemes recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermitScheme {
    /// EIP-2612 `Permit(owner, spender, value, nonce, deadline)` (also ERC-721 permits:
    /// `Permit(spender, tokenId, …)`, amount unknown).
    Eip2612,
    /// DAI's `Permit(holder, spender, nonce, expiry, allowed)`: unlimited or revoked.
    DaiPermit,
    /// Uniswap Permit2 `PermitSingle`, `PermitBatch`, `PermitTransferFrom`,
    /// `PermitBatchTransferFrom` and their witness forms.
    Permit2,
    /// EIP-3009 `TransferWithAuthorization` / `ReceiveWithAuthorization(from, to, value,
    /// validAfter, validBefore, nonce)` (USDC): the tokens move to `to`.
    Eip3009,
    /// A Seaport `OrderComponents`: the offered items go to whoever fulfils it through the
    /// Seaport contract.
    SeaportOrder,
    /// A CoW Protocol `Order`: `sellAmount` of `sellToken` for the settlement contract.
    CowOrder,
}

/// A decoded personal_sign message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageIntent {
    /// Message length in bytes.
    pub len: usize,
    /// The message when it is printable UTF-8 (for decisions and approvers), else `None`.
    pub text: Option<String>,
    /// The EIP-191 signing hash the enclave computed.
    pub signing_hash: B256,
}

/// u128 as an Ethereum hex quantity (`"0x…"`): JSON numbers beyond 2^64 do not survive
/// `serde_json::Value` or JavaScript clients.
mod quantity {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:#x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    pub fn parse(text: &str) -> Result<u128, String> {
        let digits = text
            .strip_prefix("0x")
            .ok_or_else(|| format!("{text:?} is not a 0x quantity"))?;
        u128::from_str_radix(digits, 16).map_err(|e| format!("{text:?}: {e}"))
    }
}

/// `Option<u128>` as an Ethereum hex quantity or null.
mod optional_quantity {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u128>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::quantity::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u128>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| super::quantity::parse(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn intents_round_trip_through_json_values_with_fees_beyond_u64() {
        let intent = Intent::Transaction(TransactionIntent {
            tx_type: TxType::Eip1559,
            chain_id: 1,
            nonce: 0,
            to: None,
            value: U256::MAX,
            gas_limit: u64::MAX,
            max_fee_per_gas: u128::MAX,
            max_priority_fee_per_gas: Some(u128::MAX - 1),
            selector: Some([1, 2, 3, 4]),
            data_len: 4,
            erc20: None,
            data: Bytes::from_static(&[1, 2, 3, 4]),
            access_list: vec![AccessListEntry {
                address: Address::repeat_byte(7),
                storage_keys: vec![B256::repeat_byte(8)],
            }],
            signing_hash: B256::repeat_byte(9),
            call: None,
        });
        let value = serde_json::to_value(&intent).unwrap();
        assert_eq!(
            value["max_fee_per_gas"],
            "0xffffffffffffffffffffffffffffffff"
        );
        let back: Intent = serde_json::from_value(value).unwrap();
        assert_eq!(back, intent);
        // The digest depends on every field and on the key.
        assert_ne!(intent.digest("a"), intent.digest("b"));
        assert_eq!(intent.digest("a"), back.digest("a"));
    }
}
