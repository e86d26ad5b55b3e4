//! KMS key policies: parsing, validation and evaluation.
//!
//! A key policy is the IAM JSON document KMS stores with each key. The mock evaluates it as
//! KMS does for a key policy alone: a request is allowed when some `Allow` statement matches
//! it (action, resource and every condition) and no `Deny` statement does; otherwise it is
//! denied. The `Principal` element is required but not evaluated: the mock authenticates no
//! one (it does not check SigV4 signatures), so every caller is every principal. Real KMS also
//! consults IAM policies when the key policy delegates to the account; the mock has none, so
//! a statement allowing the account root allows everyone.
//!
//! Supported condition operators: `StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`,
//! `StringNotEqualsIgnoreCase`, `StringLike` and `StringNotLike`. Supported condition keys:
//! `kms:RecipientAttestation:ImageSha384`, `kms:RecipientAttestation:PCR0` to `PCR31` and
//! `kms:EncryptionContext:<key>`. Anything else makes the policy malformed, so that a typo in
//! a development policy fails at `CreateKey`/`PutKeyPolicy` instead of silently never
//! matching. (Real KMS accepts condition keys it does not know; this is stricter on purpose.)

use std::collections::BTreeMap;

use serde_json::Value;

use crate::Error;

/// Largest key policy KMS accepts, in characters (`PolicyType` length constraint).
pub const MAX_POLICY_LEN: usize = 32 * 1024;

/// Condition key carrying the enclave image digest (PCR0) of a `Recipient` document.
pub const IMAGE_SHA384_KEY: &str = "kms:RecipientAttestation:ImageSha384";
/// Prefix of the per-PCR condition keys: `kms:RecipientAttestation:PCR<n>`.
pub const PCR_KEY_PREFIX: &str = "kms:RecipientAttestation:PCR";
/// Prefix of the encryption-context condition keys: `kms:EncryptionContext:<key>`.
pub const ENCRYPTION_CONTEXT_KEY_PREFIX: &str = "kms:EncryptionContext:";
/// Highest PCR index a condition key may name.
pub const MAX_PCR_INDEX: u8 = 31;

/// Whether a statement allows or denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The statement grants the actions.
    Allow,
    /// The statement refuses the actions, whatever other statements say.
    Deny,
}

/// A condition operator the mock understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// Exact, case-sensitive match with any value.
    StringEquals,
    /// True when no value matches exactly (or the key is absent).
    StringNotEquals,
    /// Case-insensitive match with any value.
    StringEqualsIgnoreCase,
    /// True when no value matches case-insensitively (or the key is absent).
    StringNotEqualsIgnoreCase,
    /// Match with any value, `*` and `?` wildcards, case-sensitive.
    StringLike,
    /// True when no value matches with wildcards (or the key is absent).
    StringNotLike,
}

impl Operator {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "StringEquals" => Self::StringEquals,
            "StringNotEquals" => Self::StringNotEquals,
            "StringEqualsIgnoreCase" => Self::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Self::StringNotEqualsIgnoreCase,
            "StringLike" => Self::StringLike,
            "StringNotLike" => Self::StringNotLike,
            _ => return None,
        })
    }

    fn negated(self) -> bool {
        matches!(
            self,
            Self::StringNotEquals | Self::StringNotEqualsIgnoreCase | Self::StringNotLike
        )
    }

    fn value_matches(self, pattern: &str, actual: &str) -> bool {
        match self {
            Self::StringEquals | Self::StringNotEquals => pattern == actual,
            Self::StringEqualsIgnoreCase | Self::StringNotEqualsIgnoreCase => {
                pattern.to_lowercase() == actual.to_lowercase()
            }
            Self::StringLike | Self::StringNotLike => glob_match(pattern, actual),
        }
    }

    /// IAM semantics: a positive operator is false when the key is absent from the request
    /// (fail closed); a negated one is true then ("the key does not equal any value").
    fn evaluate(self, values: &[String], actual: Option<&str>) -> bool {
        match actual {
            None => self.negated(),
            Some(actual) => {
                let any = values.iter().any(|v| self.value_matches(v, actual));
                any != self.negated()
            }
        }
    }
}

/// One condition: an operator applied to one condition key with one or more values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// The operator.
    pub operator: Operator,
    /// The condition key as written in the policy.
    pub key: String,
    /// The values; the condition matches if any of them does.
    pub values: Vec<String>,
}

/// One policy statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The statement's `Sid`, if any.
    pub sid: Option<String>,
    /// Allow or deny.
    pub effect: Effect,
    /// Action patterns (`kms:Decrypt`, `kms:Generate*`, `kms:*`, `*`), matched case-insensitively.
    pub actions: Vec<String>,
    /// Resource patterns; in a key policy `*` means "this key".
    pub resources: Vec<String>,
    /// Every condition must hold for the statement to apply.
    pub conditions: Vec<Condition>,
}

/// A parsed, validated key policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// The facts about a request that condition keys refer to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// Normalised condition key → value.
    values: BTreeMap<String, String>,
}

impl RequestContext {
    /// A context with no condition keys (a request without `Recipient` or encryption context).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the attestation keys of a verified `Recipient` document: `PCR<n>` for each PCR
    /// and `ImageSha384` (= PCR0), as lowercase hex.
    pub fn with_attestation(mut self, pcrs: &BTreeMap<u8, Vec<u8>>) -> Self {
        for (index, value) in pcrs {
            let hex_value = hex::encode(value);
            if *index == 0 {
                self.values
                    .insert(normalize_key(IMAGE_SHA384_KEY), hex_value.clone());
            }
            self.values.insert(
                normalize_key(&format!("{PCR_KEY_PREFIX}{index}")),
                hex_value,
            );
        }
        self
    }

    /// Adds `kms:EncryptionContext:<key>` for every pair of the request's encryption context.
    pub fn with_encryption_context(mut self, context: &BTreeMap<String, String>) -> Self {
        for (key, value) in context {
            self.values.insert(
                normalize_key(&format!("{ENCRYPTION_CONTEXT_KEY_PREFIX}{key}")),
                value.clone(),
            );
        }
        self
    }

    /// The value of a condition key in this request, if present (key names as in IAM:
    /// case-insensitive, except the encryption-context key after the prefix).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(&normalize_key(key)).map(String::as_str)
    }
}

/// The outcome of evaluating a policy for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// An `Allow` statement matched and no `Deny` did.
    Allow,
    /// A `Deny` statement matched: refused whatever else the policy says.
    ExplicitDeny {
        /// Index and `Sid` of the first matching `Deny` statement.
        statement: String,
    },
    /// No `Allow` statement matched; the reasons say, per statement naming the action, which
    /// condition failed (for the server log: KMS does not tell the caller).
    ImplicitDeny {
        /// One line per statement that named the action but did not apply.
        reasons: Vec<String>,
    },
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow)
    }
}

impl Policy {
    /// Parses and validates a key policy document.
    ///
    /// # Errors
    /// [`Error::MalformedPolicy`] naming the first problem: not JSON, too long, a missing or
    /// ill-typed element, an element the mock does not support (`NotAction`, `NotPrincipal`,
    /// `NotResource`), an unknown condition operator or condition key.
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.len() > MAX_POLICY_LEN {
            return Err(malformed(format!(
                "policy is {} bytes, more than {MAX_POLICY_LEN}",
                text.len()
            )));
        }
        let doc: Value =
            serde_json::from_str(text).map_err(|e| malformed(format!("not valid JSON: {e}")))?;
        let doc = doc
            .as_object()
            .ok_or_else(|| malformed("the policy must be a JSON object".into()))?;
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(malformed(format!("unknown policy element {key:?}")));
            }
        }
        match doc.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(other) => return Err(malformed(format!("unsupported Version {other}"))),
        }
        if let Some(id) = doc.get("Id")
            && !id.is_string()
        {
            return Err(malformed("Id must be a string".into()));
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
            Some(item @ Value::Object(_)) => vec![item],
            Some(_) => {
                return Err(malformed(
                    "Statement must be an object or an array of objects".into(),
                ));
            }
            None => return Err(malformed("the policy has no Statement".into())),
        };
        if statements.is_empty() {
            return Err(malformed("Statement is empty".into()));
        }
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| parse_statement(i, s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { statements })
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// Evaluates `action` (like `kms:Decrypt`) on the key `resource_arn` for a request with
    /// condition keys `context`.
    pub fn evaluate(&self, action: &str, resource_arn: &str, context: &RequestContext) -> Decision {
        let mut allowed = false;
        let mut reasons = Vec::new();
        for (i, statement) in self.statements.iter().enumerate() {
            let label = match &statement.sid {
                Some(sid) => format!("statement {i} ({sid:?})"),
                None => format!("statement {i}"),
            };
            if !statement.actions.iter().any(|p| action_matches(p, action)) {
                continue;
            }
            if !statement
                .resources
                .iter()
                .any(|p| glob_match(p, resource_arn))
            {
                reasons.push(format!("{label}: resource does not match {resource_arn}"));
                continue;
            }
            let failed = statement
                .conditions
                .iter()
                .find(|c| !c.operator.evaluate(&c.values, context.get(&c.key)));
            match (failed, statement.effect) {
                (None, Effect::Deny) => return Decision::ExplicitDeny { statement: label },
                (None, Effect::Allow) => allowed = true,
                (Some(c), _) => reasons.push(format!(
                    "{label}: {:?} {} {:?} is not satisfied by {}",
                    c.operator,
                    c.key,
                    c.values,
                    match context.get(&c.key) {
                        Some(v) => format!("{v:?}"),
                        None => "a request without that key".into(),
                    }
                )),
            }
        }
        if allowed {
            Decision::Allow
        } else {
            if reasons.is_empty() {
                reasons.push(format!("no statement names {action}"));
            }
            Decision::ImplicitDeny { reasons }
        }
    }
}

fn malformed(reason: String) -> Error {
    Error::MalformedPolicy(reason)
}

/// IAM condition key names are case-insensitive; the encryption-context key after the
/// prefix is kept as written, since encryption-context keys are case-sensitive.
fn normalize_key(key: &str) -> String {
    let prefix_len = ENCRYPTION_CONTEXT_KEY_PREFIX.len();
    match key.get(..prefix_len) {
        Some(prefix) if prefix.eq_ignore_ascii_case(ENCRYPTION_CONTEXT_KEY_PREFIX) => {
            format!(
                "{}{}",
                ENCRYPTION_CONTEXT_KEY_PREFIX.to_ascii_lowercase(),
                &key[prefix_len..]
            )
        }
        _ => key.to_ascii_lowercase(),
    }
}

fn is_known_condition_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    if lower == IMAGE_SHA384_KEY.to_ascii_lowercase() {
        return true;
    }
    if let Some(digits) = lower.strip_prefix(&PCR_KEY_PREFIX.to_ascii_lowercase()) {
        // Canonical decimal only ("PCR07" is not a key KMS defines).
        return digits
            .parse::<u8>()
            .is_ok_and(|n| n <= MAX_PCR_INDEX && digits == n.to_string());
    }
    lower.len() > ENCRYPTION_CONTEXT_KEY_PREFIX.len()
        && lower.starts_with(&ENCRYPTION_CONTEXT_KEY_PREFIX.to_ascii_lowercase())
}

/// A string or an array of strings (IAM also accepts numbers and booleans as values and
/// compares their text).
fn string_list(what: &str, value: &Value) -> Result<Vec<String>, Error> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(malformed(format!(
            "{what} must be a string or an array of strings"
        ))),
    };
    let list = match value {
        Value::Array(items) => items.iter().map(one).collect::<Result<Vec<_>, _>>()?,
        other => vec![one(other)?],
    };
    if list.is_empty() {
        return Err(malformed(format!("{what} is empty")));
    }
    Ok(list)
}

fn parse_statement(index: usize, value: &Value) -> Result<Statement, Error> {
    let at = |what: &str| format!("Statement[{index}].{what}");
    let object = value
        .as_object()
        .ok_or_else(|| malformed(format!("Statement[{index}] must be an object")))?;
    for key in object.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Principal" | "Action" | "Resource" | "Condition" => {}
            "NotAction" | "NotPrincipal" | "NotResource" => {
                return Err(malformed(format!(
                    "{}: the mock KMS does not support {key}",
                    at(key)
                )));
            }
            other => return Err(malformed(format!("unknown element {}", at(other)))),
        }
    }
    let sid = match object.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(malformed(format!("{} must be a string", at("Sid")))),
    };
    let effect = match object.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => {
            return Err(malformed(format!(
                "{} must be \"Allow\" or \"Deny\"",
                at("Effect")
            )));
        }
    };
    // Required, as in KMS key policies, but not evaluated: see the module documentation.
    match object.get("Principal") {
        Some(Value::String(s)) if s == "*" => {}
        Some(Value::Object(map)) if !map.is_empty() => {
            for (kind, v) in map {
                string_list(&at(&format!("Principal.{kind}")), v)?;
            }
        }
        _ => {
            return Err(malformed(format!(
                "{} is missing or invalid: use \"*\" or {{\"AWS\": ...}}",
                at("Principal")
            )));
        }
    }
    let actions = string_list(
        &at("Action"),
        object
            .get("Action")
            .ok_or_else(|| malformed(format!("{} is missing", at("Action"))))?,
    )?;
    for action in &actions {
        if action != "*" && !action.contains(':') {
            return Err(malformed(format!(
                "{}: {action:?} is not of the form service:Action",
                at("Action")
            )));
        }
    }
    let resources = string_list(
        &at("Resource"),
        object
            .get("Resource")
            .ok_or_else(|| malformed(format!("{} is missing", at("Resource"))))?,
    )?;
    let mut conditions = Vec::new();
    match object.get("Condition") {
        None => {}
        Some(Value::Object(ops)) => {
            for (op_name, keys) in ops {
                let operator = Operator::parse(op_name).ok_or_else(|| {
                    malformed(format!(
                        "{}: unsupported condition operator {op_name:?}",
                        at("Condition")
                    ))
                })?;
                let keys = keys.as_object().ok_or_else(|| {
                    malformed(format!(
                        "{} must be an object",
                        at(&format!("Condition.{op_name}"))
                    ))
                })?;
                for (key, values) in keys {
                    if !is_known_condition_key(key) {
                        return Err(malformed(format!(
                            "{}: unsupported condition key {key:?}",
                            at(&format!("Condition.{op_name}"))
                        )));
                    }
                    let values = string_list(&at(&format!("Condition.{op_name}.{key}")), values)?;
                    conditions.push(Condition {
                        operator,
                        key: key.clone(),
                        values,
                    });
                }
            }
        }
        Some(_) => return Err(malformed(format!("{} must be an object", at("Condition")))),
    }
    Ok(Statement {
        sid,
        effect,
        actions,
        resources,
        conditions,
    })
}

/// IAM action names are case-insensitive.
fn action_matches(pattern: &str, action: &str) -> bool {
    glob_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// `*` matches any run of characters, `?` exactly one; everything else literally.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` seen and the text position it was tried at: on a mismatch,
    // let that star swallow one more character (linear backtracking, no recursion).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The default key policy KMS attaches when `CreateKey` has no `Policy`: the account may do
/// everything (through IAM, which the mock does not have, so: everyone may).
pub fn default_policy(account_id: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account_id}:root")},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn policy(statements: Value) -> Policy {
        Policy::parse(&json!({"Version": "2012-10-17", "Statement": statements}).to_string())
            .expect("valid policy")
    }

    fn pcrs(pcr0: u8) -> BTreeMap<u8, Vec<u8>> {
        BTreeMap::from([
            (0, vec![pcr0; 48]),
            (1, vec![0x11; 48]),
            (8, vec![0x88; 48]),
        ])
    }

    fn attested(pcr0: u8) -> RequestContext {
        RequestContext::new().with_attestation(&pcrs(pcr0))
    }

    fn allow_with(condition: Value) -> Value {
        json!([{
            "Effect": "Allow", "Principal": "*", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "*", "Condition": condition
        }])
    }

    #[test]
    fn allow_requires_an_applying_allow_statement() {
        let p = policy(json!([{
            "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
            "Action": "kms:DescribeKey", "Resource": "*"
        }]));
        let ctx = RequestContext::new();
        assert!(p.evaluate("kms:DescribeKey", ARN, &ctx).is_allowed());
        assert!(matches!(
            p.evaluate("kms:Decrypt", ARN, &ctx),
            Decision::ImplicitDeny { .. }
        ));
    }

    #[test]
    fn deny_wins_over_allow_in_either_order() {
        let allow =
            json!({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"});
        let deny = json!({"Sid": "NoDecrypt", "Effect": "Deny", "Principal": "*",
            "Action": "kms:Decrypt", "Resource": "*"});
        for statements in [json!([allow, deny]), json!([deny, allow])] {
            let p = policy(statements);
            let ctx = RequestContext::new();
            assert!(matches!(
                p.evaluate("kms:Decrypt", ARN, &ctx),
                Decision::ExplicitDeny { ref statement } if statement.contains("NoDecrypt")
            ));
            assert!(p.evaluate("kms:GenerateDataKey", ARN, &ctx).is_allowed());
        }
    }

    #[test]
    fn conditional_deny_applies_only_when_its_condition_holds() {
        let p = policy(json!([
            {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"StringNotEquals": {"kms:RecipientAttestation:PCR0": hex::encode([7u8; 48])}}}
        ]));
        assert!(p.evaluate("kms:Decrypt", ARN, &attested(7)).is_allowed());
        assert!(!p.evaluate("kms:Decrypt", ARN, &attested(8)).is_allowed());
        // StringNotEquals on an absent key is true (IAM semantics), so the Deny applies.
        assert!(
            !p.evaluate("kms:Decrypt", ARN, &RequestContext::new())
                .is_allowed()
        );
    }

    #[test]
    fn action_wildcards_and_case() {
        let p = policy(json!([{"Effect": "Allow", "Principal": "*",
            "Action": ["kms:Generate*", "KMS:describe?ey"], "Resource": "*"}]));
        let ctx = RequestContext::new();
        for allowed in [
            "kms:GenerateDataKey",
            "kms:GenerateRandom",
            "kms:DescribeKey",
        ] {
            assert!(p.evaluate(allowed, ARN, &ctx).is_allowed(), "{allowed}");
        }
        for denied in ["kms:Decrypt", "kms:DescribeKeys", "kms:PutKeyPolicy"] {
            assert!(!p.evaluate(denied, ARN, &ctx).is_allowed(), "{denied}");
        }
        let star =
            policy(json!([{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]));
        assert!(star.evaluate("kms:PutKeyPolicy", ARN, &ctx).is_allowed());
    }

    #[test]
    fn resource_must_match_the_key() {
        let p = policy(
            json!([{"Effect": "Allow", "Principal": "*", "Action": "kms:*",
            "Resource": "arn:aws:kms:us-east-1:111122223333:key/other"}]),
        );
        assert!(
            !p.evaluate("kms:Decrypt", ARN, &RequestContext::new())
                .is_allowed()
        );
    }

    #[test]
    fn pcr_condition_with_list_values_matches_any() {
        let good = hex::encode([7u8; 48]);
        let p = policy(allow_with(json!({"StringEquals": {
            "kms:RecipientAttestation:PCR0": [hex::encode([1u8; 48]), good]
        }})));
        assert!(p.evaluate("kms:Decrypt", ARN, &attested(7)).is_allowed());
        assert!(!p.evaluate("kms:Decrypt", ARN, &attested(2)).is_allowed());
    }

    #[test]
    fn image_sha384_is_pcr0_and_all_conditions_must_hold() {
        let p = policy(allow_with(json!({"StringEquals": {
            "kms:RecipientAttestation:ImageSha384": hex::encode([7u8; 48]),
            "kms:RecipientAttestation:PCR8": hex::encode([0x88u8; 48]),
        }})));
        assert!(p.evaluate("kms:Decrypt", ARN, &attested(7)).is_allowed());
        let mut other = pcrs(7);
        other.insert(8, vec![0x89; 48]);
        let ctx = RequestContext::new().with_attestation(&other);
        match p.evaluate("kms:Decrypt", ARN, &ctx) {
            Decision::ImplicitDeny { reasons } => {
                assert!(reasons[0].contains("PCR8"), "{reasons:?}");
            }
            other => panic!("expected an implicit deny, got {other:?}"),
        }
    }

    #[test]
    fn ignore_case_operator() {
        let upper = hex::encode_upper([0xabu8; 48]);
        let exact = policy(allow_with(
            json!({"StringEquals": {"kms:RecipientAttestation:PCR0": upper}}),
        ));
        let relaxed = policy(allow_with(
            json!({"StringEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": upper}}),
        ));
        let ctx = attested(0xab);
        assert!(!exact.evaluate("kms:Decrypt", ARN, &ctx).is_allowed());
        assert!(relaxed.evaluate("kms:Decrypt", ARN, &ctx).is_allowed());
    }

    #[test]
    fn condition_key_names_are_case_insensitive() {
        let p = policy(allow_with(json!({"StringEquals": {
            "KMS:recipientattestation:pcr0": hex::encode([7u8; 48])
        }})));
        assert!(p.evaluate("kms:Decrypt", ARN, &attested(7)).is_allowed());
    }

    #[test]
    fn missing_context_keys_fail_closed() {
        let p = policy(allow_with(json!({"StringEquals": {
            "kms:RecipientAttestation:ImageSha384": hex::encode([7u8; 48])
        }})));
        assert!(
            !p.evaluate("kms:Decrypt", ARN, &RequestContext::new())
                .is_allowed()
        );
        let like = policy(allow_with(
            json!({"StringLike": {"kms:RecipientAttestation:PCR0": "*"}}),
        ));
        assert!(
            !like
                .evaluate("kms:Decrypt", ARN, &RequestContext::new())
                .is_allowed()
        );
        assert!(like.evaluate("kms:Decrypt", ARN, &attested(1)).is_allowed());
        let ignore = policy(allow_with(json!({"StringEqualsIgnoreCase": {
            "kms:RecipientAttestation:PCR0": hex::encode([7u8; 48])
        }})));
        assert!(
            !ignore
                .evaluate("kms:Decrypt", ARN, &RequestContext::new())
                .is_allowed()
        );
    }

    #[test]
    fn encryption_context_condition() {
        let p = policy(allow_with(
            json!({"StringEquals": {"kms:EncryptionContext:app": "strongroom"}}),
        ));
        let ctx = |k: &str, v: &str| {
            RequestContext::new()
                .with_encryption_context(&BTreeMap::from([(k.to_string(), v.to_string())]))
        };
        assert!(
            p.evaluate("kms:Decrypt", ARN, &ctx("app", "strongroom"))
                .is_allowed()
        );
        assert!(
            !p.evaluate("kms:Decrypt", ARN, &ctx("app", "other"))
                .is_allowed()
        );
        // The context key itself is case-sensitive.
        assert!(
            !p.evaluate("kms:Decrypt", ARN, &ctx("App", "strongroom"))
                .is_allowed()
        );
    }

    #[test]
    fn malformed_policies_are_refused() {
        let stmt = |extra: Value| {
            let mut s =
                json!({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"});
            for (k, v) in extra.as_object().unwrap() {
                s[k] = v.clone();
            }
            json!({"Version": "2012-10-17", "Statement": [s]}).to_string()
        };
        let cases = [
            "not json".to_string(),
            "[]".to_string(),
            json!({"Version": "2012-10-17"}).to_string(),
            json!({"Version": "2099-01-01", "Statement": []}).to_string(),
            stmt(json!({"Effect": "allow"})),
            stmt(json!({"Condition": {"StringEqualz": {"kms:RecipientAttestation:PCR0": "00"}}})),
            stmt(json!({"Condition": {"StringEquals": {"kms:RecipientAttestation:PCR32": "00"}}})),
            stmt(json!({"Condition": {"StringEquals": {"kms:RecipientAttestation:PCR07": "00"}}})),
            stmt(json!({"Condition": {"StringEquals": {"aws:PrincipalArn": "x"}}})),
            stmt(json!({"Condition": {"StringEquals": {"kms:EncryptionContext:": "x"}}})),
            stmt(json!({"Condition": {"StringEquals": {"kms:RecipientAttestation:PCR0": []}}})),
            stmt(
                json!({"Condition": {"StringEquals": {"kms:RecipientAttestation:PCR0": {"a": 1}}}}),
            ),
            stmt(json!({"NotAction": "kms:Decrypt"})),
            stmt(json!({"Action": "Decrypt"})),
            stmt(json!({"Principal": {}})),
            stmt(json!({"Surprise": true})),
            "x".repeat(MAX_POLICY_LEN + 1),
        ];
        for case in cases {
            assert!(
                matches!(Policy::parse(&case), Err(Error::MalformedPolicy(_))),
                "accepted: {case}"
            );
        }
        let no_principal =
            json!({"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]});
        assert!(Policy::parse(&no_principal.to_string()).is_err());
    }

    #[test]
    fn default_policy_parses_and_allows_everything() {
        let p = Policy::parse(&default_policy("111122223333")).unwrap();
        assert!(
            p.evaluate("kms:Decrypt", ARN, &RequestContext::new())
                .is_allowed()
        );
    }

    #[test]
    fn glob_examples() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(!glob_match("a*b", "aXXc"));
        assert!(glob_match("**a", "a"));
    }

    /// A simple recursive reference for the matcher.
    fn glob_reference(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some('*'), _) => {
                glob_reference(&p[1..], t) || (!t.is_empty() && glob_reference(p, &t[1..]))
            }
            (Some(_), None) => false,
            (Some('?'), Some(_)) => glob_reference(&p[1..], &t[1..]),
            (Some(a), Some(b)) => a == b && glob_reference(&p[1..], &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_reference(p in "[ab*?]{0,8}", t in "[ab]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            prop_assert_eq!(glob_match(&p, &t), glob_reference(&pc, &tc));
        }
    }
}
