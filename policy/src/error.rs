//! The crate's one error type.

/// Why a policy document or sealed velocity counters were refused.
///
/// Validation errors name the rule (or principal) and the field, so an operator can fix the
/// document without guessing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// An admin set breaks a rule (threshold, count, duplicate or invalid key).
    #[error("admin set: {0}")]
    AdminSet(String),
    /// A genesis document is too large, does not parse, has another version, or its policy
    /// is invalid (the message says which).
    #[error("{0}")]
    Genesis(String),
    /// The document is larger than [`crate::MAX_POLICY_LEN`]; refused before parsing.
    #[error("policy document is {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// Document length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Syntax error, wrong type, missing or unknown field.
    #[error("policy document does not parse: {0}")]
    Parse(String),
    /// Only schema version 1 exists.
    #[error("policy schema version {0} is not supported (only version 1 is)")]
    UnsupportedVersion(u64),
    /// The signing group is not a valid list of nodes.
    #[error("signing_group: {0}")]
    SigningGroup(String),
    /// `chain_id` is 0 (no chain has that id).
    #[error("chain_id must not be 0")]
    ZeroChainId,
    /// A list is longer than its limit.
    #[error("{what}: {count} entries, more than the limit of {max}")]
    TooMany {
        /// Which list.
        what: String,
        /// Its length.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A rule name, principal id or role is empty, too long or has characters outside
    /// `[A-Za-z0-9_.-]`.
    #[error("{what} {name:?} is invalid: 1 to 64 characters from [A-Za-z0-9_.-]")]
    InvalidName {
        /// What the name names ("rule name", "principal id", "role").
        what: &'static str,
        /// The name as written.
        name: String,
    },
    /// Two rules share a name.
    #[error("rule name {0:?} is used twice")]
    DuplicateRule(String),
    /// Two principals share an id.
    #[error("principal id {0:?} is used twice")]
    DuplicatePrincipal(String),
    /// The same public key is listed twice (in one principal or across principals), so a
    /// stamp could not be attributed to one principal.
    #[error("principal key {key_id} is listed twice (second time under principal {principal:?})")]
    DuplicateKey {
        /// The derived key id.
        key_id: String,
        /// The principal where it appears the second time.
        principal: String,
    },
    /// A principal key does not decode or is not a valid public key.
    #[error("principal {principal:?} keys[{index}]: {reason}")]
    InvalidKey {
        /// The principal.
        principal: String,
        /// Index in its `keys` list.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A [`crate::KeySpec`] does not decode or is not a valid public key.
    #[error("invalid key: {0}")]
    KeySpec(String),
    /// A rule names a principal id (in `principals` or `approvals.approvers`) that the
    /// policy does not define.
    #[error("rule {rule:?} {field}: unknown principal {principal:?}")]
    UnknownPrincipal {
        /// The rule.
        rule: String,
        /// The field.
        field: &'static str,
        /// The unknown id.
        principal: String,
    },
    /// A rule names a role that no principal has.
    #[error("rule {rule:?} roles: no principal has role {role:?}")]
    UnknownRole {
        /// The rule.
        rule: String,
        /// The role.
        role: String,
    },
    /// A rule's `actions` is empty.
    #[error("rule {0:?} actions: must name at least one action")]
    EmptyActions(String),
    /// A rule's action is not one of the known names.
    #[error(
        "rule {rule:?} actions: unknown action {action:?} (expected create_key, destroy_key, sign_transaction, sign_typed_data, sign_message or sign_digest)"
    )]
    UnknownAction {
        /// The rule.
        rule: String,
        /// The name as written.
        action: String,
    },
    /// A rule's effect is neither `allow` nor `deny`.
    #[error("rule {rule:?} effect: {effect:?} is neither \"allow\" nor \"deny\"")]
    InvalidEffect {
        /// The rule.
        rule: String,
        /// The effect as written.
        effect: String,
    },
    /// A list that must either be omitted or non-empty is empty.
    #[error("rule {rule:?} {field}: empty list (omit the field instead)")]
    EmptyList {
        /// The rule.
        rule: String,
        /// The field.
        field: String,
    },
    /// An address is not 0x-prefixed 20-byte hex, or is mixed case with a wrong EIP-55
    /// checksum.
    #[error("rule {rule:?} {field}: address {address:?}: {reason}")]
    InvalidAddress {
        /// The rule.
        rule: String,
        /// The field.
        field: String,
        /// The address as written.
        address: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An amount does not parse, overflows 256 bits or has too many decimals.
    #[error("rule {rule:?} {field}: amount {value:?}: {reason}")]
    InvalidAmount {
        /// The rule.
        rule: String,
        /// The field.
        field: String,
        /// The amount as written.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A duration does not parse or is out of range.
    #[error("rule {rule:?} {field}: duration {value:?}: {reason}")]
    InvalidDuration {
        /// The rule.
        rule: String,
        /// The field.
        field: String,
        /// The duration as written.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// Any other invalid field value (selector, hours, day, scope, threshold, ...).
    #[error("rule {rule:?} {field}: {reason}")]
    InvalidField {
        /// The rule.
        rule: String,
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// `approvals.threshold` is 0 or more than the number of approvers.
    #[error(
        "rule {rule:?} approvals.threshold: {threshold} is not between 1 and the {approvers} approvers listed"
    )]
    Threshold {
        /// The rule.
        rule: String,
        /// The threshold.
        threshold: u32,
        /// How many approvers are listed.
        approvers: usize,
    },
    /// A deny rule uses a condition only allow rules may use (velocity, approvals, ...).
    #[error(
        "rule {rule:?} conditions.{condition}: deny rules may only use chain_ids, destinations, erc20 (tokens) and time_window"
    )]
    DenyRuleCondition {
        /// The rule.
        rule: String,
        /// The condition.
        condition: String,
    },
    /// A condition can never concern any of the rule's actions (e.g. `max_value` on a rule
    /// that only allows `sign_message`), which is almost certainly a mistake.
    #[error("rule {rule:?} conditions.{condition}: does not concern any of the rule's actions")]
    ConditionNotApplicable {
        /// The rule.
        rule: String,
        /// The condition.
        condition: String,
    },
    /// Sealed velocity counters do not decode (the message says why).
    #[error("velocity counters are malformed: {0}")]
    VelocityMalformed(&'static str),
}
