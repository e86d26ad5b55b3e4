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

/// Largest error body read by [`Api::get_bytes`].
const MAX_ERROR_BODY: usize = 64 * 1024;

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

    /// GET `url` (from [`Api::url`], with a query), expecting 200: the body's bytes,
    /// refused if over `max_len` (checked as they arrive, not only by Content-Length).
    /// For answers that are not one JSON value, such as the audit chain's NDJSON.
    pub fn get_bytes(&self, url: &Url, max_len: usize) -> Result<Vec<u8>> {
        use std::io::Read;
        let response = self
            .http
            .get(url.clone())
            .send()
            .map_err(|e| self.transport_error(url, &e))?;
        let status = response.status();
        let limit = if status == StatusCode::OK {
            max_len
        } else {
            MAX_ERROR_BODY
        };
        if let Some(len) = response.content_length()
            && len > limit as u64
        {
            bail!("{url}: the answer is {len} bytes, more than the {limit} expected");
        }
        let mut body = Vec::new();
        response
            .take(limit as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| anyhow!("reading the answer from {url}: {e}"))?;
        if status != StatusCode::OK {
            return Err(api_error(status, &body));
        }
        if body.len() > limit {
            bail!("{url}: the answer is more than the {limit} bytes expected");
        }
        Ok(body)
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
    print_text(&format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// Writes to stdout. A reader that went away (`strongroom … | head`) is not an error:
/// what it wanted, it has.
pub fn print_text(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
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
#[allow(clippy::unwrap_used, clippy::expect_used)]
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
        let e = api_error(
            StatusCode::FORBIDDEN,
            br#"{"error":{"code":"denied","message":"value 2 ETH exceeds cap 1 ETH","decision":{"result":"deny","rule":"dev-transactions","reason":"value 2 ETH exceeds cap 1 ETH"}}}"#,
        );
        assert_eq!(
            e.to_string(),
            "403 denied by rule \"dev-transactions\": value 2 ETH exceeds cap 1 ETH"
        );
        let e = api_error(
            StatusCode::FORBIDDEN,
            br#"{"error":{"code":"denied","message":"no rule allows it","decision":{"result":"deny","rule":null,"reason":"no rule allows it"}}}"#,
        );
        assert_eq!(
            e.to_string(),
            "403 denied (no rule allows it): no rule allows it"
        );
    }

    /// One request as a socket server received it.
    #[derive(Debug)]
    struct Captured {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Captured {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A minimal HTTP/1.1 server on a real loopback socket: answers each connection with
    /// the next canned (status, body) and reports what it received.
    fn serve(answers: Vec<(u16, &'static str)>) -> (String, std::sync::mpsc::Receiver<Captured>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (status, answer) in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap().to_string();
                let target = parts.next().unwrap().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (n, v) = h.split_once(':').unwrap();
                    headers.push((n.trim().to_string(), v.trim().to_string()));
                }
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                tx.send(Captured {
                    method,
                    target,
                    headers,
                    body,
                })
                .unwrap();
                let mut stream = stream;
                write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                )
                .unwrap();
            }
        });
        (url, rx)
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// Verifies the captured stamp as the enclave would, over what actually arrived.
    fn verify_captured(seen: &Captured, key: &PrincipalKeySource) -> strongroom_auth::Stamp {
        let header = seen.header(STAMP_HEADER).expect("a stamp header");
        let public = key.key.public();
        let mut cache = strongroom_auth::ReplayCache::new(16);
        let request = StampedRequest {
            method: &seen.method,
            path: &seen.target,
            body: &seen.body,
        };
        let who = strongroom_auth::verify(
            Some(header),
            request,
            |id| (id == public.id()).then_some(&public),
            &mut cache,
            now(),
        )
        .unwrap();
        assert_eq!(who, &public);
        strongroom_auth::Stamp::parse(header).unwrap()
    }

    fn test_key() -> PrincipalKeySource {
        PrincipalKeySource {
            key: SigningKey::ed25519_from_seed(&[42; 32]),
            source: "a test".into(),
        }
    }

    #[test]
    fn stamps_cover_the_exact_path_and_body_sent() {
        let (url, seen) = serve(vec![
            (201, r#"{"id":"k"}"#),
            (200, r#"{"id":"k","destroyed":true}"#),
        ]);
        // A base path prefix is part of what the server sees, so the stamp covers it.
        let api = Api::new(&format!("{url}/prefix/"), Duration::from_secs(5)).unwrap();
        let key = test_key();
        // Bytes as given, with odd spacing: signed and sent unchanged.
        let body = br#"{ "label" :"a b"}"#;
        let answer = api
            .stamped(Method::POST, &["v1", "keys"], Some(body), &key)
            .unwrap();
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!(answer.body["id"], "k");
        let first = seen.recv().unwrap();
        assert_eq!(first.method, "POST");
        assert_eq!(first.target, "/prefix/v1/keys");
        assert_eq!(first.body, body);
        assert_eq!(first.header("content-type"), Some("application/json"));
        let stamp = verify_captured(&first, &key);
        let lead = stamp.expires_at - now();
        assert!(
            (STAMP_VALIDITY_SECS - 5..=STAMP_VALIDITY_SECS).contains(&lead),
            "{lead}"
        );
        assert_eq!(stamp.nonce.len(), NONCE_LEN);

        // An id that needs escaping: the stamp covers the escaped form on the wire.
        api.stamped(Method::DELETE, &["v1", "keys", "a b/c"], None, &key)
            .unwrap();
        let second = seen.recv().unwrap();
        assert_eq!(second.method, "DELETE");
        assert_eq!(second.target, "/prefix/v1/keys/a%20b%2Fc");
        assert!(second.body.is_empty());
        assert_eq!(second.header("content-type"), None);
        let stamp2 = verify_captured(&second, &key);
        assert_ne!(stamp.nonce, stamp2.nonce, "a fresh nonce per request");
    }

    #[test]
    fn wire_paths_keep_the_query() {
        let url = Url::parse("http://h/p/v1/requests?status=pending&x=a%20b").unwrap();
        assert_eq!(wire_path(&url), "/p/v1/requests?status=pending&x=a%20b");
        let url = Url::parse("http://h").unwrap();
        assert_eq!(wire_path(&url), "/");
    }

    #[test]
    fn a_stamp_refused_as_before_the_boot_is_made_again_once() {
        let (url, seen) = serve(vec![
            (
                401,
                r#"{"error":{"code":"stamp_before_boot","message":"too early","retry_after":0}}"#,
            ),
            (200, r#"{"ok":true}"#),
        ]);
        let api = Api::new(&url, Duration::from_secs(5)).unwrap();
        let key = test_key();
        let answer = api
            .stamped(Method::POST, &["v1", "x"], Some(b"{}"), &key)
            .unwrap();
        assert_eq!(answer.body["ok"], true);
        let a = verify_captured(&seen.recv().unwrap(), &key);
        let b = verify_captured(&seen.recv().unwrap(), &key);
        assert_ne!(a.nonce, b.nonce);
    }

    #[test]
    fn other_stamp_refusals_name_the_key_used() {
        let (url, _seen) = serve(vec![(
            401,
            r#"{"error":{"code":"unauthenticated","message":"stamp key 00 is not a principal key"}}"#,
        )]);
        let api = Api::new(&url, Duration::from_secs(5)).unwrap();
        let key = test_key();
        let err = api
            .stamped(Method::POST, &["v1", "keys"], Some(b"{}"), &key)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "401 unauthenticated: stamp key 00 is not a principal key (the request was \
                 stamped with key {} from a test)",
                key.key.public().id()
            )
        );
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
