//! Error answers as the client reports them: pure, so anything can feed it (and a fuzz
//! target does).

use serde_json::Value;

use crate::error::{ClientError, Verification};

/// Longest stretch of a non-JSON error body quoted in a message.
const MAX_QUOTED_BODY: usize = 200;

/// [`ClientError::Api`] from an error answer (any status, any body: what the server or
/// anything in between sent), summarised as `<status> <code>: <message>`.
pub fn error_from_answer(status: u16, body: &[u8], verification: Verification) -> ClientError {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = json["error"]["code"].as_str().map(str::to_string);
    let summary = summarise(status, body, &json);
    ClientError::Api {
        status,
        code,
        summary,
        body: json,
        verification,
    }
}

fn summarise(code: u16, body: &[u8], json: &Value) -> String {
    let error = &json["error"];
    if let (Some(kind), Some(message)) = (error["code"].as_str(), error["message"].as_str()) {
        // A policy refusal names the rule that decided (null: nothing allowed it).
        if let Some(decision) = error["decision"].as_object() {
            return match decision.get("rule").and_then(Value::as_str) {
                Some(rule) => format!("{code} {kind} by rule {rule:?}: {message}"),
                None => format!("{code} {kind} (no rule allows it): {message}"),
            };
        }
        return format!("{code} {kind}: {message}");
    }
    // The health endpoint answers 503 with `{"status": "starting", "detail": ...}` until
    // unsealed (detail may be null).
    if let (503, Some(phase)) = (code, json["status"].as_str()) {
        let detail = json["detail"].as_str().unwrap_or("the server is not ready");
        return format!("{code} {phase}: {detail}");
    }
    // Not our error shape (a load balancer's page, say): quote the start of it.
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let quoted: String = text.chars().take(MAX_QUOTED_BODY).collect();
    let reason = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error");
    if quoted.is_empty() {
        format!("{code} {reason}: (empty body)")
    } else {
        format!("{code} {reason}: {quoted}")
    }
}
