//! Ethereum JSON-RPC on `POST /rpc`, for applications written against a remote signer
//! (web3signer, Clef): `eth_accounts`, `eth_chainId`, `eth_signTransaction`, `eth_sign`,
//! `personal_sign`, `eth_signTypedData_v4` (also as `eth_signTypedData`, web3signer's and
//! geth's name for EIP-712). Every signing method goes through the same
//! decoding, policy and audit path as the REST routes; the call is stamped like any other
//! (by the client, or by the proxy for a bearer token bound to a principal).
//!
//! Results follow web3signer: `eth_signTransaction` answers the signed raw transaction as
//! hex, the message and typed-data methods a 65-byte signature. Errors are JSON-RPC error
//! objects: the standard codes, and -32000 denied by policy (`data.decision`), -32001
//! waiting for approvals (`data.request`), -32002 unauthenticated (HTTP 401), -32005 a
//! quota reached (too many requests waiting).

use serde_json::{Value, json};
use strongroom_api::ApiErrorCode;
use strongroom_policy::Action;
use strongroom_protocol::messages::{Answer, Call, Effects};

use super::GovernedLock;
use super::error::{ApiError, ApiResult, reply};
use super::host::{Caller, Host};
use super::sign::sign_body;
use crate::keys::KeyRecord;

/// Most requests in one batch.
pub const MAX_BATCH: usize = 32;

/// JSON-RPC error codes.
pub mod codes {
    /// Invalid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Bad parameters, or an account this signer does not hold.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Something failed inside the signer.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The policy refused (Clef's "Request denied").
    pub const DENIED: i64 = -32000;
    /// The policy holds the request for approvals or a time-lock.
    pub const PENDING: i64 = -32001;
    /// The call's stamp (or bearer token) was refused.
    pub const UNAUTHENTICATED: i64 = -32002;
    /// The principal is at a quota (EIP-1474's "limit exceeded").
    pub const LIMIT_EXCEEDED: i64 = -32005;
}

fn error_object(id: Value, code: i64, message: impl Into<String>, data: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message.into()});
    if let (Some(obj), Some(data)) = (error.as_object_mut(), data) {
        obj.insert("data".into(), data);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

/// A refusal before any request was read (stamp, size, backlog), in JSON-RPC form with
/// the refusal's HTTP status.
pub fn error_answer(e: ApiError) -> Answer {
    let code = match e.code {
        ApiErrorCode::Unauthenticated | ApiErrorCode::StampBeforeBoot => codes::UNAUTHENTICATED,
        ApiErrorCode::BadRequest | ApiErrorCode::NotFound | ApiErrorCode::TooLarge => {
            codes::INVALID_REQUEST
        }
        _ => codes::INTERNAL_ERROR,
    };
    reply(e.status(), error_object(Value::Null, code, e.message, None))
}

/// Whether a method signs (at most one per batch: one call carries at most one pending
/// request).
fn signs(method: &str) -> bool {
    matches!(
        method,
        "eth_signTransaction"
            | "eth_sign"
            | "personal_sign"
            | "eth_signTypedData"
            | "eth_signTypedData_v4"
    )
}

/// Answers a `POST /rpc` call by an authenticated caller.
pub(crate) fn handle(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
) -> ApiResult {
    // Strict: `{"to": A, "to": B}` must not reach the decoder as `{"to": B}`.
    let request: Value = match strongroom_eth::parse_strict(&call.body) {
        Ok(v) => v,
        Err(e) => {
            return Ok(reply(
                200,
                error_object(
                    Value::Null,
                    codes::PARSE_ERROR,
                    format!("parse error: {e}"),
                    None,
                ),
            ));
        }
    };
    let mut effects = Effects::default();
    let body = match request {
        Value::Array(items) => {
            let invalid = |m: &str| error_object(Value::Null, codes::INVALID_REQUEST, m, None);
            if items.is_empty() {
                invalid("empty batch")
            } else if items.len() > MAX_BATCH {
                invalid(&format!("more than {MAX_BATCH} requests in one batch"))
            } else if items
                .iter()
                .filter(|i| i.get("method").and_then(Value::as_str).is_some_and(signs))
                .count()
                > 1
            {
                invalid("at most one signing request per batch")
            } else {
                let answers: Vec<Value> = items
                    .into_iter()
                    .filter_map(|item| one(host, gov, call, caller, item, &mut effects))
                    .collect();
                if answers.is_empty() {
                    // Only notifications: JSON-RPC answers nothing at all.
                    let mut answer = reply(204, Value::Null);
                    answer.body = Vec::new().into();
                    answer.effects = effects;
                    return Ok(answer);
                }
                Value::Array(answers)
            }
        }
        item => match one(host, gov, call, caller, item, &mut effects) {
            Some(answer) => answer,
            None => {
                let mut answer = reply(204, Value::Null);
                answer.body = Vec::new().into();
                answer.effects = effects;
                return Ok(answer);
            }
        },
    };
    let mut answer = reply(200, body);
    answer.effects = effects;
    Ok(answer)
}

/// One request object; None for a notification (no `id`).
fn one(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
    item: Value,
    effects: &mut Effects,
) -> Option<Value> {
    let Value::Object(mut obj) = item else {
        return Some(error_object(
            Value::Null,
            codes::INVALID_REQUEST,
            "a request must be an object",
            None,
        ));
    };
    let id = obj.remove("id");
    let notification = id.is_none();
    let id = id.unwrap_or(Value::Null);
    if !matches!(id, Value::Null | Value::String(_) | Value::Number(_)) {
        return Some(error_object(
            Value::Null,
            codes::INVALID_REQUEST,
            "id must be a string, a number or null",
            None,
        ));
    }
    let outcome = (|| {
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err((
                codes::INVALID_REQUEST,
                "jsonrpc must be \"2.0\"".to_string(),
                None,
            ));
        }
        let Some(method) = obj.get("method").and_then(Value::as_str) else {
            return Err((
                codes::INVALID_REQUEST,
                "method must be a string".to_string(),
                None,
            ));
        };
        let params = match obj.get("params") {
            None => Vec::new(),
            Some(Value::Array(p)) => p.clone(),
            Some(_) => {
                return Err((
                    codes::INVALID_PARAMS,
                    "params must be an array".to_string(),
                    None,
                ));
            }
        };
        run(host, gov, call, caller, method, &params, effects)
    })();
    if notification {
        return None;
    }
    Some(match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err((code, message, data)) => error_object(id, code, message, data),
    })
}

type RpcResult = Result<Value, (i64, String, Option<Value>)>;

fn invalid_params(message: impl Into<String>) -> (i64, String, Option<Value>) {
    (codes::INVALID_PARAMS, message.into(), None)
}

fn string_param<'a>(
    params: &'a [Value],
    index: usize,
    name: &str,
) -> Result<&'a str, (i64, String, Option<Value>)> {
    params
        .get(index)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params(format!("params[{index}] ({name}) must be a string")))
}

fn run(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
    method: &str,
    params: &[Value],
    effects: &mut Effects,
) -> RpcResult {
    match method {
        "eth_accounts" => {
            let addresses: Vec<Value> = call
                .keys
                .iter()
                .filter_map(|k| host.open_sealed(k).ok())
                .map(|r| Value::String(r.info().address))
                .collect();
            Ok(Value::Array(addresses))
        }
        "eth_chainId" => {
            let chain = gov
                .lock()
                .map_err(|_| {
                    (
                        codes::INTERNAL_ERROR,
                        "state lock poisoned".to_string(),
                        None,
                    )
                })?
                .state
                .engine
                .policy()
                .chain_id();
            chain
                .map(|c| Value::String(format!("0x{c:x}")))
                .ok_or_else(|| {
                    (
                        codes::INTERNAL_ERROR,
                        "the policy names no chain_id for JSON-RPC clients".to_string(),
                        None,
                    )
                })
        }
        "eth_signTransaction" => {
            let tx = params
                .first()
                .and_then(Value::as_object)
                .ok_or_else(|| invalid_params("params[0] must be a transaction object"))?;
            let from = tx
                .get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_params("the transaction needs a \"from\" address"))?;
            let record = key_for(host, call, from)?;
            let mut tx = tx.clone();
            // ethers and web3.py add fields a signer does not sign; drop what the
            // strict decoder would refuse only when it says nothing (null or empty).
            tx.retain(|_, v| !v.is_null());
            let body = json!({ "transaction": Value::Object(tx) });
            let answer = signed(
                host,
                gov,
                caller,
                &record,
                Action::SignTransaction,
                &body,
                effects,
            )?;
            Ok(answer["raw"].clone())
        }
        "eth_sign" | "personal_sign" => {
            let (address, data) = if method == "eth_sign" {
                (
                    string_param(params, 0, "address")?,
                    string_param(params, 1, "data")?,
                )
            } else {
                (
                    string_param(params, 1, "address")?,
                    string_param(params, 0, "data")?,
                )
            };
            let record = key_for(host, call, address)?;
            let body = json!({ "message": data });
            let answer = signed(
                host,
                gov,
                caller,
                &record,
                Action::SignMessage,
                &body,
                effects,
            )?;
            Ok(answer["signature"].clone())
        }
        // web3signer and geth name EIP-712 signing `eth_signTypedData`; web3.py sends that.
        "eth_signTypedData" | "eth_signTypedData_v4" => {
            let address = string_param(params, 0, "address")?;
            let typed = match params.get(1) {
                Some(Value::String(s)) => strongroom_eth::parse_strict(s.as_bytes())
                    .map_err(|e| invalid_params(format!("params[1]: {e}")))?,
                Some(v @ Value::Object(_)) => v.clone(),
                _ => {
                    return Err(invalid_params(
                        "params[1] must be typed data (object or JSON string)",
                    ));
                }
            };
            let record = key_for(host, call, address)?;
            let answer = signed(
                host,
                gov,
                caller,
                &record,
                Action::SignTypedData,
                &typed,
                effects,
            )?;
            Ok(answer["signature"].clone())
        }
        other => Err((
            codes::METHOD_NOT_FOUND,
            format!("method {other:?} is not supported"),
            None,
        )),
    }
}

/// The key with this address among the blobs the proxy attached.
fn key_for(
    host: &dyn Host,
    call: &Call,
    address: &str,
) -> Result<KeyRecord, (i64, String, Option<Value>)> {
    call.keys
        .iter()
        .filter_map(|k| host.open_sealed(k).ok())
        .find(|r| r.info().address.eq_ignore_ascii_case(address))
        .ok_or_else(|| invalid_params(format!("no key with address {address}")))
}

/// Runs the REST signing path and turns its answer into a result or a JSON-RPC error;
/// its storage effects join the call's.
fn signed(
    host: &dyn Host,
    gov: &GovernedLock,
    caller: &Caller,
    record: &KeyRecord,
    action: Action,
    body: &Value,
    effects: &mut Effects,
) -> RpcResult {
    let bytes =
        serde_json::to_vec(body).map_err(|e| (codes::INTERNAL_ERROR, e.to_string(), None))?;
    let answer = match sign_body(host, gov, caller, record, action, &bytes) {
        Ok(a) => a,
        Err(e) => e.into_answer(),
    };
    if answer.effects.pending_request.is_some() {
        effects.pending_request = answer.effects.pending_request;
    }
    let value: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    match answer.status {
        200 => Ok(value),
        202 => Err((
            codes::PENDING,
            "waiting for approvals or a time-lock".to_string(),
            Some(json!({ "request": value["request"] })),
        )),
        _ => {
            let error = &value["error"];
            let message = error["message"].as_str().unwrap_or("refused").to_string();
            let code = match error["code"].as_str().and_then(ApiErrorCode::parse) {
                Some(ApiErrorCode::Denied) => codes::DENIED,
                Some(ApiErrorCode::QuotaExceeded) => codes::LIMIT_EXCEEDED,
                Some(ApiErrorCode::Unauthenticated | ApiErrorCode::StampBeforeBoot) => {
                    codes::UNAUTHENTICATED
                }
                Some(
                    ApiErrorCode::BadRequest | ApiErrorCode::NotFound | ApiErrorCode::KeyDestroyed,
                ) => codes::INVALID_PARAMS,
                _ => codes::INTERNAL_ERROR,
            };
            let data = error.get("decision").map(|d| json!({ "decision": d }));
            let mut message = message;
            if code == codes::DENIED {
                message = format!("denied by policy: {message}");
            }
            Err((code, message, data))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn error_objects_have_the_json_rpc_shape() {
        let e = error_object(json!(7), codes::DENIED, "no", Some(json!({"x": 1})));
        assert_eq!(e["jsonrpc"], "2.0");
        assert_eq!(e["id"], 7);
        assert_eq!(e["error"]["code"], -32000);
        assert_eq!(e["error"]["data"]["x"], 1);
        assert!(e.get("result").is_none());
    }
}
