//! Property tests of the engine: default deny, caps, velocity under concurrency and over a
//! rolling window (bucketed: never over a limit, at most one bucket early), the sealed
//! counters' round trip, and monotonicity (removing an allow rule never allows more).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::thread;

use alloy_primitives::U256;
use common::*;
use proptest::prelude::*;
use proptest::sample::subsequence;
use serde_json::{Value, json};
use strongroom_policy::{
    Action, BUCKETS_PER_WINDOW, Engine, Erc20Call, Intent, Outcome, Policy, TransactionIntent,
    TypedDataIntent, Velocity, VelocityScope,
};

const ACTIONS: [Action; 6] = [
    Action::CreateKey,
    Action::DestroyKey,
    Action::SignTransaction,
    Action::SignTypedData,
    Action::SignMessage,
    Action::SignDigest,
];

fn arb_tx() -> impl Strategy<Value = TransactionIntent> {
    let calldata = prop_oneof![
        4 => Just(None),
        1 => (0x70u8..0x72, 1u8..5, 0u64..2000).prop_map(|(t, to, amt)| Some(Erc20Call::Transfer {
            token: addr(t), to: addr(to), amount: U256::from(amt)
        })),
        1 => (0x70u8..0x72, 1u8..5, 0u64..2000).prop_map(|(t, s, amt)| Some(Erc20Call::Approve {
            token: addr(t), spender: addr(s), amount: U256::from(amt)
        })),
    ];
    (
        prop_oneof![Just(1u64), Just(5), Just(137)],
        prop_oneof![1 => Just(None), 6 => (1u8..5).prop_map(|n| Some(addr(n)))],
        0u64..3000,
        21_000u64..60_000,
        1u128..60,
        proptest::option::of(0u128..5),
        calldata,
        any::<bool>(),
    )
        .prop_map(
            |(chain_id, to, milli, gas_limit, fee, tip, erc20, raw_call)| {
                let mut t = TransactionIntent {
                    chain_id,
                    to,
                    value: eth_milli(milli),
                    gas_limit,
                    max_fee_per_gas: fee * GWEI,
                    max_priority_fee_per_gas: tip.map(|t| t * GWEI),
                    ..tx()
                };
                if let Some(call) = erc20 {
                    t.to = Some(call.token());
                    t.selector = Some([0xa9, 0x05, 0x9c, 0xbb]);
                    t.data_len = 68;
                    t.erc20 = Some(call);
                } else if raw_call && t.to.is_some() {
                    t.selector = Some([0x12, 0x34, 0x56, 0x78]);
                    t.data_len = 36;
                }
                t
            },
        )
}

fn arb_intent() -> impl Strategy<Value = Intent> {
    prop_oneof![
        4 => arb_tx().prop_map(Intent::Transaction),
        2 => (proptest::option::of(prop_oneof![Just(1u64), Just(137)]), 0xccu8..0xce, proptest::option::of(1u8..5))
            .prop_map(|(chain_id, vc, spender)| match spender {
                Some(s) => match permit(s) {
                    Intent::TypedData(td) => Intent::TypedData(TypedDataIntent { chain_id, verifying_contract: Some(addr(vc)), ..td }),
                    other => other,
                },
                None => Intent::TypedData(TypedDataIntent { chain_id, verifying_contract: Some(addr(vc)), ..typed() }),
            }),
        1 => (0usize..300).prop_map(message),
        1 => Just(digest()),
        1 => prop_oneof![Just("hot"), Just("cold")].prop_map(|l| Intent::CreateKey { label: l.into() }),
        1 => Just(Intent::DestroyKey),
    ]
}

fn arb_req() -> impl Strategy<Value = Req> {
    (
        arb_intent(),
        prop_oneof![Just("alice"), Just("bob"), Just("carol")],
        prop_oneof![Just((KEY_ID, KEY_LABEL)), Just(("k2", "hot"))],
        0u64..(3 * 86_400),
        proptest::sample::subsequence(vec!["alice", "bob", "carol"], 0..=3),
    )
        .prop_map(|(intent, who, (id, label), dt, approvals)| {
            let mut r = Req::new(intent)
                .by(who)
                .at(NOW + dt)
                .approved_by(&approvals);
            if r.key.is_some() {
                r = r.key(id, label);
            }
            r.requested_at = NOW;
            r
        })
}

/// A rule from a small grammar; `to_json` drops conditions its actions make meaningless,
/// so every generated rule is valid.
#[derive(Clone, Debug)]
struct RuleSpec {
    allow: bool,
    actions: Vec<Action>,
    principals: Option<Vec<&'static str>>,
    roles: bool,
    keys: Option<&'static str>,
    chain_ids: Option<Vec<u64>>,
    destinations: Option<Vec<u8>>,
    max_value_milli: Option<u64>,
    max_gas: Option<u64>,
    max_fee_gwei: Option<u64>,
    erc20: Option<(u8, u64, bool)>,
    contract_call: bool,
    hours: Option<(u64, u64)>,
    velocity: Option<(&'static str, u64, Option<u64>, Option<u32>)>,
    approvals: bool,
    time_lock: bool,
    permit_spender: Option<u8>,
    max_len: Option<u64>,
}

fn non_empty<T: Clone + std::fmt::Debug + 'static>(items: Vec<T>) -> impl Strategy<Value = Vec<T>> {
    let n = items.len();
    subsequence(items, 1..=n)
}

fn arb_rule() -> impl Strategy<Value = RuleSpec> {
    let scope = (
        prop::bool::weighted(0.8),
        non_empty(ACTIONS.to_vec()),
        proptest::option::of(prop_oneof![
            Just(vec!["alice"]),
            Just(vec!["bob"]),
            Just(vec!["alice", "carol"])
        ]),
        prop::bool::weighted(0.2),
        proptest::option::of(prop_oneof![Just("treasury"), Just("hot")]),
    );
    let tx_caps = (
        proptest::option::of(non_empty(vec![1u64, 5, 137])),
        proptest::option::of(non_empty(vec![1u8, 2, 3, 4])),
        proptest::option::of(0u64..3000),
        proptest::option::of(21_000u64..60_000),
        proptest::option::of(1u64..60),
        proptest::option::of((0x70u8..0x72, 0u64..2000, any::<bool>())),
        any::<bool>(),
    );
    let other = (
        proptest::option::of((0u64..23).prop_flat_map(|from| (Just(from), (from + 1)..=24))),
        proptest::option::of((
            prop_oneof![Just("key"), Just("principal"), Just("rule")],
            prop_oneof![Just(3600u64), Just(86_400)],
            proptest::option::of(0u64..5000),
            proptest::option::of(1u32..4),
        )),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        proptest::option::of(1u8..5),
        proptest::option::of(0u64..300),
    );
    (scope, tx_caps, other).prop_map(
        |(
            (allow, actions, principals, roles, keys),
            (chain_ids, destinations, max_value_milli, max_gas, max_fee_gwei, erc20, contract_call),
            (hours, velocity, approvals, time_lock, permit_spender, max_len),
        )| {
            let velocity = velocity.map(|(s, w, v, c)| {
                (
                    s,
                    w,
                    v,
                    if v.is_none() && c.is_none() {
                        Some(2)
                    } else {
                        c
                    },
                )
            });
            RuleSpec {
                allow,
                actions,
                principals,
                roles,
                keys,
                chain_ids,
                destinations,
                max_value_milli,
                max_gas,
                max_fee_gwei,
                erc20,
                contract_call,
                hours,
                velocity,
                approvals,
                time_lock,
                permit_spender,
                max_len,
            }
        },
    )
}

impl RuleSpec {
    fn has(&self, a: Action) -> bool {
        self.actions.contains(&a)
    }

    fn to_json(&self, name: &str) -> Value {
        let tx = self.has(Action::SignTransaction);
        let typed = self.has(Action::SignTypedData);
        let signing = self.actions.iter().any(|a| {
            matches!(
                a,
                Action::SignTransaction
                    | Action::SignTypedData
                    | Action::SignMessage
                    | Action::SignDigest
            )
        });
        let mut c = serde_json::Map::new();
        let mut put = |k: &str, v: Value| {
            c.insert(k.into(), v);
        };
        if let Some(ch) = &self.chain_ids
            && (tx || typed)
        {
            put("chain_ids", json!(ch));
        }
        if let Some(d) = &self.destinations
            && (tx || (!self.allow && typed))
        {
            put(
                "destinations",
                json!(d.iter().map(|n| a(*n)).collect::<Vec<_>>()),
            );
        }
        if let Some((token, max, spenders)) = self.erc20
            && (tx || (!self.allow && typed))
        {
            if self.allow {
                let mut e = json!({"token": a(token), "max_amount": max.to_string()});
                if spenders {
                    e["spenders"] = json!([a(1), a(2)]);
                }
                put("erc20", json!([e]));
            } else {
                put("erc20", json!([{"token": a(token)}]));
            }
        }
        if let Some((from, to)) = self.hours {
            put("time_window", json!({"hours": [from, to]}));
        }
        if self.allow {
            if tx {
                if let Some(v) = self.max_value_milli {
                    put(
                        "max_value",
                        json!(format!("{}.{:03} ether", v / 1000, v % 1000)),
                    );
                }
                if let Some(g) = self.max_gas {
                    put("max_gas_limit", json!(g));
                }
                if let Some(f) = self.max_fee_gwei {
                    put("max_fee_per_gas", json!(format!("{f} gwei")));
                }
                if self.contract_call {
                    put(
                        "contract_calls",
                        json!([{"contract": a(1), "selector": "0x12345678"}]),
                    );
                }
            }
            if let Some((scope, window, v, count)) = self.velocity
                && signing
            {
                let mut l = json!({"scope": scope, "window": window});
                if let Some(v) = v
                    && tx
                {
                    l["max_value"] = json!(format!("0.{v:04} ether"));
                }
                match count {
                    Some(n) => l["max_count"] = json!(n),
                    None if l.get("max_value").is_none() => l["max_count"] = json!(1),
                    None => {}
                }
                put("velocity", json!([l]));
            }
            if self.approvals {
                put(
                    "approvals",
                    json!({"threshold": 1, "approvers": ["bob", "carol"]}),
                );
            }
            if self.time_lock {
                put("time_lock", json!("1h"));
            }
            if let Some(s) = self.permit_spender
                && typed
            {
                put("typed_data", json!({"permit_spenders": [a(s)]}));
            }
            if let Some(n) = self.max_len
                && self.has(Action::SignMessage)
            {
                put("message", json!({"max_len": n}));
            }
        }
        let mut rule = json!({
            "name": name,
            "effect": if self.allow { "allow" } else { "deny" },
            "actions": self.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        });
        if let Some(p) = &self.principals {
            rule["principals"] = json!(p);
        }
        if self.roles {
            rule["roles"] = json!(["approver"]);
        }
        if let Some(k) = self.keys {
            rule["keys"] = json!([k]);
        }
        if !c.is_empty() {
            rule["conditions"] = Value::Object(c);
        }
        rule
    }
}

fn build(specs: &[RuleSpec], skip: Option<usize>) -> Policy {
    let rules: Vec<Value> = specs
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != skip)
        .map(|(i, s)| s.to_json(&format!("r{i}")))
        .collect();
    policy(json!(rules))
}

/// Runs some requests through the engine so its counters hold realistic history.
fn warm(engine: &mut Engine, history: &[Req]) {
    for r in history {
        let mut r = r.clone();
        r.now = NOW - 100 + (r.now - NOW) % 100;
        engine.decide_and_commit(&r.ctx());
    }
}

/// Checks that an allowed transaction satisfies the caps of the rule that allowed it.
fn assert_within_caps(spec: &RuleSpec, t: &TransactionIntent) {
    if let Some(ch) = &spec.chain_ids {
        assert!(ch.contains(&t.chain_id));
    }
    if let Some(d) = &spec.destinations {
        assert!(d.iter().any(|n| t.to == Some(addr(*n))));
    }
    if let Some(v) = spec.max_value_milli {
        assert!(t.value <= eth_milli(v));
    }
    if let Some(g) = spec.max_gas {
        assert!(t.gas_limit <= g);
    }
    if let Some(f) = spec.max_fee_gwei {
        assert!(t.max_fee_per_gas <= u128::from(f) * GWEI);
    }
    assert!(
        t.to.is_some(),
        "no rule in the grammar allows contract creation"
    );
    if t.data_len > 0 {
        let by_call = spec.contract_call && t.to == Some(addr(1)) && t.erc20.is_none();
        let by_token = spec.erc20.is_some_and(|(tok, max, _)| {
            t.to == Some(addr(tok))
                && t.erc20
                    .as_ref()
                    .is_some_and(|c| c.amount() <= U256::from(max))
        });
        assert!(
            by_call || by_token,
            "calldata allowed without a grant: {t:?} by {spec:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// (a) No rule in scope: always Deny, and no rule is named.
    #[test]
    fn default_deny(specs in prop::collection::vec(arb_rule(), 0..6), req in arb_req(), how in 0u8..3) {
        let action = req.intent.action();
        let specs: Vec<RuleSpec> = specs.into_iter().map(|mut s| {
            match how {
                0 => {
                    s.actions.retain(|a| *a != action);
                    if s.actions.is_empty() {
                        s.actions.push(if action == Action::SignDigest { Action::SignMessage } else { Action::SignDigest });
                    }
                }
                1 => { s.principals = Some(vec!["dave"]); s.roles = false; }
                _ => { s.keys = Some("nomatch"); }
            }
            s
        }).collect();
        let p = build(&specs, None);
        let mut e = Engine::new(p, Velocity::default());
        let d = e.decide_and_commit(&req.ctx());
        prop_assert_eq!(d.outcome, Outcome::Deny);
        prop_assert_eq!(d.rule, None);
        prop_assert!(d.reason.contains("default deny"), "{}", d.reason);
        prop_assert_eq!(e.velocity(), &Velocity::default());
    }

    /// (b) A single allow rule never allows a transaction beyond its caps, and allows every
    /// plain transfer within them.
    #[test]
    fn caps_hold(
        t in arb_tx(),
        chains in non_empty(vec![1u64, 5, 137]),
        dests in non_empty(vec![1u8, 2, 3, 4]),
        max_milli in 0u64..3000,
        max_gas in 21_000u64..60_000,
        max_fee in 1u64..60,
    ) {
        let p = policy(json!([{"name": "caps", "effect": "allow", "actions": ["sign_transaction"], "conditions": {
            "chain_ids": chains,
            "destinations": dests.iter().map(|n| a(*n)).collect::<Vec<_>>(),
            "max_value": format!("{}.{:03} ether", max_milli / 1000, max_milli % 1000),
            "max_gas_limit": max_gas,
            "max_fee_per_gas": format!("{max_fee} gwei"),
        }}]));
        let within = chains.contains(&t.chain_id)
            && dests.iter().any(|n| t.to == Some(addr(*n)))
            && t.value <= eth_milli(max_milli)
            && t.gas_limit <= max_gas
            && t.max_fee_per_gas <= u128::from(max_fee) * GWEI;
        let d = decide(&p, &Req::new(Intent::Transaction(t.clone())));
        if d.is_allow() {
            prop_assert!(within && t.data_len == 0, "{:?} allowed {:?}", d, t);
        }
        if within && t.data_len == 0 {
            prop_assert!(d.is_allow(), "{:?} refused {:?}", d, t);
        }
    }

    /// (d) Removing an allow rule never turns a non-Allow into an Allow (same counters); and
    /// whatever allows a transaction keeps to that rule's caps.
    #[test]
    fn removing_an_allow_rule_never_allows_more(
        specs in prop::collection::vec(arb_rule(), 1..6),
        history in prop::collection::vec(arb_req(), 0..8),
        reqs in prop::collection::vec(arb_req(), 1..6),
    ) {
        let full = build(&specs, None);
        let mut warm_engine = Engine::new(full.clone(), Velocity::default());
        warm(&mut warm_engine, &history);
        let velocity = warm_engine.velocity().clone();
        let full_engine = Engine::new(full, velocity.clone());
        for req in &reqs {
            let d = full_engine.decide(&req.ctx());
            if d.is_allow() && let Intent::Transaction(t) = &req.intent {
                let i: usize = d.rule.as_ref().unwrap()[1..].parse().unwrap();
                assert_within_caps(&specs[i], t);
            }
            for (i, _) in specs.iter().enumerate().filter(|(_, s)| s.allow) {
                let reduced = Engine::new(build(&specs, Some(i)), velocity.clone());
                let r = reduced.decide(&req.ctx());
                prop_assert!(!r.is_allow() || d.is_allow(),
                    "removing r{} turned {:?} into {:?}", i, d, r);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// (c) Concurrent decide_and_commit through a Mutex never exceeds velocity limits.
    #[test]
    fn velocity_holds_under_concurrency(
        values in prop::collection::vec(0u64..2000, 40),
        max_milli in 1000u64..10_000,
        max_count in 5u32..30,
    ) {
        let p = policy(json!([{"name": "v", "effect": "allow", "actions": ["sign_transaction"], "conditions": {
            "velocity": [{"scope": "key", "window": "1h",
                          "max_value": format!("{}.{:03} ether", max_milli / 1000, max_milli % 1000),
                          "max_count": max_count}]}}]));
        let engine = Arc::new(Mutex::new(Engine::new(p, Velocity::default())));
        let handles: Vec<_> = values.chunks(10).map(|chunk| {
            let engine = Arc::clone(&engine);
            let chunk = chunk.to_vec();
            thread::spawn(move || {
                chunk.into_iter().filter(|milli| {
                    let r = Req::new(transfer(eth_milli(*milli)));
                    engine.lock().unwrap().decide_and_commit(&r.ctx()).is_allow()
                }).collect::<Vec<u64>>()
            })
        }).collect();
        let allowed: Vec<u64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        prop_assert!(allowed.iter().sum::<u64>() <= max_milli);
        prop_assert!(allowed.len() <= max_count as usize);
        prop_assert!(!allowed.is_empty() || values.iter().all(|v| *v > max_milli));
        let totals = engine.lock().unwrap().velocity().totals(VelocityScope::Key, KEY_ID, 3_600, NOW);
        prop_assert_eq!(totals, (allowed.len() as u64, eth_milli(allowed.iter().sum())));
    }

    /// (c) Over a rolling window the engine keeps to the bucketed bound of an exact model:
    /// an allowed signature fits the exact window (now - W, now]; one that fits the window
    /// widened by a bucket, (now - W - width, now], is allowed.
    #[test]
    fn rolling_window_matches_model(
        // Round steps land exactly on window and bucket boundaries now and then.
        steps in prop::collection::vec(
            (prop_oneof![0u64..2000, Just(60), Just(600), Just(1200), Just(3600)], 0u64..1500), 1..60),
    ) {
        let window = 3600u64;
        let (max_milli, max_count) = (3000u64, 4usize);
        let p = policy(json!([{"name": "v", "effect": "allow", "actions": ["sign_transaction"], "conditions": {
            "velocity": [{"scope": "key", "window": window, "max_value": "3 ether", "max_count": max_count}]}}]));
        let mut engine = Engine::new(p, Velocity::default());
        let mut model: Vec<(u64, u64)> = Vec::new();
        let mut now = NOW;
        for (dt, milli) in steps {
            now += dt;
            let fits = |span: u64| {
                let live: Vec<u64> = model.iter().filter(|(t, _)| t + span > now).map(|(_, v)| *v).collect();
                live.len() < max_count && live.iter().sum::<u64>() + milli <= max_milli
            };
            let (fits_exact, fits_widened) = (fits(window), fits(window + bucket_width(window)));
            let d = engine.decide_and_commit(&Req::new(transfer(eth_milli(milli))).at(now).ctx());
            if d.is_allow() {
                prop_assert!(fits_exact, "at +{}: allowed over the exact window", now - NOW);
                model.push((now, milli));
            }
            if fits_widened {
                prop_assert!(d.is_allow(), "at +{}: {:?}", now - NOW, d);
            }
            prop_assert!(engine.velocity().buckets() <= BUCKETS_PER_WINDOW + 1);
        }
    }
}

fn bucket_width(window: u64) -> u64 {
    window.div_ceil(BUCKETS_PER_WINDOW as u64).max(1)
}

/// A window (multiples of 60 and not, small and large) and a run of (time step, value in
/// milli-ether) requests, steps scaled to the window so runs cross it several times.
fn arb_run() -> impl Strategy<Value = (u64, Vec<(u64, u64)>)> {
    prop_oneof![
        Just(30u64),
        Just(60),
        Just(61),
        Just(90),
        Just(3_600),
        Just(3_601),
        Just(5_400),
        Just(86_400),
        1u64..200,
        1u64..100_000,
    ]
    .prop_flat_map(|window| {
        let width = bucket_width(window);
        let step = prop_oneof![
            4 => 0..=window / 4,
            1 => Just(0),
            1 => Just(width),
            1 => Just(window),
            1 => 0..=2 * window,
        ];
        (
            Just(window),
            prop::collection::vec((step, 0u64..1500), 1..80),
        )
    })
}

/// Runs `steps` against one key-scoped limit over `window`: (time, milli, allowed) per
/// request.
fn run_limit(
    window: u64,
    max_count: u32,
    max_milli: u64,
    steps: &[(u64, u64)],
) -> Vec<(u64, u64, bool)> {
    let p = policy(
        json!([{"name": "v", "effect": "allow", "actions": ["sign_transaction"], "conditions": {
        "velocity": [{"scope": "key", "window": window, "max_count": max_count,
                      "max_value": format!("{}.{:03} ether", max_milli / 1000, max_milli % 1000)}]}}]),
    );
    let mut engine = Engine::new(p, Velocity::default());
    let mut now = NOW;
    steps
        .iter()
        .map(|&(dt, milli)| {
            now += dt;
            let r = Req::new(transfer(eth_milli(milli))).at(now);
            let allowed = engine.decide_and_commit(&r.ctx()).is_allow();
            assert!(engine.velocity().buckets() <= BUCKETS_PER_WINDOW + 1);
            (now, milli, allowed)
        })
        .collect()
}

/// Count and milli-ether total of the allowed signatures among the first `upto` results
/// with a time in (now - span, now].
fn exact(results: &[(u64, u64, bool)], upto: usize, now: u64, span: u64) -> (u64, u64) {
    results[..upto]
        .iter()
        .filter(|(t, _, allowed)| *allowed && t + span > now)
        .fold((0, 0), |(n, sum), (_, milli, _)| (n + 1, sum + milli))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// (e) Bucketed velocity never allows more than the limit: for every allowed signature
    /// at t, the allowed signatures in (t - W, t] keep to max_count and max_value.
    #[test]
    fn bucketed_velocity_never_exceeds_the_limit(
        (window, steps) in arb_run(), max_count in 1u32..8, max_milli in 500u64..5000,
    ) {
        let results = run_limit(window, max_count, max_milli, &steps);
        for (i, &(t, _, allowed)) in results.iter().enumerate() {
            if allowed {
                let (n, sum) = exact(&results, i + 1, t, window);
                prop_assert!(n <= u64::from(max_count), "{} signatures in the window ending at +{}", n, t - NOW);
                prop_assert!(sum <= max_milli, "{} milli-ether in the window ending at +{}", sum, t - NOW);
            }
        }
    }

    /// (f) It refuses at most one bucket early: a request that fits the limits over
    /// (now - W - width, now] is allowed.
    #[test]
    fn bucketed_velocity_refuses_at_most_one_bucket_early(
        (window, steps) in arb_run(), max_count in 1u32..8, max_milli in 500u64..5000,
    ) {
        let results = run_limit(window, max_count, max_milli, &steps);
        let span = window + bucket_width(window);
        for (i, &(now, milli, allowed)) in results.iter().enumerate() {
            let (n, sum) = exact(&results, i, now, span);
            if n < u64::from(max_count) && sum + milli <= max_milli {
                prop_assert!(allowed, "refused at +{} with {} signatures and {} milli-ether in the widened window", now - NOW, n, sum);
            }
        }
    }

    /// (g) The sealed counters round-trip exactly, and the restored engine decides (and
    /// records) as the original does. Histories run in random time order, so the clock
    /// goes back too.
    #[test]
    fn velocity_encoding_round_trips(
        specs in prop::collection::vec(arb_rule(), 1..6),
        history in prop::collection::vec(arb_req(), 0..30),
        reqs in prop::collection::vec(arb_req(), 1..8),
    ) {
        let p = build(&specs, None);
        let mut original = Engine::new(p.clone(), Velocity::default());
        for r in &history {
            original.decide_and_commit(&r.ctx());
        }
        let bytes = original.velocity().to_bytes();
        let restored = Velocity::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&restored, original.velocity());
        prop_assert_eq!(restored.to_bytes(), bytes);
        let mut restored = Engine::new(p, restored);
        for r in &reqs {
            prop_assert_eq!(restored.decide_and_commit(&r.ctx()), original.decide_and_commit(&r.ctx()));
            prop_assert_eq!(restored.velocity(), original.velocity());
        }
    }
}
