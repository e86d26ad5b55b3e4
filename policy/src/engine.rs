//! Evaluation: deny rules first, then allow rules; default deny. Decisions carry the rule
//! that decided and a reason a person can act on.

use std::collections::BTreeSet;

use alloy_primitives::{Address, U256};
use serde::{Deserialize, Serialize};

use crate::intent::{Action, Erc20Call, Intent, PermitScheme, TransactionIntent, TypedDataIntent};
use crate::policy::{Effect, Policy, Principal, Rule, Scope, day_and_hour, day_name};
use crate::units::{canonical_duration, format_eth, format_gwei, format_selector};
use crate::velocity::{MAX_SUBJECT_LEN, SignatureRecord, Velocity};

/// The signing key a request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRef<'a> {
    /// The key's id.
    pub id: &'a str,
    /// The key's label.
    pub label: &'a str,
}

/// Everything a decision depends on besides the policy and the velocity counters.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The verified principal id.
    pub principal: &'a str,
    /// The key the request names; `None` for `create_key`.
    pub key: Option<KeyRef<'a>>,
    /// The decoded request.
    pub intent: &'a Intent,
    /// Unix seconds, enclave clock.
    pub now: u64,
    /// When the request was first made (time-locks count from here); `now` for a new
    /// request.
    pub requested_at: u64,
    /// Principal ids whose verified approvals of this request's intent the enclave holds.
    pub approvals: &'a BTreeSet<String>,
}

/// What the engine decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Sign.
    Allow,
    /// Refuse.
    Deny,
    /// Hold until `threshold` of `approvers` have approved; `approved` lists those who have.
    NeedsApproval {
        /// Approvals needed.
        threshold: u32,
        /// Who may approve.
        approvers: Vec<String>,
        /// Who has approved so far (never the requester).
        approved: Vec<String>,
    },
    /// Hold until `until` (unix seconds).
    TimeLocked {
        /// When the request may be signed.
        until: u64,
    },
}

/// A decision with the rule that made it and the reason.
///
/// JSON: `{"result": "allow" | "deny" | "needs_approval" | "time_locked", ...outcome fields,
/// "rule": name or null, "reason": text}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The deciding rule; `None` when no rule was in scope (default deny).
    pub rule: Option<String>,
    /// Why, in words.
    pub reason: String,
}

impl Decision {
    fn deny(rule: Option<&str>, reason: String) -> Self {
        Self {
            outcome: Outcome::Deny,
            rule: rule.map(str::to_owned),
            reason,
        }
    }

    /// Whether the outcome is [`Outcome::Allow`].
    pub fn is_allow(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    /// The decision as a JSON value (the shape documented on [`Decision`]).
    pub fn to_json_value(&self) -> serde_json::Value {
        // Cannot fail: strings, integers and lists only.
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The policy and the velocity counters. Wrap it in a `Mutex` and call
/// [`Engine::decide_and_commit`] so concurrent requests cannot overrun velocity limits.
#[derive(Clone, Debug)]
pub struct Engine {
    policy: Policy,
    velocity: Velocity,
}

fn is_signing(action: Action) -> bool {
    matches!(
        action,
        Action::SignTransaction | Action::SignTypedData | Action::SignMessage | Action::SignDigest
    )
}

/// Whether a rule's key reference looks like a key id (32 lowercase hex). Such references
/// match key ids only, never labels, so a caller who may label keys cannot create one
/// that a rule naming another key's id would cover.
fn looks_like_key_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn principal_matches(rule: &Rule, principal: &Principal) -> bool {
    if rule.principals.is_none() && rule.roles.is_none() {
        return true;
    }
    rule.principals
        .as_ref()
        .is_some_and(|ids| ids.iter().any(|id| id == principal.id()))
        || rule
            .roles
            .as_ref()
            .is_some_and(|roles| roles.iter().any(|r| principal.has_role(r)))
}

fn key_matches(rule: &Rule, ctx: &Context<'_>) -> bool {
    let Some(refs) = &rule.keys else {
        return true;
    };
    let by_label = |label: &str| refs.iter().any(|r| r == label && !looks_like_key_id(r));
    match (ctx.key, ctx.intent) {
        (Some(key), _) => refs.iter().any(|r| r == key.id) || by_label(key.label),
        // A key being created is known by its requested label only.
        (None, Intent::CreateKey { label }) => by_label(label),
        (None, _) => false,
    }
}

fn in_scope(rule: &Rule, ctx: &Context<'_>, principal: &Principal) -> bool {
    rule.actions.contains(&ctx.intent.action())
        && principal_matches(rule, principal)
        && key_matches(rule, ctx)
}

/// Addresses a transaction sends to or empowers: `to`, the ERC-20 recipient, the approve
/// spender.
fn tx_counterparties(tx: &TransactionIntent) -> Vec<Address> {
    let mut out: Vec<Address> = tx.to.into_iter().collect();
    match &tx.erc20 {
        Some(Erc20Call::Transfer { to, .. } | Erc20Call::TransferFrom { to, .. }) => out.push(*to),
        Some(Erc20Call::Approve { spender, .. }) => out.push(*spender),
        None => {}
    }
    out
}

/// Addresses typed data empowers: the verifying contract and a permit's spender.
fn typed_counterparties(td: &TypedDataIntent) -> Vec<Address> {
    td.verifying_contract
        .into_iter()
        .chain(td.permit.as_ref().map(|p| p.spender))
        .collect()
}

fn time_text(now: u64) -> String {
    let (day, hour) = day_and_hour(now);
    let minute = (now % 3_600) / 60;
    format!("{} {hour:02}:{minute:02} UTC", capitalize(day_name(day)))
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// Some(reason) when deny rule `rule` matches: every condition it gives matches. A
/// condition that does not concern the request's kind counts as matched, and one the
/// request cannot answer (typed data without a chain id) matches too: deny rules fail
/// closed.
fn deny_matches(rule: &Rule, ctx: &Context<'_>) -> Option<String> {
    let k = &rule.conditions;
    let name = &rule.name;
    if let Some(window) = &k.time_window
        && !window.contains(ctx.now)
    {
        return None;
    }
    let mut reasons: Vec<String> = Vec::new();
    if let Some(dests) = &k.destinations {
        let parties = match ctx.intent {
            Intent::Transaction(tx) => Some(tx_counterparties(tx)),
            Intent::TypedData(td) => Some(typed_counterparties(td)),
            _ => None,
        };
        if let Some(parties) = parties {
            let hit = parties.into_iter().find(|a| dests.contains(a))?;
            reasons.push(format!("destination {hit} is denied by rule {name:?}"));
        }
    }
    if let Some(tokens) = &k.erc20 {
        let listed = |a: &Address| tokens.iter().any(|t| t.token == *a);
        let touched: Option<Vec<Address>> = match ctx.intent {
            Intent::Transaction(tx) => Some(
                tx.to
                    .into_iter()
                    .chain(tx.erc20.as_ref().map(Erc20Call::token))
                    .collect(),
            ),
            Intent::TypedData(td) => Some(
                td.verifying_contract
                    .into_iter()
                    .chain(td.permit.iter().flat_map(|p| p.tokens.iter().copied()))
                    .collect(),
            ),
            _ => None,
        };
        if let Some(touched) = touched {
            let hit = touched.into_iter().find(listed)?;
            reasons.push(format!("token {hit} is denied by rule {name:?}"));
        }
    }
    if let Some(chains) = &k.chain_ids {
        let chain = match ctx.intent {
            Intent::Transaction(tx) => Some(Some(tx.chain_id)),
            Intent::TypedData(td) => Some(td.chain_id),
            _ => None,
        };
        match chain {
            Some(Some(id)) if chains.contains(&id) => {
                reasons.push(format!("chain id {id} is denied by rule {name:?}"));
            }
            Some(Some(_)) => return None,
            Some(None) => reasons.push(format!(
                "typed data without a domain chain id is denied by rule {name:?}"
            )),
            None => {}
        }
    }
    if k.time_window.is_some() {
        reasons.push(format!(
            "requests at {} are denied by rule {name:?}",
            time_text(ctx.now)
        ));
    }
    Some(reasons.into_iter().next().unwrap_or_else(|| {
        format!(
            "{} is denied by rule {name:?}",
            ctx.intent.action().as_str()
        )
    }))
}

fn check_transaction(rule: &Rule, tx: &TransactionIntent) -> Result<(), String> {
    let k = &rule.conditions;
    let name = &rule.name;
    if let Some(chains) = &k.chain_ids
        && !chains.contains(&tx.chain_id)
    {
        return Err(format!(
            "chain id {} is not allowed by rule {name:?}",
            tx.chain_id
        ));
    }
    match tx.to {
        None if !k.allow_contract_creation => {
            return Err(format!("contract creation is not allowed by rule {name:?}"));
        }
        None => {}
        Some(to) => {
            if let Some(dests) = &k.destinations
                && !dests.contains(&to)
            {
                return Err(format!("destination {to} is not allowed by rule {name:?}"));
            }
        }
    }
    if let Some(denied) = &k.denied_destinations
        && let Some(hit) = tx_counterparties(tx)
            .into_iter()
            .find(|a| denied.contains(a))
    {
        return Err(format!("destination {hit} is denied by rule {name:?}"));
    }
    // Calldata needs an explicit grant: a listed (contract, selector) or a listed ERC-20
    // token the call decoded for. Contract creation's init code is covered by
    // allow_contract_creation.
    if let Some(to) = tx.to
        && tx.data_len > 0
    {
        let listed_call = tx.selector.is_some_and(|sel| {
            k.contract_calls
                .iter()
                .flatten()
                .any(|(c, s)| *c == to && *s == sel)
        });
        let listed_token = tx.erc20.is_some() && k.erc20.iter().flatten().any(|e| e.token == to);
        if !listed_call && !listed_token {
            let selector = tx
                .selector
                .map(format_selector)
                .unwrap_or_else(|| "none".into());
            return Err(format!(
                "calldata to {to} (selector {selector}, {} bytes) is not allowed by rule {name:?}",
                tx.data_len
            ));
        }
    }
    if let (Some(list), Some(call), Some(to)) = (&k.erc20, &tx.erc20, tx.to) {
        let Some(entry) = list.iter().find(|e| e.token == to) else {
            return Err(format!("token {to} is not allowed by rule {name:?}"));
        };
        if let Some(max) = entry.max_amount
            && call.amount() > max
        {
            return Err(format!(
                "token amount {} exceeds cap {max} for token {to} of rule {name:?}",
                call.amount()
            ));
        }
        match call {
            Erc20Call::Approve { spender, .. } => match &entry.spenders {
                None => {
                    return Err(format!(
                        "approve of token {to} is not allowed by rule {name:?} (no spenders listed)"
                    ));
                }
                Some(spenders) if !spenders.contains(spender) => {
                    return Err(format!(
                        "approve spender {spender} is not allowed for token {to} by rule {name:?}"
                    ));
                }
                Some(_) => {}
            },
            Erc20Call::Transfer { to: recipient, .. }
            | Erc20Call::TransferFrom { to: recipient, .. } => {
                if let Some(recipients) = &entry.recipients
                    && !recipients.contains(recipient)
                {
                    return Err(format!(
                        "token recipient {recipient} is not allowed for token {to} by rule {name:?}"
                    ));
                }
            }
        }
    }
    if let Some(max) = k.max_value
        && tx.value > max
    {
        return Err(format!(
            "value {} exceeds cap {} of rule {name:?}",
            format_eth(tx.value),
            format_eth(max)
        ));
    }
    if let Some(max) = k.max_gas_limit
        && tx.gas_limit > max
    {
        return Err(format!(
            "gas limit {} exceeds cap {max} of rule {name:?}",
            tx.gas_limit
        ));
    }
    let fee = U256::from(tx.max_fee_per_gas);
    if let Some(max) = k.max_fee_per_gas
        && fee > max
    {
        return Err(format!(
            "max fee per gas {} exceeds cap {} of rule {name:?}",
            format_gwei(fee),
            format_gwei(max)
        ));
    }
    // A legacy gas price can go entirely to the tip, so it is the priority fee there.
    let tip = U256::from(tx.max_priority_fee_per_gas.unwrap_or(tx.max_fee_per_gas));
    if let Some(max) = k.max_priority_fee_per_gas
        && tip > max
    {
        return Err(format!(
            "max priority fee per gas {} exceeds cap {} of rule {name:?}",
            format_gwei(tip),
            format_gwei(max)
        ));
    }
    Ok(())
}

fn check_typed_data(rule: &Rule, td: &TypedDataIntent) -> Result<(), String> {
    let k = &rule.conditions;
    let name = &rule.name;
    if let Some(chains) = &k.chain_ids {
        match td.chain_id {
            None => {
                return Err(format!(
                    "typed data without a domain chain id is not allowed by rule {name:?}"
                ));
            }
            Some(id) if !chains.contains(&id) => {
                return Err(format!("chain id {id} is not allowed by rule {name:?}"));
            }
            Some(_) => {}
        }
    }
    if let Some(denied) = &k.denied_destinations
        && let Some(hit) = typed_counterparties(td)
            .into_iter()
            .find(|a| denied.contains(a))
    {
        return Err(format!("destination {hit} is denied by rule {name:?}"));
    }
    let rules = k.typed_data.as_ref();
    if let Some(domains) = rules.and_then(|t| t.domains.as_ref()) {
        let matches = domains.iter().any(|d| {
            d.name
                .as_ref()
                .is_none_or(|n| td.domain_name.as_ref() == Some(n))
                && d.chain_id.is_none_or(|c| td.chain_id == Some(c))
                && d.verifying_contract
                    .is_none_or(|v| td.verifying_contract == Some(v))
        });
        if !matches {
            let contract = td
                .verifying_contract
                .map(|a| a.to_string())
                .unwrap_or_else(|| "none".into());
            let chain = td
                .chain_id
                .map(|c| c.to_string())
                .unwrap_or_else(|| "none".into());
            return Err(format!(
                "typed-data domain (name {:?}, chain id {chain}, verifying contract {contract}) is not allowed by rule {name:?}",
                td.domain_name.as_deref().unwrap_or("")
            ));
        }
    }
    if let Some(types) = rules.and_then(|t| t.primary_types.as_ref())
        && !types.contains(&td.primary_type)
    {
        return Err(format!(
            "primary type {:?} is not allowed by rule {name:?}",
            td.primary_type
        ));
    }
    // Typed data whose effect the enclave cannot read is signed only where the rule says
    // which types it means, or that it accepts any: a new value-moving scheme must not
    // pass a rule written before anyone knew of it.
    if td.permit.is_none()
        && rules.and_then(|t| t.primary_types.as_ref()).is_none()
        && !rules.is_some_and(|t| t.allow_unknown_types)
    {
        return Err(format!(
            "primary type {:?} is not one the enclave recognises (permits, transfers by \
             authorisation, orders) and rule {name:?} neither lists it in \
             typed_data.primary_types nor sets typed_data.allow_unknown_types",
            td.primary_type
        ));
    }
    // Permits, transfers by authorisation and orders hand the signer's tokens to someone
    // else: refused unless that counterparty is listed, every token is one the rule's
    // erc20 list names (when it has one), and the amount is within that token's cap.
    if let Some(permit) = &td.permit {
        let scheme = permit_scheme_name(permit.scheme);
        match rules.and_then(|t| t.permit_spenders.as_ref()) {
            None => {
                return Err(format!(
                    "{scheme} typed data is not allowed by rule {name:?} (no permit_spenders \
                     listed)"
                ));
            }
            Some(spenders) if !spenders.contains(&permit.spender) => {
                return Err(format!(
                    "{scheme} counterparty {} is not allowed by rule {name:?}",
                    permit.spender
                ));
            }
            Some(_) => {}
        }
        if let Some(list) = &k.erc20 {
            if permit.tokens.is_empty() {
                return Err(format!(
                    "{scheme} typed data names no token, and rule {name:?} allows only the \
                     tokens its erc20 list names"
                ));
            }
            for token in &permit.tokens {
                let Some(entry) = list.iter().find(|e| e.token == *token) else {
                    return Err(format!("token {token} is not allowed by rule {name:?}"));
                };
                if let Some(max) = entry.max_amount
                    && permit.amount > max
                {
                    return Err(format!(
                        "{scheme} amount {} exceeds cap {max} for token {token} of rule {name:?}",
                        permit.amount
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A scheme as refusals name it.
fn permit_scheme_name(scheme: PermitScheme) -> &'static str {
    match scheme {
        PermitScheme::Eip2612 => "EIP-2612 permit",
        PermitScheme::DaiPermit => "DAI permit",
        PermitScheme::Permit2 => "Permit2",
        PermitScheme::Eip3009 => "EIP-3009 transfer authorisation",
        PermitScheme::SeaportOrder => "Seaport order",
        PermitScheme::CowOrder => "CoW Protocol order",
    }
}

impl Engine {
    /// An engine over `policy` with the velocity history in `velocity`.
    pub fn new(policy: Policy, velocity: Velocity) -> Self {
        Self { policy, velocity }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The velocity counters (seal [`Velocity::to_bytes`] after a commit that recorded).
    pub fn velocity(&self) -> &Velocity {
        &self.velocity
    }

    /// Swaps the policy; the counters are kept, so velocity history survives the change.
    /// A limit of the new policy sees the counter of its (scope, subject, window) only: a
    /// limit whose scope and window no earlier rule had starts counting from now, as does
    /// a count where earlier limits on that window only counted value.
    pub fn replace_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// Drops the buckets and counters no velocity window can count from `now` on. Not
    /// needed for correctness or bounded memory ([`Engine::record`] prunes as it goes);
    /// it only frees memory sooner.
    pub fn prune(&mut self, now: u64) {
        self.velocity.prune(now);
    }

    /// Decides a request against the policy and the velocity counters as they are now.
    /// Pure.
    pub fn decide(&self, ctx: &Context<'_>) -> Decision {
        let action = ctx.intent.action();
        let Some(principal) = self.policy.principal(ctx.principal) else {
            return Decision::deny(
                None,
                format!(
                    "principal {:?} is not in the policy (default deny)",
                    ctx.principal
                ),
            );
        };
        if action != Action::CreateKey && ctx.key.is_none() {
            return Decision::deny(
                None,
                format!("{} needs a key and the request names none", action.as_str()),
            );
        }
        // A key id is a velocity subject, so it must be one a counter can hold. Principal
        // ids and rule names are subjects too; the policy bounds them (1 to 64 characters)
        // and only its principals and rules get this far.
        if ctx.key.is_some_and(|k| k.id.is_empty()) {
            return Decision::deny(None, "the request names an empty key id".into());
        }
        if ctx.key.is_some_and(|k| k.id.len() > MAX_SUBJECT_LEN) {
            return Decision::deny(
                None,
                format!("key id is longer than {MAX_SUBJECT_LEN} bytes"),
            );
        }
        let rules = self
            .policy
            .rules()
            .iter()
            .filter(|r| in_scope(r, ctx, principal));
        for rule in rules.clone().filter(|r| r.effect == Effect::Deny) {
            if let Some(reason) = deny_matches(rule, ctx) {
                return Decision::deny(Some(&rule.name), reason);
            }
        }
        // Allow rules are grants: if any in-scope rule allows outright, allow. Only when
        // none does, the first one that holds but wants approvals or a time-lock decides.
        // So removing an allow rule never allows more, whatever the rule order.
        let mut pending: Option<Decision> = None;
        let mut failure: Option<Decision> = None;
        for rule in rules.filter(|r| r.effect == Effect::Allow) {
            match self.check_allow(rule, ctx) {
                Err(reason) => {
                    failure.get_or_insert_with(|| Decision::deny(Some(&rule.name), reason));
                }
                Ok(()) => {
                    let decision = gate(rule, ctx);
                    if decision.is_allow() {
                        return decision;
                    }
                    pending.get_or_insert(decision);
                }
            }
        }
        pending.or(failure).unwrap_or_else(|| {
            let key = match (ctx.key, ctx.intent) {
                (Some(k), _) if !k.label.is_empty() => format!(" on key {:?}", k.label),
                (Some(k), _) => format!(" on key {:?}", k.id),
                (None, Intent::CreateKey { label }) => format!(" for new key {label:?}"),
                (None, _) => String::new(),
            };
            Decision::deny(
                None,
                format!(
                    "no rule allows {} for principal {:?}{key} (default deny)",
                    action.as_str(),
                    ctx.principal
                ),
            )
        })
    }

    /// Records an Allow of a signing action in the velocity counters
    /// ([`Engine::record`] of its [`SignatureRecord`]); does nothing for other outcomes
    /// and actions. True when something was recorded (the state to re-seal changed).
    pub fn commit(&mut self, ctx: &Context<'_>, decision: &Decision) -> bool {
        if !decision.is_allow() || !is_signing(ctx.intent.action()) {
            return false;
        }
        self.record(&SignatureRecord {
            time: ctx.now,
            key: ctx.key.map(|k| k.id).unwrap_or_default(),
            principal: ctx.principal,
            rule: decision.rule.as_deref().unwrap_or_default(),
            value: ctx.intent.native_value(),
        })
    }

    /// Records a signature: adds it once to the counter of every (scope, subject, window)
    /// that a velocity limit of the current policy could count it under
    /// ([`Policy::could_count`]). What [`Engine::commit`] does for an allowed signature, so
    /// a caller replaying a log of past signatures makes exactly the same change. True
    /// when something was recorded; a signature no limit could count records nothing.
    pub fn record(&mut self, s: &SignatureRecord<'_>) -> bool {
        // A set: limits sharing a (scope, window) share a counter and count it once.
        let mut counters = BTreeSet::new();
        for rule in self.policy.rules() {
            for limit in &rule.conditions.velocity {
                if !limit.could_count(&rule.name, Some(s.rule), s.value) {
                    continue;
                }
                let subject = match limit.scope {
                    Scope::Key => s.key,
                    Scope::Principal => s.principal,
                    Scope::Rule => s.rule,
                };
                counters.insert((limit.scope, subject, limit.window));
            }
        }
        self.velocity.record(s.time, s.value, counters)
    }

    /// Decides and commits in one step: with the engine behind a `Mutex`, no two requests
    /// can both pass a velocity limit that only one of them fits.
    pub fn decide_and_commit(&mut self, ctx: &Context<'_>) -> Decision {
        let decision = self.decide(ctx);
        self.commit(ctx, &decision);
        decision
    }

    /// Err(reason) with the first condition of allow rule `rule` that fails.
    fn check_allow(&self, rule: &Rule, ctx: &Context<'_>) -> Result<(), String> {
        let name = &rule.name;
        match ctx.intent {
            Intent::Transaction(tx) => check_transaction(rule, tx)?,
            Intent::TypedData(td) => check_typed_data(rule, td)?,
            Intent::Message(m) => {
                if let Some(max) = rule.conditions.message_max_len
                    && m.len as u64 > max
                {
                    return Err(format!(
                        "message of {} bytes exceeds the {max}-byte limit of rule {name:?}",
                        m.len
                    ));
                }
            }
            _ => {}
        }
        if let Some(window) = &rule.conditions.time_window
            && !window.contains(ctx.now)
        {
            return Err(format!(
                "request at {} is outside the time window of rule {name:?}",
                time_text(ctx.now)
            ));
        }
        if is_signing(ctx.intent.action()) {
            self.check_velocity(rule, ctx)?;
        }
        Ok(())
    }

    fn check_velocity(&self, rule: &Rule, ctx: &Context<'_>) -> Result<(), String> {
        let key_id = ctx.key.map(|k| k.id).unwrap_or_default();
        let value = ctx.intent.native_value();
        for limit in &rule.conditions.velocity {
            let subject = match limit.scope {
                Scope::Key => key_id,
                Scope::Principal => ctx.principal,
                Scope::Rule => &rule.name,
            };
            let (count, total) = self
                .velocity
                .totals(limit.scope, subject, limit.window, ctx.now);
            let window = canonical_duration(limit.window);
            let scope = limit.scope.as_str();
            if let Some(max) = limit.max_count
                && count.saturating_add(1) > u64::from(max)
            {
                return Err(format!(
                    "velocity: {} signatures in the last {window} would exceed {max} per {scope} of rule {:?}",
                    count.saturating_add(1),
                    rule.name
                ));
            }
            // Value limits concern transactions; other kinds move no native value.
            if let Some(max) = limit.max_value
                && matches!(ctx.intent, Intent::Transaction(_))
            {
                let after = total.saturating_add(value);
                if after > max {
                    return Err(format!(
                        "velocity: {} in the last {window} would exceed {} per {scope} of rule {:?}",
                        format_eth(after),
                        format_eth(max),
                        rule.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The outcome of an allow rule whose conditions all hold: approvals first, then the
/// time-lock, then Allow.
fn gate(rule: &Rule, ctx: &Context<'_>) -> Decision {
    let name = &rule.name;
    let k = &rule.conditions;
    if let Some(a) = &k.approvals
        && a.above_value
            .is_none_or(|min| ctx.intent.native_value() > min)
    {
        // The requester's own approval does not count: approvals are a second pair of eyes.
        let approved: Vec<String> = a
            .approvers
            .iter()
            .filter(|id| id.as_str() != ctx.principal && ctx.approvals.contains(id.as_str()))
            .cloned()
            .collect();
        if approved.len() < a.threshold as usize {
            return Decision {
                reason: format!(
                    "rule {name:?} needs {} of {} approvals ({} so far)",
                    a.threshold,
                    a.approvers.len(),
                    approved.len()
                ),
                outcome: Outcome::NeedsApproval {
                    threshold: a.threshold,
                    approvers: a.approvers.clone(),
                    approved,
                },
                rule: Some(name.clone()),
            };
        }
    }
    if let Some(delay) = k.time_lock {
        let until = ctx.requested_at.saturating_add(delay);
        if ctx.now < until {
            return Decision {
                outcome: Outcome::TimeLocked { until },
                rule: Some(name.clone()),
                reason: format!(
                    "rule {name:?} time-locks this request until {until} ({}s from now)",
                    until - ctx.now
                ),
            };
        }
    }
    Decision {
        outcome: Outcome::Allow,
        rule: Some(name.clone()),
        reason: format!("allowed by rule {name:?}"),
    }
}
