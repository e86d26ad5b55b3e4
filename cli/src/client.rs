//! The HTTP client for the Strongroom API: JSON in and out, and the API's error bodies
//! turned into `<status> <code>: <message>`.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// Longest stretch of a non-JSON error body quoted in a message.
const MAX_QUOTED_BODY: usize = 200;

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

    /// GET `segments`, expecting 200.
    pub fn get(&self, segments: &[&str]) -> Result<Value> {
        self.send(Method::GET, segments, None, StatusCode::OK)
    }

    /// POST `body` as JSON to `segments`, expecting `expect`.
    pub fn post(&self, segments: &[&str], body: &Value, expect: StatusCode) -> Result<Value> {
        self.send(Method::POST, segments, Some(body), expect)
    }

    /// DELETE `segments`, expecting 200.
    pub fn delete(&self, segments: &[&str]) -> Result<Value> {
        self.send(Method::DELETE, segments, None, StatusCode::OK)
    }

    fn send(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
        expect: StatusCode,
    ) -> Result<Value> {
        let url = self.url(segments);
        let mut request: RequestBuilder = self.http.request(method, url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().map_err(|e| self.transport_error(&url, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .map_err(|e| self.transport_error(&url, &e))?;
        if status != expect {
            if status.is_success() {
                bail!("{url}: unexpected status {status} (expected {expect})");
            }
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{url}: the answer is not JSON"))
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
