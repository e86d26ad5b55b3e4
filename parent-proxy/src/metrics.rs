//! Prometheus metrics, served on `GET /metrics` (OpenMetrics text).
//!
//! One [`Metrics`] per process, shared by the HTTP layer, the enclave client and the KMS
//! client (no global registry). Every label set is bounded: HTTP routes are the router's
//! path templates (never raw paths), request kinds and KMS operations are fixed sets, and
//! the policy rule names the enclave reports are capped at [`MAX_RULE_LABELS`] distinct
//! values, beyond which they count under `rule="other"`.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::Value;
use strongroom_protocol::messages::Request;

use crate::enclave_client::EnclaveCallError;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Most distinct `rule` label values; later new rule names count as `rule="other"`.
pub const MAX_RULE_LABELS: usize = 256;

/// `route` label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    result: String,
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    request: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KmsLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

/// Latency buckets: 1 ms to about 33 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The proxy's metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    decisions: Family<DecisionLabels, Counter>,
    rules_seen: Mutex<HashSet<String>>,
    enclave_round_trip: HistogramFamily<RequestLabels>,
    enclave_errors: Family<KindLabels, Counter>,
    kms_calls: Family<KmsLabels, Counter>,
    kms_duration: HistogramFamily<OperationLabels>,
    enclave_ready: Gauge,
    replica_appends: Counter,
    replica_conflicts: Counter,
    replica_caught_up: Counter,
    replica_lag: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered (at zero).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("strongroom");
        let m = Self {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            decisions: Family::default(),
            rules_seen: Mutex::new(HashSet::new()),
            enclave_round_trip: Family::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            ),
            enclave_errors: Family::default(),
            kms_calls: Family::default(),
            kms_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            enclave_ready: Gauge::default(),
            replica_appends: Counter::default(),
            replica_conflicts: Counter::default(),
            replica_caught_up: Counter::default(),
            replica_lag: Gauge::default(),
            registry: Registry::default(),
        };
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request handling time by route template",
            m.http_duration.clone(),
        );
        registry.register(
            "decisions",
            "Policy decisions in the enclave's answers to relayed calls, by result and rule",
            m.decisions.clone(),
        );
        registry.register(
            "enclave_round_trip_seconds",
            "Time of successful exchanges with the enclave, by request kind",
            m.enclave_round_trip.clone(),
        );
        registry.register(
            "enclave_errors",
            "Failed exchanges with the enclave (transport), by kind",
            m.enclave_errors.clone(),
        );
        registry.register(
            "kms_calls",
            "KMS calls by operation and outcome",
            m.kms_calls.clone(),
        );
        registry.register(
            "kms_call_duration_seconds",
            "KMS call time by operation",
            m.kms_duration.clone(),
        );
        registry.register(
            "enclave_ready",
            "1 when the unseal supervisor reports the enclave ready, else 0",
            m.enclave_ready.clone(),
        );
        registry.register(
            "replica_appends",
            "Replica: decisions whose records this replica appended to the shared log",
            m.replica_appends.clone(),
        );
        registry.register(
            "replica_append_conflicts",
            "Replica: appends that found a number taken by another replica (decided again)",
            m.replica_conflicts.clone(),
        );
        registry.register(
            "replica_catch_up_records",
            "Replica: records of other replicas verified and applied by this replica's enclave",
            m.replica_caught_up.clone(),
        );
        registry.register(
            "replica_head_lag",
            "Replica: records the database holds beyond this replica's enclave, when last compared",
            m.replica_lag.clone(),
        );
        Self { registry, ..m }
    }

    /// A replica appended a decision's records.
    pub fn replica_appended(&self) {
        self.replica_appends.inc();
    }

    /// A replica's append found a number taken.
    pub fn replica_conflict(&self) {
        self.replica_conflicts.inc();
    }

    /// A replica's enclave caught up `n` records.
    pub fn replica_caught_up(&self, n: u64) {
        self.replica_caught_up.inc_by(n);
    }

    /// How far behind the database's head a replica's enclave was.
    pub fn replica_lag(&self, records: u64) {
        self.replica_lag
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    /// The exposition, in OpenMetrics text ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// One HTTP request handled. `route` is the matched path template, or [`UNMATCHED`].
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        // Methods are unbounded in HTTP; keep the standard ones.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" => method,
            _ => "other",
        };
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts the decision in a relayed call's JSON answer body, if it has one.
    pub fn observe_answer_body(&self, body: &[u8]) {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        if let Some((result, rule)) = decision_of(&value) {
            let rule = self.rule_label(rule);
            self.decisions
                .get_or_create(&DecisionLabels {
                    result: result.to_string(),
                    rule,
                })
                .inc();
        }
    }

    /// The `rule` label for a rule name: itself while fewer than [`MAX_RULE_LABELS`]
    /// distinct names were seen, then `other` for new names.
    fn rule_label(&self, rule: &str) -> String {
        let Ok(mut seen) = self.rules_seen.lock() else {
            return "other".into();
        };
        if seen.contains(rule) {
            return rule.to_string();
        }
        if seen.len() < MAX_RULE_LABELS {
            seen.insert(rule.to_string());
            rule.to_string()
        } else {
            "other".into()
        }
    }

    /// A successful exchange with the enclave.
    pub fn observe_enclave(&self, request: &Request, elapsed: Duration) {
        self.enclave_round_trip
            .get_or_create(&RequestLabels {
                request: request_name(request),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A failed exchange with the enclave.
    pub fn enclave_error(&self, error: &EnclaveCallError) {
        let kind = match error {
            EnclaveCallError::Connect { .. } => "connect",
            EnclaveCallError::Protocol(_) => "protocol",
            EnclaveCallError::Timeout(_) => "timeout",
        };
        self.enclave_errors
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    /// One KMS call (`GenerateDataKey` or `Decrypt`).
    pub fn observe_kms(&self, operation: &'static str, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.kms_calls
            .get_or_create(&KmsLabels { operation, outcome })
            .inc();
        self.kms_duration
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets `strongroom_enclave_ready`.
    pub fn set_ready(&self, ready: bool) {
        self.enclave_ready.set(i64::from(ready));
    }
}

/// The `request` label: the protocol request's variant name.
pub fn request_name(request: &Request) -> &'static str {
    match request {
        Request::Status => "Status",
        Request::BeginUnseal => "BeginUnseal",
        Request::CompleteUnseal(_) => "CompleteUnseal",
        Request::GetAttestation { .. } => "GetAttestation",
        Request::DescribeKey { .. } => "DescribeKey",
        Request::Call(_) => "Call",
        Request::Appended { .. } => "Appended",
        Request::CatchUp { .. } => "CatchUp",
        Request::Redecide => "Redecide",
        Request::Abandon => "Abandon",
        Request::ReplayRecords { .. } => "ReplayRecords",
        Request::FinishBoot => "FinishBoot",
        _ => "other",
    }
}

/// The decision in an answer body: at top level (`{"decision": ...}`), in a refusal
/// (`{"error": {"decision": ...}}`) or in a pending request (`{"request": {"decision": ...}}`).
/// Returns the result (one of the policy engine's four, else `other`) and the rule name
/// (`""` when null).
pub fn decision_of(body: &Value) -> Option<(&'static str, &str)> {
    let decision = [
        body.get("decision"),
        body.get("error").and_then(|e| e.get("decision")),
        body.get("request").and_then(|r| r.get("decision")),
    ]
    .into_iter()
    .flatten()
    .find(|d| d.is_object())?;
    let result = match decision.get("result").and_then(Value::as_str)? {
        "allow" => "allow",
        "deny" => "deny",
        "needs_approval" => "needs_approval",
        "time_locked" => "time_locked",
        _ => "other",
    };
    let rule = decision.get("rule").and_then(Value::as_str).unwrap_or("");
    Some((result, rule))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decisions_are_found_where_the_enclave_puts_them() {
        let top =
            json!({"id": "x", "decision": {"result": "allow", "rule": "small", "reason": "r"}});
        assert_eq!(decision_of(&top), Some(("allow", "small")));
        let denial = json!({"error": {"code": "denied", "message": "m",
            "decision": {"result": "deny", "rule": null, "reason": "default deny"}}});
        assert_eq!(decision_of(&denial), Some(("deny", "")));
        let pending = json!({"request": {"id": "r1",
            "decision": {"result": "needs_approval", "rule": "big", "approvals": 1, "reason": "r"}}});
        assert_eq!(decision_of(&pending), Some(("needs_approval", "big")));
        let odd = json!({"decision": {"result": "maybe", "rule": "z"}});
        assert_eq!(decision_of(&odd), Some(("other", "z")));
        assert_eq!(decision_of(&json!({"keys": []})), None);
        assert_eq!(decision_of(&json!({"decision": "allow"})), None);
        assert_eq!(decision_of(&json!([1, 2])), None);
    }

    #[test]
    fn kms_enclave_and_ready_metrics_are_exposed() {
        let m = Metrics::new();
        m.observe_kms("Decrypt", true, Duration::from_millis(3));
        m.observe_kms("GenerateDataKey", false, Duration::from_millis(5));
        m.observe_enclave(&Request::BeginUnseal, Duration::from_millis(2));
        m.enclave_error(&EnclaveCallError::Timeout(Duration::from_secs(30)));
        m.set_ready(true);
        let text = m.encode();
        for line in [
            r#"strongroom_kms_calls_total{operation="Decrypt",outcome="ok"} 1"#,
            r#"strongroom_kms_calls_total{operation="GenerateDataKey",outcome="error"} 1"#,
            r#"strongroom_kms_call_duration_seconds_count{operation="Decrypt"} 1"#,
            r#"strongroom_enclave_round_trip_seconds_count{request="BeginUnseal"} 1"#,
            r#"strongroom_enclave_errors_total{kind="timeout"} 1"#,
            "strongroom_enclave_ready 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn rule_labels_are_capped() {
        let m = Metrics::new();
        for i in 0..MAX_RULE_LABELS + 10 {
            let body = json!({"decision": {"result": "allow", "rule": format!("rule-{i}")}});
            m.observe_answer_body(body.to_string().as_bytes());
        }
        // A rule seen before the cap keeps its name afterwards.
        m.observe_answer_body(br#"{"decision": {"result": "deny", "rule": "rule-0"}}"#);
        m.observe_answer_body(b"not json");
        let text = m.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("strongroom_decisions_total{"))
            .count();
        assert_eq!(series, MAX_RULE_LABELS + 2, "{text}");
        assert!(text.contains(r#"strongroom_decisions_total{result="allow",rule="other"} 10"#));
        assert!(text.contains(r#"strongroom_decisions_total{result="allow",rule="rule-255"} 1"#));
        assert!(!text.contains(r#"rule="rule-256""#));
        assert!(text.contains(r#"strongroom_decisions_total{result="deny",rule="rule-0"} 1"#));
    }
}
