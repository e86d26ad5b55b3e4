//! Shared test fixtures.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use alloy_primitives::{Address, B256, U256};
use serde_json::{Value, json};
use strongroom_policy::{
    Context, Decision, Engine, Erc20Call, Intent, KeyRef, MessageIntent, Permit, PermitScheme,
    Policy, PolicyError, TransactionIntent, TxType, TypedDataIntent, Velocity,
};

/// Ed25519 public keys from seeds [0x41; 32], [0x42; 32], [0x43; 32]; P-256 from [0x45; 32].
pub const ALICE: &str = "db995fe25169d141cab9bbba92baa01f9f2e1ece7df4cb2ac05190f37fcc1f9d";
pub const BOB: &str = "2152f8d19b791d24453242e15f2eab6cb7cffa7b6a5ed30097960e069881db12";
pub const CAROL: &str = "22fc297792f0b6ffc0bfcfdb7edb0c0aa14e025a365ec0e342e86e3829cb74b6";
pub const DAVE_P256: &str = "02301589d59d6b78ca23dcc0f674a5210a4745d8e42d5b42ee1c4e720d3e05f4b3";

/// Tuesday 2023-11-14 22:13:20 UTC.
pub const NOW: u64 = 1_700_000_000;
/// The signing key requests name by default.
pub const KEY_ID: &str = "0123456789abcdef0123456789abcdef";
pub const KEY_LABEL: &str = "treasury";

pub fn principals() -> Value {
    json!([
        {"id": "alice", "roles": ["signer"], "keys": [{"algorithm": "ed25519", "public": ALICE}]},
        {"id": "bob", "roles": ["approver"], "keys": [{"algorithm": "ed25519", "public": BOB}]},
        {"id": "carol", "roles": ["approver", "signer"], "keys": [{"algorithm": "ed25519", "public": CAROL}]},
        {"id": "dave", "keys": [{"algorithm": "ecdsa-p256", "public": DAVE_P256}]}
    ])
}

pub fn document(rules: Value) -> Value {
    json!({"version": 1, "principals": principals(), "rules": rules})
}

pub fn try_policy(rules: Value) -> Result<Policy, PolicyError> {
    Policy::from_json(&serde_json::to_vec(&document(rules)).unwrap())
}

pub fn policy(rules: Value) -> Policy {
    try_policy(rules).unwrap()
}

pub fn policy_err(rules: Value) -> PolicyError {
    try_policy(rules).unwrap_err()
}

pub fn addr(n: u8) -> Address {
    Address::repeat_byte(n)
}

/// An address as a checksummed string.
pub fn a(n: u8) -> String {
    addr(n).to_checksum(None)
}

pub fn eth_milli(milli: u64) -> U256 {
    U256::from(milli) * U256::from(1_000_000_000_000_000u64)
}

pub fn eth(n: u64) -> U256 {
    eth_milli(n * 1000)
}

pub const GWEI: u128 = 1_000_000_000;

pub fn tx() -> TransactionIntent {
    TransactionIntent {
        tx_type: TxType::Eip1559,
        chain_id: 1,
        nonce: 0,
        to: Some(addr(0xaa)),
        value: U256::ZERO,
        gas_limit: 21_000,
        max_fee_per_gas: 30 * GWEI,
        max_priority_fee_per_gas: Some(GWEI),
        selector: None,
        data_len: 0,
        erc20: None,
        data: Default::default(),
        access_list: Vec::new(),
        signing_hash: Default::default(),
        call: None,
    }
}

pub fn transfer(value: U256) -> Intent {
    Intent::Transaction(TransactionIntent { value, ..tx() })
}

pub fn erc20_tx(call: Erc20Call) -> Intent {
    let selector = match call {
        Erc20Call::Transfer { .. } => [0xa9, 0x05, 0x9c, 0xbb],
        Erc20Call::TransferFrom { .. } => [0x23, 0xb8, 0x72, 0xdd],
        Erc20Call::Approve { .. } => [0x09, 0x5e, 0xa7, 0xb3],
    };
    Intent::Transaction(TransactionIntent {
        to: Some(call.token()),
        selector: Some(selector),
        data_len: 68,
        erc20: Some(call),
        ..tx()
    })
}

pub fn token_transfer(token: u8, to: u8, amount: u64) -> Intent {
    erc20_tx(Erc20Call::Transfer {
        token: addr(token),
        to: addr(to),
        amount: U256::from(amount),
    })
}

pub fn typed() -> TypedDataIntent {
    TypedDataIntent {
        domain_name: Some("Example".into()),
        domain_version: Some("1".into()),
        chain_id: Some(1),
        verifying_contract: Some(addr(0xcc)),
        primary_type: "Order".into(),
        signing_hash: B256::repeat_byte(1),
        permit: None,
    }
}

pub fn permit(spender: u8) -> Intent {
    Intent::TypedData(TypedDataIntent {
        primary_type: "Permit".into(),
        permit: Some(Permit {
            scheme: PermitScheme::Eip2612,
            spender: addr(spender),
            tokens: vec![addr(0xcc)],
            amount: U256::from(1000),
        }),
        ..typed()
    })
}

pub fn message(len: usize) -> Intent {
    Intent::Message(MessageIntent {
        len,
        text: None,
        signing_hash: B256::repeat_byte(2),
    })
}

pub fn digest() -> Intent {
    Intent::Digest {
        digest: B256::repeat_byte(3),
    }
}

/// A request whose context borrows from it.
#[derive(Clone, Debug)]
pub struct Req {
    pub principal: String,
    pub key: Option<(String, String)>,
    pub intent: Intent,
    pub now: u64,
    pub requested_at: u64,
    pub approvals: BTreeSet<String>,
}

impl Req {
    pub fn new(intent: Intent) -> Self {
        let key = match intent {
            Intent::CreateKey { .. } => None,
            _ => Some((KEY_ID.to_owned(), KEY_LABEL.to_owned())),
        };
        Self {
            principal: "alice".into(),
            key,
            intent,
            now: NOW,
            requested_at: NOW,
            approvals: BTreeSet::new(),
        }
    }

    pub fn by(mut self, principal: &str) -> Self {
        self.principal = principal.into();
        self
    }

    pub fn key(mut self, id: &str, label: &str) -> Self {
        self.key = Some((id.into(), label.into()));
        self
    }

    pub fn at(mut self, now: u64) -> Self {
        self.now = now;
        self
    }

    pub fn approved_by(mut self, ids: &[&str]) -> Self {
        self.approvals = ids.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn ctx(&self) -> Context<'_> {
        Context {
            principal: &self.principal,
            key: self.key.as_ref().map(|(id, label)| KeyRef { id, label }),
            intent: &self.intent,
            now: self.now,
            requested_at: self.requested_at,
            approvals: &self.approvals,
        }
    }
}

pub fn decide(policy: &Policy, req: &Req) -> Decision {
    Engine::new(policy.clone(), Velocity::default()).decide(&req.ctx())
}

/// The reason of a decision that must be a Deny.
pub fn denied(policy: &Policy, req: &Req) -> String {
    let d = decide(policy, req);
    assert_eq!(d.outcome, strongroom_policy::Outcome::Deny, "{d:?}");
    d.reason
}

pub fn allowed(policy: &Policy, req: &Req) -> bool {
    decide(policy, req).is_allow()
}
