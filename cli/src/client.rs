//! The HTTP client for the Strongroom API: JSON in and out, and the API's error bodies
//! turned into `<status> <code>: <message>`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use strongroom_auth::{Request as StampedRequest, SigningKey, Stamp};

use crate::principal::PrincipalKeySource;

/// Longest stretch of a non-JSON error body quoted in a message.
const MAX_QUOTED_BODY: usize = 200;

/// The header a request stamp travels in.
pub const STAMP_HEADER: &str = "X-Strongroom-Stamp";

/// How far ahead stamps expire. The enclave refuses stamps that expire more than
/// `MAX_VALIDITY_SECS` (300 s) after its clock, and, right after it restarts, stamps that
/// expire less than 300 s after its boot; 295 s stays close to the maximum while leaving
/// 5 s for the client's clock running ahead of the enclave's.
pub const STAMP_VALIDITY_SECS: u64 = 295;

/// Longest wait for the enclave's post-restart stamp horizon before giving up.
const MAX_BOOT_WAIT_SECS: u64 = 30;

/// Bytes of randomness in a stamp's nonce (the enclave's minimum).
const NONCE_LEN: usize = 16;

/// A successful answer to a stamped request.
#[derive(Debug)]
pub struct Answer {
    /// 200, 201, 202…
    pub status: StatusCode,
    /// The JSON body.
    pub body: Value,
}

/// The path and query of `url` exactly as the request line carries them.
pub fn wire_path(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    }
}

/// A stamp header for `method url` with `body`, a fresh nonce, expiring
/// [`STAMP_VALIDITY_SECS`] from now.
pub fn stamp_header(key: &SigningKey, method: &Method, url: &Url, body: &[u8]) -> Result<String> {
    let mut nonce = vec![0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| anyhow!("no randomness for a stamp nonce: {e}"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let path = wire_path(url);
    let request = StampedRequest {
        method: method.as_str(),
        path: &path,
        body,
    };
    Ok(Stamp::sign(key, request, nonce, now + STAMP_VALIDITY_SECS).to_header())
}

fn parse_json(url: &Url, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).with_context(|| format!("{url}: the answer is not JSON"))
}

/// A client for one Strongroom server.
pub struct Api {
    base: Url,
    http: Client,
    timeout: Duration,
}

impl Api {
    /// A client for the server at `base` (http or https), with a per-request timeout.
    pub fn new(base: &str, timeout: Duration) -> Result<Self> {
        let url = Url::parse(base).with_context(|| format!("--url {base:?} is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            bail!("--url {base:?}: expected an http:// or https:// URL");
        }
        let http = Client::builder()
            .timeout(timeout)
            .build()
            .context("starting the HTTP client")?;
        Ok(Self {
            base: url,
            http,
            timeout,
        })
    }

    /// The URL of the API path made of `segments`, each percent-encoded as one segment.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            // The base may carry a path prefix (a proxy mount point); keep it.
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// GET `segments`, expecting 200. Reads need no stamp.
    pub fn get(&self, segments: &[&str]) -> Result<Value> {
        let url = self.url(segments);
        let (status, bytes) = self.exchange(Method::GET, &url, None, None)?;
        if status != StatusCode::OK {
            if status.is_success() {
                bail!("{url}: unexpected status {status} (expected 200 OK)");
            }
            return Err(api_error(status, &bytes));
        }
        parse_json(&url, &bytes)
    }

    /// Sends a request stamped with `key`: `body` (exact JSON bytes, or none for an empty
    /// body) to `segments`. Any 2xx answer is returned with its status; others are errors.
    ///
    /// The stamp covers the method, the path and query exactly as they go on the wire and
    /// the exact body bytes, so what is signed is what is sent.
    pub fn stamped(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&[u8]>,
        key: &PrincipalKeySource,
    ) -> Result<Answer> {
        let url = self.url(segments);
        let mut retried = false;
        loop {
            let header = stamp_header(&key.key, &method, &url, body.unwrap_or_default())?;
            let (status, bytes) = self.exchange(method.clone(), &url, body, Some(&header))?;
            if status.is_success() {
                return Ok(Answer {
                    status,
                    body: parse_json(&url, &bytes)?,
                });
            }
            if status == StatusCode::UNAUTHORIZED {
                let json: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let error = &json["error"];
                // Right after an enclave restart, stamps expiring within MAX_VALIDITY_SECS
                // of its boot are refused (they may have been used before it); a stamp made
                // a few seconds later passes. Wait that long once, rather than fail.
                if let (false, Some("stamp_before_boot"), Some(wait)) = (
                    retried,
                    error["code"].as_str(),
                    error["retry_after"].as_u64(),
                ) && wait <= MAX_BOOT_WAIT_SECS
                {
                    eprintln!("the enclave restarted moments ago; stamping again in {wait} s");
                    std::thread::sleep(Duration::from_secs(wait + 1));
                    retried = true;
                    continue;
                }
                let e = api_error(status, &bytes);
                return Err(anyhow!(
                    "{e} (the request was stamped with key {} from {})",
                    key.key.public().id(),
                    key.source
                ));
            }
            return Err(api_error(status, &bytes));
        }
    }

    /// One HTTP exchange: the status and the body bytes.
    fn exchange(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        stamp: Option<&str>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let mut request: RequestBuilder = self.http.request(method, url.clone());
        if let Some(stamp) = stamp {
            request = request.header(STAMP_HEADER, stamp);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let response = request.send().map_err(|e| self.transport_error(url, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .map_err(|e| self.transport_error(url, &e))?;
        Ok((status, bytes.to_vec()))
    }

    /// Describes a failure to get an answer at all, naming the URL.
    fn transport_error(&self, url: &Url, e: &reqwest::Error) -> anyhow::Error {
        let cause = root_cause(e);
        if e.is_timeout() {
            anyhow!(
                "no answer from {url} within {} s (--timeout)",
                self.timeout.as_secs()
            )
        } else if e.is_connect() {
            anyhow!("cannot connect to Strongroom at {url}: {cause}")
        } else {
            anyhow!("request to {url} failed: {cause}")
        }
    }
}

/// Prints an answer on stdout as pretty JSON.
pub fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The innermost error: reqwest's own message only says "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// `<status> <code>: <message>` from an error answer.
fn api_error(status: StatusCode, body: &[u8]) -> anyhow::Error {
    let code = status.as_u16();
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(json) = &json {
        let error = &json["error"];
        if let (Some(kind), Some(message)) = (error["code"].as_str(), error["message"].as_str()) {
            // A policy refusal names the rule that decided (null: nothing allowed it).
            if let Some(decision) = error["decision"].as_object() {
                return match decision.get("rule").and_then(Value::as_str) {
                    Some(rule) => anyhow!("{code} {kind} by rule {rule:?}: {message}"),
                    None => anyhow!("{code} {kind} (no rule allows it): {message}"),
                };
            }
            return anyhow!("{code} {kind}: {message}");
        }
        // The health endpoint answers 503 with `{"status": "starting", "detail": ...}`
        // until unsealed (detail may be null).
        if let (StatusCode::SERVICE_UNAVAILABLE, Some(phase)) = (status, json["status"].as_str()) {
            let detail = json["detail"].as_str().unwrap_or("the server is not ready");
            return anyhow!("{code} {phase}: {detail}");
        }
    }
    // Not our error shape (a load balancer's page, say): quote the start of it.
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let quoted: String = text.chars().take(MAX_QUOTED_BODY).collect();
    let reason = status.canonical_reason().unwrap_or("error");
    if quoted.is_empty() {
        anyhow!("{code} {reason}: (empty body)")
    } else {
        anyhow!("{code} {reason}: {quoted}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        let e = api_error(
            StatusCode::NOT_FOUND,
            br#"{"error":{"code":"not_found","message":"no key 00"}}"#,
        );
        assert_eq!(e.to_string(), "404 not_found: no key 00");
        let e = api_error(StatusCode::SERVICE_UNAVAILABLE, br#"{"status":"starting"}"#);
        assert_eq!(e.to_string(), "503 starting: the server is not ready");
        let e = api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"status":"starting","detail":"waiting for KMS"}"#,
        );
        assert_eq!(e.to_string(), "503 starting: waiting for KMS");
        let e = api_error(StatusCode::BAD_GATEWAY, b"<html>\n  bad   gateway</html>");
        assert_eq!(e.to_string(), "502 Bad Gateway: <html> bad gateway</html>");
        let e = api_error(StatusCode::INTERNAL_SERVER_ERROR, b"");
        assert_eq!(e.to_string(), "500 Internal Server Error: (empty body)");
    }

    #[test]
    fn urls_keep_the_base_path_and_encode_segments() {
        let api = Api::new("http://127.0.0.1:8080", Duration::from_secs(1)).unwrap();
        assert_eq!(
            api.url(&["v1", "keys", "a/b?c"]).as_str(),
            "http://127.0.0.1:8080/v1/keys/a%2Fb%3Fc"
        );
        let api = Api::new("https://example.invalid/sr/", Duration::from_secs(1)).unwrap();
        assert_eq!(
            api.url(&["v1", "health"]).as_str(),
            "https://example.invalid/sr/v1/health"
        );
        assert!(Api::new("ftp://example.invalid", Duration::from_secs(1)).is_err());
        assert!(Api::new("127.0.0.1:8080", Duration::from_secs(1)).is_err());
    }
}
