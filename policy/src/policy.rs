//! The validated policy: principals with their keys, and rules with typed conditions.
//! Everything here has passed validation, so evaluation never meets a malformed value.

use alloy_primitives::{Address, U256};
use serde::Serialize;
use sha2::{Digest, Sha256};
use strongroom_auth::{Algorithm, PrincipalKey};

use crate::document::{
    RawApprovals, RawConditions, RawContractCall, RawDomain, RawErc20, RawGroupNode, RawMessage,
    RawPolicy, RawPrincipal, RawRule, RawSigningGroup, RawTimeWindow, RawTypedData, RawVelocity,
    Text,
};
use crate::error::PolicyError;
use crate::intent::Action;
use crate::units::{
    MAX_WINDOW_SECS, canonical_duration, canonical_wei, parse_address, parse_duration,
    parse_integer, parse_selector, parse_wei,
};

/// Largest policy document accepted, checked before parsing.
pub const MAX_POLICY_LEN: usize = 256 * 1024;
/// Most rules in a policy.
pub const MAX_RULES: usize = 256;
/// Most principals in a policy.
pub const MAX_PRINCIPALS: usize = 256;
/// Most keys per principal.
pub const MAX_KEYS_PER_PRINCIPAL: usize = 16;
/// Most entries in any list inside a rule.
pub const MAX_LIST_LEN: usize = 1024;
/// Longest key id or key label a rule may name.
pub const MAX_KEY_REF_LEN: usize = 128;
/// The only schema version.
pub const SCHEMA_VERSION: u64 = 1;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Whether a rule grants or forbids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Grants the actions when every condition holds.
    Allow,
    /// Forbids the actions when every condition matches; deny rules are checked first.
    Deny,
}

/// A caller of the enclave, identified by the keys that sign its requests. Fields are
/// public for reading; a policy only hands out shared references, so they cannot be
/// changed behind its validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The principal id rules and approvals name.
    pub id: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// The public keys whose stamps authenticate it.
    pub keys: Vec<PrincipalKey>,
}

/// A public key as documents write it: `{"algorithm": "ed25519" | "ecdsa-p256",
/// "public": "<hex>"}` (hex with or without `0x`; Ed25519 32 bytes, P-256 SEC1 compressed
/// or uncompressed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// `ed25519` or `ecdsa-p256`.
    pub algorithm: String,
    /// The public key in hex.
    pub public: String,
}

impl KeySpec {
    /// The canonical spec of a key: lowercase hex without `0x`, P-256 compressed.
    pub fn from_key(key: &PrincipalKey) -> Self {
        Self {
            algorithm: algorithm_name(key.algorithm()).to_owned(),
            public: hex::encode(key.public_bytes()),
        }
    }

    /// The key, validated.
    pub fn to_key(&self) -> Result<PrincipalKey, PolicyError> {
        let algorithm = match self.algorithm.as_str() {
            "ed25519" => Algorithm::Ed25519,
            "ecdsa-p256" => Algorithm::EcdsaP256,
            other => {
                return Err(PolicyError::KeySpec(format!(
                    "unknown algorithm {other:?} (expected ed25519 or ecdsa-p256)"
                )));
            }
        };
        let text = self.public.strip_prefix("0x").unwrap_or(&self.public);
        // 65 bytes is the longest valid key (uncompressed SEC1); refuse before decoding.
        if text.len() > 130 {
            return Err(PolicyError::KeySpec("public key is too long".into()));
        }
        let bytes =
            hex::decode(text).map_err(|_| PolicyError::KeySpec("public key is not hex".into()))?;
        PrincipalKey::new(algorithm, &bytes).map_err(|e| PolicyError::KeySpec(e.to_string()))
    }
}

impl Principal {
    /// The principal id rules and approvals name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its roles.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Whether it has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The public keys whose stamps authenticate it.
    pub fn keys(&self) -> &[PrincipalKey] {
        &self.keys
    }
}

/// Who a velocity limit counts (exported as `VelocityScope`). The variant order is the
/// order of the sealed velocity counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Signatures by one signing key, whichever rule allowed them.
    Key,
    /// Signatures asked for by one principal, whichever rule allowed them.
    Principal,
    /// Signatures allowed by one rule.
    Rule,
}

impl Scope {
    /// The name the policy document uses: `key`, `principal` or `rule`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Principal => "principal",
            Scope::Rule => "rule",
        }
    }
}

/// An ERC-20 token entry. In deny rules only `token` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Erc20Rule {
    pub token: Address,
    pub max_amount: Option<U256>,
    pub spenders: Option<Vec<Address>>,
    pub recipients: Option<Vec<Address>>,
}

/// Days (0 = Monday) and half-open UTC hours `[from, to)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TimeWindow {
    pub days: Option<Vec<u8>>,
    pub hours: Option<(u8, u8)>,
}

impl TimeWindow {
    /// Whether unix time `now` falls inside.
    pub fn contains(&self, now: u64) -> bool {
        let (day, hour) = day_and_hour(now);
        self.days.as_ref().is_none_or(|d| d.contains(&day))
            && self
                .hours
                .is_none_or(|(from, to)| from <= hour && hour < to)
    }
}

/// Weekday (0 = Monday) and UTC hour of a unix time. 1970-01-01 was a Thursday.
pub(crate) fn day_and_hour(now: u64) -> (u8, u8) {
    let day = ((now / 86_400 + 3) % 7) as u8;
    let hour = ((now % 86_400) / 3_600) as u8;
    (day, hour)
}

/// Three-letter name of weekday `day` (0 = Monday).
pub(crate) fn day_name(day: u8) -> &'static str {
    DAY_NAMES.get(usize::from(day)).copied().unwrap_or("?")
}

/// A rolling-window limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VelocityLimit {
    pub scope: Scope,
    pub window: u64,
    pub max_value: Option<U256>,
    pub max_count: Option<u32>,
}

impl VelocityLimit {
    /// Whether this limit of rule `rule` could count a signature of native `value` allowed
    /// by rule `decided_by`: a key or principal limit counts signatures any rule allowed,
    /// a rule limit only its own rule's; a `max_value`-only limit ignores zero values.
    pub(crate) fn could_count(&self, rule: &str, decided_by: Option<&str>, value: U256) -> bool {
        let in_scope = self.scope != Scope::Rule || Some(rule) == decided_by;
        let counted = self.max_count.is_some() || (self.max_value.is_some() && !value.is_zero());
        in_scope && counted
    }
}

/// M-of-N approvals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Approvals {
    pub threshold: u32,
    pub approvers: Vec<String>,
    pub above_value: Option<U256>,
}

/// An allowed EIP-712 domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DomainRule {
    pub name: Option<String>,
    pub chain_id: Option<u64>,
    pub verifying_contract: Option<Address>,
}

/// Typed-data constraints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TypedDataRule {
    pub domains: Option<Vec<DomainRule>>,
    pub primary_types: Option<Vec<String>>,
    pub permit_spenders: Option<Vec<Address>>,
    /// Typed data whose primary type is in no registry and not in `primary_types` is
    /// allowed only with this.
    pub allow_unknown_types: bool,
}

/// A rule's conditions, typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Conditions {
    pub chain_ids: Option<Vec<u64>>,
    pub destinations: Option<Vec<Address>>,
    pub denied_destinations: Option<Vec<Address>>,
    pub allow_contract_creation: bool,
    pub max_value: Option<U256>,
    pub erc20: Option<Vec<Erc20Rule>>,
    pub contract_calls: Option<Vec<(Address, [u8; 4])>>,
    pub max_gas_limit: Option<u64>,
    pub max_fee_per_gas: Option<U256>,
    pub max_priority_fee_per_gas: Option<U256>,
    pub time_window: Option<TimeWindow>,
    pub velocity: Vec<VelocityLimit>,
    pub approvals: Option<Approvals>,
    pub time_lock: Option<u64>,
    pub typed_data: Option<TypedDataRule>,
    pub message_max_len: Option<u64>,
}

/// A named rule: a scope (principals, roles, keys, actions) and conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub(crate) name: String,
    pub(crate) effect: Effect,
    pub(crate) principals: Option<Vec<String>>,
    pub(crate) roles: Option<Vec<String>>,
    pub(crate) keys: Option<Vec<String>>,
    pub(crate) actions: Vec<Action>,
    pub(crate) conditions: Conditions,
}

impl Rule {
    /// The rule's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Allow or deny.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The actions it concerns.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Longest velocity window of this rule, 0 if it has none.
    fn longest_window(&self) -> u64 {
        self.conditions
            .velocity
            .iter()
            .map(|v| v.window)
            .max()
            .unwrap_or(0)
    }
}

/// A validated policy document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    chain_id: Option<u64>,
    principals: Vec<Principal>,
    rules: Vec<Rule>,
    signing_group: Option<SigningGroup>,
}

/// Most nodes in a signing group.
pub const MAX_GROUP_NODES: usize = 16;
/// Longest node name.
pub const MAX_NODE_NAME_LEN: usize = 32;

/// The deployments that share threshold keys, each named by its root-key check value
/// (what tells apart deployments of one genesis). Only these are admitted as peers: a
/// parent cannot bring in an enclave it booted with a root key of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningGroup {
    /// The nodes, in the group's order (which gives their indices in key generation).
    pub nodes: Vec<GroupNode>,
}

/// A node of a signing group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupNode {
    /// Its name (lowercase letters, digits and `-`, at most 32).
    pub name: String,
    /// Its root-key check value.
    pub key_check: [u8; 16],
}

impl SigningGroup {
    /// The node with this root-key check value.
    pub fn node(&self, key_check: &[u8; 16]) -> Option<&GroupNode> {
        self.nodes.iter().find(|n| &n.key_check == key_check)
    }

    fn validate(raw: RawSigningGroup) -> Result<Self, PolicyError> {
        let bad = |reason: String| PolicyError::SigningGroup(reason);
        if raw.nodes.len() < 2 || raw.nodes.len() > MAX_GROUP_NODES {
            return Err(bad(format!(
                "{} nodes; a group has 2 to {MAX_GROUP_NODES}",
                raw.nodes.len()
            )));
        }
        let mut nodes: Vec<GroupNode> = Vec::with_capacity(raw.nodes.len());
        for node in raw.nodes {
            let name_ok = !node.name.is_empty()
                && node.name.len() <= MAX_NODE_NAME_LEN
                && node
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !name_ok {
                return Err(bad(format!(
                    "node name {:?}: 1 to {MAX_NODE_NAME_LEN} of a-z, 0-9 and -",
                    node.name
                )));
            }
            let text = node.key_check.strip_prefix("0x").unwrap_or(&node.key_check);
            let key_check = (text.len() == 32)
                .then(|| hex::decode(text).ok())
                .flatten()
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "node {:?}: key_check must be 16 bytes of hex",
                        node.name
                    ))
                })?;
            if nodes.iter().any(|n| n.name == node.name) {
                return Err(bad(format!("node name {:?} is used twice", node.name)));
            }
            if nodes.iter().any(|n| n.key_check == key_check) {
                return Err(bad(format!("key_check {text} is used twice")));
            }
            nodes.push(GroupNode {
                name: node.name,
                key_check,
            });
        }
        Ok(Self { nodes })
    }

    fn to_raw(&self) -> RawSigningGroup {
        RawSigningGroup {
            nodes: self
                .nodes
                .iter()
                .map(|n| RawGroupNode {
                    name: n.name.clone(),
                    key_check: hex::encode(n.key_check),
                })
                .collect(),
        }
    }
}

impl Policy {
    /// Parses and validates a JSON document of at most [`MAX_POLICY_LEN`] bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, PolicyError> {
        check_size(bytes.len())?;
        let raw: RawPolicy =
            serde_json::from_slice(bytes).map_err(|e| PolicyError::Parse(e.to_string()))?;
        Self::validate(raw)
    }

    /// Parses and validates a TOML document with the same schema.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        check_size(text.len())?;
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        Self::validate(raw)
    }

    /// The canonical JSON form: compact, fields in schema order, addresses EIP-55
    /// checksummed, amounts and durations in one notation per value, empty optional
    /// sections dropped. The same policy gives the same bytes whatever its source format,
    /// whitespace or key order; list order is kept as written (rule order matters).
    pub fn to_canonical_json(&self) -> Vec<u8> {
        // Cannot fail: the raw types are structs of strings, integers, booleans and lists.
        serde_json::to_vec(&self.to_raw()).unwrap_or_default()
    }

    /// SHA-256 of [`Policy::to_canonical_json`]: the policy's identity for approvals and
    /// audit.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.to_canonical_json()).into()
    }

    /// Schema version (always [`SCHEMA_VERSION`]).
    pub fn version(&self) -> u64 {
        SCHEMA_VERSION
    }

    /// The chain this signer serves JSON-RPC clients on (`eth_chainId`), if the policy
    /// names one. Transactions still carry their own chain id, which rules check.
    pub fn chain_id(&self) -> Option<u64> {
        self.chain_id
    }

    /// The signing group this deployment is a node of, if any.
    pub fn signing_group(&self) -> Option<&SigningGroup> {
        self.signing_group.as_ref()
    }

    /// All principals, in document order.
    pub fn principals(&self) -> &[Principal] {
        &self.principals
    }

    /// The principal with this id.
    pub fn principal(&self, id: &str) -> Option<&Principal> {
        self.principals.iter().find(|p| p.id == id)
    }

    /// The principal owning the public key with this derived key id (the id a stamp
    /// names), and that key.
    pub fn principal_for_key(&self, key_id: &str) -> Option<(&Principal, &PrincipalKey)> {
        self.principals
            .iter()
            .find_map(|p| p.keys.iter().find(|k| k.id() == key_id).map(|k| (p, k)))
    }

    /// All rules, in document order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with this name.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// Whether some velocity limit of this policy could count a signature of native
    /// `value` allowed by rule `decided_by`: limits scoped to a key or a principal count
    /// signatures allowed by any rule, limits scoped to a rule only that rule's, and a
    /// `max_value`-only limit only signatures moving value. A signature no limit could
    /// count records nothing (no re-seal of the enclave state); a limit added later counts
    /// from when it takes effect.
    pub fn could_count(&self, decided_by: Option<&str>, value: U256) -> bool {
        self.rules.iter().any(|rule| {
            rule.conditions
                .velocity
                .iter()
                .any(|limit| limit.could_count(&rule.name, decided_by, value))
        })
    }

    /// The longest velocity window of any rule (0 if none).
    pub fn longest_window(&self) -> u64 {
        self.rules
            .iter()
            .map(Rule::longest_window)
            .max()
            .unwrap_or(0)
    }

    fn validate(raw: RawPolicy) -> Result<Self, PolicyError> {
        if raw.version != SCHEMA_VERSION {
            return Err(PolicyError::UnsupportedVersion(raw.version));
        }
        limit("principals", raw.principals.len(), MAX_PRINCIPALS)?;
        limit("rules", raw.rules.len(), MAX_RULES)?;
        let mut principals: Vec<Principal> = Vec::with_capacity(raw.principals.len());
        let mut key_ids = std::collections::BTreeSet::new();
        for p in raw.principals {
            let principal = validate_principal(p)?;
            if principals.iter().any(|q| q.id == principal.id) {
                return Err(PolicyError::DuplicatePrincipal(principal.id));
            }
            for key in &principal.keys {
                // One key, one principal: otherwise a stamp could not be attributed.
                if !key_ids.insert(key.id().to_owned()) {
                    return Err(PolicyError::DuplicateKey {
                        key_id: key.id().to_owned(),
                        principal: principal.id.clone(),
                    });
                }
            }
            principals.push(principal);
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(raw.rules.len());
        for r in raw.rules {
            let rule = validate_rule(r, &principals)?;
            if rules.iter().any(|q| q.name == rule.name) {
                return Err(PolicyError::DuplicateRule(rule.name));
            }
            rules.push(rule);
        }
        if raw.chain_id == Some(0) {
            return Err(PolicyError::ZeroChainId);
        }
        let signing_group = raw.signing_group.map(SigningGroup::validate).transpose()?;
        Ok(Self {
            chain_id: raw.chain_id,
            principals,
            rules,
            signing_group,
        })
    }

    fn to_raw(&self) -> RawPolicy {
        RawPolicy {
            version: SCHEMA_VERSION,
            chain_id: self.chain_id,
            principals: self
                .principals
                .iter()
                .map(|p| RawPrincipal {
                    id: p.id.clone(),
                    roles: p.roles.clone(),
                    keys: p.keys.iter().map(KeySpec::from_key).collect(),
                })
                .collect(),
            rules: self.rules.iter().map(rule_to_raw).collect(),
            signing_group: self.signing_group.as_ref().map(SigningGroup::to_raw),
        }
    }
}

impl Serialize for Policy {
    /// Serializes the canonical form, so what the enclave shows is what the digest covers.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_raw().serialize(serializer)
    }
}

fn check_size(len: usize) -> Result<(), PolicyError> {
    if len > MAX_POLICY_LEN {
        return Err(PolicyError::TooLarge {
            len,
            max: MAX_POLICY_LEN,
        });
    }
    Ok(())
}

fn limit(what: &str, count: usize, max: usize) -> Result<(), PolicyError> {
    if count > max {
        return Err(PolicyError::TooMany {
            what: what.to_owned(),
            count,
            max,
        });
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn check_name(what: &'static str, name: &str) -> Result<(), PolicyError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(PolicyError::InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Ed25519 => "ed25519",
        Algorithm::EcdsaP256 => "ecdsa-p256",
    }
}

fn validate_principal(raw: RawPrincipal) -> Result<Principal, PolicyError> {
    check_name("principal id", &raw.id)?;
    let what = format!("principal {:?}", raw.id);
    limit(&format!("{what} roles"), raw.roles.len(), MAX_LIST_LEN)?;
    limit(
        &format!("{what} keys"),
        raw.keys.len(),
        MAX_KEYS_PER_PRINCIPAL,
    )?;
    for role in &raw.roles {
        check_name("role", role)?;
    }
    let key_error = |index: usize, reason: String| PolicyError::InvalidKey {
        principal: raw.id.clone(),
        index,
        reason,
    };
    if raw.keys.is_empty() {
        return Err(key_error(0, "a principal needs at least one key".into()));
    }
    let mut keys = Vec::with_capacity(raw.keys.len());
    for (index, spec) in raw.keys.iter().enumerate() {
        let key = spec.to_key().map_err(|e| match e {
            PolicyError::KeySpec(reason) => key_error(index, reason),
            other => key_error(index, other.to_string()),
        })?;
        keys.push(key);
    }
    Ok(Principal {
        id: raw.id,
        roles: raw.roles,
        keys,
    })
}

/// Validation of one rule's fields, carrying the rule name for error messages.
struct Check<'a> {
    rule: &'a str,
}

impl Check<'_> {
    fn list<T>(&self, field: &str, list: Option<Vec<T>>) -> Result<Option<Vec<T>>, PolicyError> {
        if let Some(list) = &list {
            if list.is_empty() {
                return Err(PolicyError::EmptyList {
                    rule: self.rule.to_owned(),
                    field: field.to_owned(),
                });
            }
            limit(
                &format!("rule {:?} {field}", self.rule),
                list.len(),
                MAX_LIST_LEN,
            )?;
        }
        Ok(list)
    }

    fn address(&self, field: &str, text: &str) -> Result<Address, PolicyError> {
        parse_address(text).map_err(|reason| PolicyError::InvalidAddress {
            rule: self.rule.to_owned(),
            field: field.to_owned(),
            address: text.to_owned(),
            reason,
        })
    }

    fn addresses(
        &self,
        field: &str,
        list: Option<Vec<String>>,
    ) -> Result<Option<Vec<Address>>, PolicyError> {
        self.list(field, list)?
            .map(|l| l.iter().map(|a| self.address(field, a)).collect())
            .transpose()
    }

    fn wei(&self, field: &str, text: Option<Text>) -> Result<Option<U256>, PolicyError> {
        text.map(|Text(t)| {
            parse_wei(&t).map_err(|reason| PolicyError::InvalidAmount {
                rule: self.rule.to_owned(),
                field: field.to_owned(),
                value: t.clone(),
                reason,
            })
        })
        .transpose()
    }

    fn duration(&self, field: &str, Text(text): Text) -> Result<u64, PolicyError> {
        let err = |reason: String| PolicyError::InvalidDuration {
            rule: self.rule.to_owned(),
            field: field.to_owned(),
            value: text.clone(),
            reason,
        };
        let secs = parse_duration(&text).map_err(err)?;
        if secs == 0 || secs > MAX_WINDOW_SECS {
            return Err(err("must be between 1 second and 31 days".into()));
        }
        Ok(secs)
    }

    fn field(&self, field: &str, reason: String) -> PolicyError {
        PolicyError::InvalidField {
            rule: self.rule.to_owned(),
            field: field.to_owned(),
            reason,
        }
    }
}

fn validate_rule(raw: RawRule, principals: &[Principal]) -> Result<Rule, PolicyError> {
    check_name("rule name", &raw.name)?;
    let c = Check { rule: &raw.name };
    let effect = match raw.effect.as_str() {
        "allow" => Effect::Allow,
        "deny" => Effect::Deny,
        _ => {
            return Err(PolicyError::InvalidEffect {
                rule: raw.name.clone(),
                effect: raw.effect.clone(),
            });
        }
    };
    let rule_principals = c.list("principals", raw.principals)?;
    for id in rule_principals.iter().flatten() {
        if !principals.iter().any(|p| &p.id == id) {
            return Err(PolicyError::UnknownPrincipal {
                rule: raw.name.clone(),
                field: "principals",
                principal: id.clone(),
            });
        }
    }
    let roles = c.list("roles", raw.roles)?;
    for role in roles.iter().flatten() {
        if !principals.iter().any(|p| p.has_role(role)) {
            return Err(PolicyError::UnknownRole {
                rule: raw.name.clone(),
                role: role.clone(),
            });
        }
    }
    let keys = c.list("keys", raw.keys)?;
    for key in keys.iter().flatten() {
        if key.is_empty() || key.len() > MAX_KEY_REF_LEN || key.chars().any(char::is_control) {
            return Err(c.field(
                "keys",
                format!(
                    "key reference {key:?} must be 1 to {MAX_KEY_REF_LEN} printable characters"
                ),
            ));
        }
    }
    if raw.actions.is_empty() {
        return Err(PolicyError::EmptyActions(raw.name.clone()));
    }
    limit(
        &format!("rule {:?} actions", raw.name),
        raw.actions.len(),
        MAX_LIST_LEN,
    )?;
    let mut actions: Vec<Action> = Vec::with_capacity(raw.actions.len());
    for name in &raw.actions {
        let action = action_from_name(name).ok_or_else(|| PolicyError::UnknownAction {
            rule: raw.name.clone(),
            action: name.clone(),
        })?;
        if !actions.contains(&action) {
            actions.push(action);
        }
    }
    let conditions = match raw.conditions {
        Some(raw_conditions) => validate_conditions(&c, effect, raw_conditions, principals)?,
        None => Conditions::default(),
    };
    check_applicable(&c, effect, &actions, &conditions)?;
    Ok(Rule {
        name: raw.name.clone(),
        effect,
        principals: rule_principals,
        roles,
        keys,
        actions,
        conditions,
    })
}

fn action_from_name(name: &str) -> Option<Action> {
    [
        Action::CreateKey,
        Action::DestroyKey,
        Action::SignTransaction,
        Action::SignTypedData,
        Action::SignMessage,
        Action::SignDigest,
    ]
    .into_iter()
    .find(|a| a.as_str() == name)
}

fn validate_conditions(
    c: &Check<'_>,
    effect: Effect,
    raw: RawConditions,
    principals: &[Principal],
) -> Result<Conditions, PolicyError> {
    if effect == Effect::Deny {
        let forbidden = [
            ("denied_destinations", raw.denied_destinations.is_some()),
            (
                "allow_contract_creation",
                raw.allow_contract_creation.is_some(),
            ),
            ("max_value", raw.max_value.is_some()),
            ("contract_calls", raw.contract_calls.is_some()),
            ("max_gas_limit", raw.max_gas_limit.is_some()),
            ("max_fee_per_gas", raw.max_fee_per_gas.is_some()),
            (
                "max_priority_fee_per_gas",
                raw.max_priority_fee_per_gas.is_some(),
            ),
            ("velocity", raw.velocity.is_some()),
            ("approvals", raw.approvals.is_some()),
            ("time_lock", raw.time_lock.is_some()),
            ("typed_data", raw.typed_data.is_some()),
            ("message", raw.message.is_some()),
        ];
        if let Some((name, _)) = forbidden.iter().find(|(_, present)| *present) {
            return Err(PolicyError::DenyRuleCondition {
                rule: c.rule.to_owned(),
                condition: (*name).to_owned(),
            });
        }
    }
    let erc20 = c
        .list("conditions.erc20", raw.erc20)?
        .map(|list| {
            let mut out: Vec<Erc20Rule> = Vec::with_capacity(list.len());
            for (i, e) in list.into_iter().enumerate() {
                let entry = validate_erc20(c, effect, i, e)?;
                if out.iter().any(|o| o.token == entry.token) {
                    return Err(c.field(
                        &format!("conditions.erc20[{i}].token"),
                        format!("token {} is listed twice", entry.token),
                    ));
                }
                out.push(entry);
            }
            Ok(out)
        })
        .transpose()?;
    let contract_calls = c
        .list("conditions.contract_calls", raw.contract_calls)?
        .map(|list| {
            list.into_iter()
                .enumerate()
                .map(|(i, RawContractCall { contract, selector })| {
                    let field = format!("conditions.contract_calls[{i}]");
                    let contract = c.address(&format!("{field}.contract"), &contract)?;
                    let selector = parse_selector(&selector)
                        .map_err(|reason| c.field(&format!("{field}.selector"), reason))?;
                    Ok((contract, selector))
                })
                .collect::<Result<Vec<_>, PolicyError>>()
        })
        .transpose()?;
    let time_window = raw
        .time_window
        .map(|w| validate_time_window(c, w))
        .transpose()?;
    let velocity = c
        .list("conditions.velocity", raw.velocity)?
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, v)| validate_velocity(c, i, v))
        .collect::<Result<Vec<_>, _>>()?;
    let approvals = raw
        .approvals
        .map(|a| validate_approvals(c, a, principals))
        .transpose()?;
    let time_lock = raw
        .time_lock
        .map(|t| c.duration("conditions.time_lock", t))
        .transpose()?;
    let typed_data = raw
        .typed_data
        .map(|t| validate_typed_data(c, t))
        .transpose()?;
    let message_max_len = raw.message.map(|RawMessage { max_len }| max_len);
    Ok(Conditions {
        chain_ids: c.list("conditions.chain_ids", raw.chain_ids)?,
        destinations: c.addresses("conditions.destinations", raw.destinations)?,
        denied_destinations: c
            .addresses("conditions.denied_destinations", raw.denied_destinations)?,
        allow_contract_creation: raw.allow_contract_creation.unwrap_or(false),
        max_value: c.wei("conditions.max_value", raw.max_value)?,
        erc20,
        contract_calls,
        max_gas_limit: raw.max_gas_limit,
        max_fee_per_gas: c.wei("conditions.max_fee_per_gas", raw.max_fee_per_gas)?,
        max_priority_fee_per_gas: c.wei(
            "conditions.max_priority_fee_per_gas",
            raw.max_priority_fee_per_gas,
        )?,
        time_window,
        velocity,
        approvals,
        time_lock,
        typed_data,
        message_max_len,
    })
}

fn validate_erc20(
    c: &Check<'_>,
    effect: Effect,
    i: usize,
    raw: RawErc20,
) -> Result<Erc20Rule, PolicyError> {
    let field = format!("conditions.erc20[{i}]");
    let token = c.address(&format!("{field}.token"), &raw.token)?;
    if effect == Effect::Deny {
        if raw.max_amount.is_some() || raw.spenders.is_some() || raw.recipients.is_some() {
            return Err(c.field(&field, "deny rules list tokens only".into()));
        }
        return Ok(Erc20Rule {
            token,
            max_amount: None,
            spenders: None,
            recipients: None,
        });
    }
    let Some(Text(amount)) = raw.max_amount else {
        return Err(c.field(
            &format!("{field}.max_amount"),
            "required in allow rules".into(),
        ));
    };
    let max_amount = parse_integer(&amount).map_err(|reason| PolicyError::InvalidAmount {
        rule: c.rule.to_owned(),
        field: format!("{field}.max_amount"),
        value: amount.clone(),
        reason: format!("{reason} (token amounts are integers in the token's base units)"),
    })?;
    Ok(Erc20Rule {
        token,
        max_amount: Some(max_amount),
        spenders: c.addresses(&format!("{field}.spenders"), raw.spenders)?,
        recipients: c.addresses(&format!("{field}.recipients"), raw.recipients)?,
    })
}

fn validate_time_window(c: &Check<'_>, raw: RawTimeWindow) -> Result<TimeWindow, PolicyError> {
    if raw.days.is_none() && raw.hours.is_none() {
        return Err(c.field("conditions.time_window", "give days, hours or both".into()));
    }
    let days = c
        .list("conditions.time_window.days", raw.days)?
        .map(|list| {
            let mut out: Vec<u8> = Vec::with_capacity(list.len());
            for name in list {
                let day = DAY_NAMES
                    .iter()
                    .position(|d| *d == name)
                    .and_then(|d| u8::try_from(d).ok())
                    .ok_or_else(|| {
                        c.field(
                            "conditions.time_window.days",
                            format!("unknown day {name:?} (expected mon, tue, wed, thu, fri, sat or sun)"),
                        )
                    })?;
                if out.contains(&day) {
                    return Err(c.field(
                        "conditions.time_window.days",
                        format!("day {name:?} is listed twice"),
                    ));
                }
                out.push(day);
            }
            Ok(out)
        })
        .transpose()?;
    let hours = raw
        .hours
        .map(|h| match h.as_slice() {
            &[from, to] if from < to && to <= 24 => Ok((from as u8, to as u8)),
            _ => Err(c.field(
                "conditions.time_window.hours",
                format!("{h:?} is not [from, to] with 0 <= from < to <= 24"),
            )),
        })
        .transpose()?;
    Ok(TimeWindow { days, hours })
}

fn validate_velocity(
    c: &Check<'_>,
    i: usize,
    raw: RawVelocity,
) -> Result<VelocityLimit, PolicyError> {
    let field = format!("conditions.velocity[{i}]");
    let scope = match raw.scope.as_str() {
        "key" => Scope::Key,
        "principal" => Scope::Principal,
        "rule" => Scope::Rule,
        other => {
            return Err(c.field(
                &format!("{field}.scope"),
                format!("unknown scope {other:?} (expected key, principal or rule)"),
            ));
        }
    };
    let window = c.duration(&format!("{field}.window"), raw.window)?;
    let max_value = c.wei(&format!("{field}.max_value"), raw.max_value)?;
    if max_value.is_none() && raw.max_count.is_none() {
        return Err(c.field(&field, "give max_value, max_count or both".into()));
    }
    if raw.max_count == Some(0) {
        return Err(c.field(
            &format!("{field}.max_count"),
            "0 would never allow anything; use a deny rule".into(),
        ));
    }
    Ok(VelocityLimit {
        scope,
        window,
        max_value,
        max_count: raw.max_count,
    })
}

fn validate_approvals(
    c: &Check<'_>,
    raw: RawApprovals,
    principals: &[Principal],
) -> Result<Approvals, PolicyError> {
    limit(
        &format!("rule {:?} conditions.approvals.approvers", c.rule),
        raw.approvers.len(),
        MAX_LIST_LEN,
    )?;
    for (i, id) in raw.approvers.iter().enumerate() {
        if !principals.iter().any(|p| &p.id == id) {
            return Err(PolicyError::UnknownPrincipal {
                rule: c.rule.to_owned(),
                field: "conditions.approvals.approvers",
                principal: id.clone(),
            });
        }
        if raw.approvers[..i].contains(id) {
            return Err(c.field(
                "conditions.approvals.approvers",
                format!("approver {id:?} is listed twice"),
            ));
        }
    }
    if raw.threshold == 0 || raw.threshold as usize > raw.approvers.len() {
        return Err(PolicyError::Threshold {
            rule: c.rule.to_owned(),
            threshold: raw.threshold,
            approvers: raw.approvers.len(),
        });
    }
    Ok(Approvals {
        threshold: raw.threshold,
        above_value: c.wei("conditions.approvals.above_value", raw.above_value)?,
        approvers: raw.approvers,
    })
}

fn validate_typed_data(c: &Check<'_>, raw: RawTypedData) -> Result<TypedDataRule, PolicyError> {
    let domains = c
        .list("conditions.typed_data.domains", raw.domains)?
        .map(|list| {
            list.into_iter()
                .enumerate()
                .map(|(i, d)| {
                    let field = format!("conditions.typed_data.domains[{i}]");
                    if d.name.is_none() && d.chain_id.is_none() && d.verifying_contract.is_none() {
                        return Err(
                            c.field(&field, "give name, chain_id or verifying_contract".into())
                        );
                    }
                    Ok(DomainRule {
                        verifying_contract: d
                            .verifying_contract
                            .map(|a| c.address(&format!("{field}.verifying_contract"), &a))
                            .transpose()?,
                        name: d.name,
                        chain_id: d.chain_id,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let primary_types = c.list("conditions.typed_data.primary_types", raw.primary_types)?;
    if raw_strings_too_long(primary_types.iter().flatten()) {
        return Err(c.field(
            "conditions.typed_data.primary_types",
            "type names are at most 256 bytes".into(),
        ));
    }
    Ok(TypedDataRule {
        domains,
        primary_types,
        permit_spenders: c
            .addresses("conditions.typed_data.permit_spenders", raw.permit_spenders)?,
        allow_unknown_types: raw.allow_unknown_types.unwrap_or(false),
    })
}

fn raw_strings_too_long<'a>(mut strings: impl Iterator<Item = &'a String>) -> bool {
    strings.any(|s| s.len() > 256)
}

fn is_signing(action: Action) -> bool {
    matches!(
        action,
        Action::SignTransaction | Action::SignTypedData | Action::SignMessage | Action::SignDigest
    )
}

/// Refuses a condition that can never concern any of the rule's actions: such a rule does
/// not mean what its author thinks.
fn check_applicable(
    c: &Check<'_>,
    effect: Effect,
    actions: &[Action],
    k: &Conditions,
) -> Result<(), PolicyError> {
    let has = |a: Action| actions.contains(&a);
    let tx = has(Action::SignTransaction);
    let typed = has(Action::SignTypedData);
    let deny = effect == Effect::Deny;
    let checks = [
        ("chain_ids", k.chain_ids.is_some(), tx || typed),
        (
            "destinations",
            k.destinations.is_some(),
            tx || (deny && typed),
        ),
        (
            "denied_destinations",
            k.denied_destinations.is_some(),
            tx || typed,
        ),
        ("allow_contract_creation", k.allow_contract_creation, tx),
        ("max_value", k.max_value.is_some(), tx),
        ("erc20", k.erc20.is_some(), tx || typed),
        ("contract_calls", k.contract_calls.is_some(), tx),
        ("max_gas_limit", k.max_gas_limit.is_some(), tx),
        ("max_fee_per_gas", k.max_fee_per_gas.is_some(), tx),
        (
            "max_priority_fee_per_gas",
            k.max_priority_fee_per_gas.is_some(),
            tx,
        ),
        (
            "velocity",
            !k.velocity.is_empty(),
            actions.iter().any(|a| is_signing(*a)),
        ),
        (
            "velocity.max_value",
            k.velocity.iter().any(|v| v.max_value.is_some()),
            tx,
        ),
        (
            "approvals.above_value",
            k.approvals
                .as_ref()
                .is_some_and(|a| a.above_value.is_some()),
            tx,
        ),
        ("typed_data", k.typed_data.is_some(), typed),
        (
            "message",
            k.message_max_len.is_some(),
            has(Action::SignMessage),
        ),
    ];
    match checks
        .iter()
        .find(|(_, present, applies)| *present && !*applies)
    {
        Some((name, _, _)) => Err(PolicyError::ConditionNotApplicable {
            rule: c.rule.to_owned(),
            condition: (*name).to_owned(),
        }),
        None => Ok(()),
    }
}

fn addresses_to_raw(list: &Option<Vec<Address>>) -> Option<Vec<String>> {
    list.as_ref()
        .map(|l| l.iter().map(|a| a.to_checksum(None)).collect())
}

fn rule_to_raw(rule: &Rule) -> RawRule {
    let k = &rule.conditions;
    let conditions = RawConditions {
        chain_ids: k.chain_ids.clone(),
        destinations: addresses_to_raw(&k.destinations),
        denied_destinations: addresses_to_raw(&k.denied_destinations),
        allow_contract_creation: k.allow_contract_creation.then_some(true),
        max_value: k.max_value.map(|v| Text(canonical_wei(v))),
        erc20: k.erc20.as_ref().map(|list| {
            list.iter()
                .map(|e| RawErc20 {
                    token: e.token.to_checksum(None),
                    max_amount: e.max_amount.map(|a| Text(a.to_string())),
                    spenders: addresses_to_raw(&e.spenders),
                    recipients: addresses_to_raw(&e.recipients),
                })
                .collect()
        }),
        contract_calls: k.contract_calls.as_ref().map(|list| {
            list.iter()
                .map(|(contract, selector)| RawContractCall {
                    contract: contract.to_checksum(None),
                    selector: crate::units::format_selector(*selector),
                })
                .collect()
        }),
        max_gas_limit: k.max_gas_limit,
        max_fee_per_gas: k.max_fee_per_gas.map(|v| Text(canonical_wei(v))),
        max_priority_fee_per_gas: k.max_priority_fee_per_gas.map(|v| Text(canonical_wei(v))),
        time_window: k.time_window.as_ref().map(|w| RawTimeWindow {
            days: w
                .days
                .as_ref()
                .map(|d| d.iter().map(|d| day_name(*d).to_owned()).collect()),
            hours: w
                .hours
                .map(|(from, to)| vec![u64::from(from), u64::from(to)]),
        }),
        velocity: (!k.velocity.is_empty()).then(|| {
            k.velocity
                .iter()
                .map(|v| RawVelocity {
                    scope: v.scope.as_str().to_owned(),
                    window: Text(canonical_duration(v.window)),
                    max_value: v.max_value.map(|m| Text(canonical_wei(m))),
                    max_count: v.max_count,
                })
                .collect()
        }),
        approvals: k.approvals.as_ref().map(|a| RawApprovals {
            threshold: a.threshold,
            approvers: a.approvers.clone(),
            above_value: a.above_value.map(|v| Text(canonical_wei(v))),
        }),
        time_lock: k.time_lock.map(|t| Text(canonical_duration(t))),
        typed_data: k.typed_data.as_ref().map(|t| RawTypedData {
            domains: t.domains.as_ref().map(|list| {
                list.iter()
                    .map(|d| RawDomain {
                        name: d.name.clone(),
                        chain_id: d.chain_id,
                        verifying_contract: d.verifying_contract.map(|a| a.to_checksum(None)),
                    })
                    .collect()
            }),
            primary_types: t.primary_types.clone(),
            permit_spenders: addresses_to_raw(&t.permit_spenders),
            // Absent unless true, so documents written before the field hash the same.
            allow_unknown_types: t.allow_unknown_types.then_some(true),
        }),
        message: k.message_max_len.map(|max_len| RawMessage { max_len }),
    };
    RawRule {
        name: rule.name.clone(),
        effect: match rule.effect {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
        .to_owned(),
        principals: rule.principals.clone(),
        roles: rule.roles.clone(),
        keys: rule.keys.clone(),
        actions: rule.actions.iter().map(|a| a.as_str().to_owned()).collect(),
        conditions: (k != &Conditions::default()).then_some(conditions),
    }
}
