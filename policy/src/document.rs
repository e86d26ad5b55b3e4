//! The document as written: serde types mirroring the JSON/TOML schema one to one. They
//! refuse unknown fields (a misspelt condition must not silently vanish) and hold scalars as
//! text; `policy.rs` validates them into the typed model and renders the model back into
//! these types for the canonical form.

use serde::{Deserialize, Deserializer, Serialize};

use crate::policy::KeySpec;

/// An amount or a duration as written: a string, or a non-negative integer (kept as its
/// decimal text). Integers are accepted because `"window": 86400` reads naturally.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a non-negative integer")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Text, E> {
                u64::try_from(v)
                    .map(|v| Text(v.to_string()))
                    .map_err(|_| E::custom("negative number"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The top level.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub version: u64,
    /// The chain JSON-RPC clients are told (`eth_chainId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    pub principals: Vec<RawPrincipal>,
    pub rules: Vec<RawRule>,
    /// The nodes of the signing group this deployment is one of (threshold keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_group: Option<RawSigningGroup>,
}

/// A signing group: the deployments that share threshold keys.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSigningGroup {
    pub nodes: Vec<RawGroupNode>,
}

/// A node of a signing group.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroupNode {
    pub name: String,
    pub key_check: String,
}

/// A principal.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrincipal {
    pub id: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub keys: Vec<KeySpec>,
}

/// A rule.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: String,
    pub effect: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principals: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    pub actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<RawConditions>,
}

/// A rule's conditions; every one given must hold.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_ids: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_destinations: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_contract_creation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erc20: Option<Vec<RawErc20>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_calls: Option<Vec<RawContractCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gas_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fee_per_gas: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_priority_fee_per_gas: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<RawTimeWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub velocity: Option<Vec<RawVelocity>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<RawApprovals>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_lock: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed_data: Option<RawTypedData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<RawMessage>,
}

/// An ERC-20 token entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawErc20 {
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spenders: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
}

/// An allowed (contract, selector) pair.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawContractCall {
    pub contract: String,
    pub selector: String,
}

/// Days and UTC hours.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeWindow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<Vec<u64>>,
}

/// One rolling-window limit.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVelocity {
    pub scope: String,
    pub window: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u32>,
}

/// M-of-N approvals.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApprovals {
    pub threshold: u32,
    pub approvers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above_value: Option<Text>,
}

/// Typed-data constraints.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTypedData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<RawDomain>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit_spenders: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_unknown_types: Option<bool>,
}

/// An allowed EIP-712 domain; each given field must equal the request's.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDomain {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifying_contract: Option<String>,
}

/// personal_sign constraints.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMessage {
    pub max_len: u64,
}
