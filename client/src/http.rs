//! The blocking HTTP client: stamps requests, turns the API's error bodies into
//! `<status> <code>: <message>`, and with a [`Verifier`] checks every enclave answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use reqwest::blocking::RequestBuilder;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use strongroom_api::{ANSWER_HEADER, ApiErrorCode, ProxyRoute, Route, STAMP_HEADER};
use strongroom_auth::{Request as StampedRequest, SigningKey, Stamp};
use strongroom_identity::IdentityError;

pub use reqwest::{Method, StatusCode, Url};

use crate::error::{ClientError, Verification};
use crate::verifier::{VerifiedAnswer, VerifiedIdentity, Verifier, random_nonce};

/// How far ahead stamps expire. The enclave refuses stamps that expire more than
/// `MAX_VALIDITY_SECS` (300 s) after its clock, and, right after it restarts, stamps that
/// expire less than 300 s after its boot; 295 s stays close to the maximum while leaving
/// 5 s for the client's clock running ahead of the enclave's.
pub const STAMP_VALIDITY_SECS: u64 = 295;

/// Longest wait for the enclave's post-restart stamp horizon before giving up.
const MAX_BOOT_WAIT_SECS: u64 = 30;

/// A successful (2xx) answer.
#[derive(Debug)]
pub struct Answer {
    /// 200, 201, 202…
    pub status: StatusCode,
    /// The JSON body.
    pub body: Value,
    /// The body's bytes exactly as received (what the signature covers).
    pub bytes: Vec<u8>,
    /// The verified signature, when the client has a verifier; `None` without one.
    pub verified: Option<VerifiedAnswer>,
}

/// Largest answer read from the server (a key page, a policy, a JSON-RPC batch fit well).
pub const MAX_ANSWER_LEN: usize = 16 * 1024 * 1024;

/// The path and query of `url` exactly as the request line carries them: what stamps and
/// answer signatures cover.
pub fn wire_path(url: &Url) -> String {
    strongroom_auth::wire_path(url.path(), url.query())
}

/// A stamp header for `method url` with `body`, a fresh nonce, expiring
/// [`STAMP_VALIDITY_SECS`] from now; bound to the deployment with genesis digest
/// `deployment` when given.
pub fn stamp_header(
    key: &SigningKey,
    method: &Method,
    url: &Url,
    body: &[u8],
    deployment: Option<[u8; 32]>,
) -> Result<String, ClientError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| ClientError::Clock)?
        .as_secs();
    let path = wire_path(url);
    let request = StampedRequest {
        method: method.as_str(),
        path: &path,
        body,
    };
    Stamp::make(key, request, now, STAMP_VALIDITY_SECS, deployment)
        .map_err(|e| ClientError::Randomness(e.to_string()))
}

fn parse_json(url: &Url, bytes: &[u8]) -> Result<Value, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::NotJson {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// An answer as it came off the wire.
struct Received {
    status: StatusCode,
    /// Every `X-Strongroom-Answer` header (one when signed).
    signatures: Vec<String>,
    bytes: Vec<u8>,
}

/// What was sent, for the answer's request digest.
struct Sent<'a> {
    method: &'a Method,
    url: &'a Url,
    body: &'a [u8],
    stamp: Option<&'a str>,
}

/// Receives the client's notices (a wait before stamping again, say).
type Notices = Box<dyn Fn(&str) + Send + Sync>;

/// A blocking client for one Strongroom server.
///
/// Without a verifier it trusts whatever the server answers (the parent instance relays
/// everything). With one ([`Client::with_verifier`]) every enclave answer must carry a
/// signature by an identity that an attestation document from a trusted enclave names;
/// the client fetches and verifies that document itself the first time it meets an
/// identity. An answer that fails is an error, never data.
pub struct Client {
    /// The replicas' URLs, tried in turn; `current` answered last.
    bases: Vec<Url>,
    current: AtomicUsize,
    /// Sent as [`SESSION_HEADER`], so a load balancer keeps this client on one replica.
    session: String,
    http: reqwest::blocking::Client,
    timeout: Duration,
    verifier: Option<Arc<Verifier>>,
    notices: Option<Notices>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base().as_str())
            .field("timeout", &self.timeout)
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the server at `base` (http or https; a path prefix is kept), with a
    /// per-request timeout, and no verifier.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, ClientError> {
        Self::with_replicas(&[base], timeout)
    }

    /// A client for a deployment's replicas (or load balancers) at `bases`, tried in turn:
    /// a request that cannot connect, loses its connection, times out or is answered 503
    /// goes to the next, with
    /// the same stamp — a request one replica decided is refused by the others as used,
    /// never decided twice. The URLs may differ in scheme, host and port, not in path.
    pub fn with_replicas(bases: &[&str], timeout: Duration) -> Result<Self, ClientError> {
        let parse = |base: &&str| {
            let url = Url::parse(base).map_err(|e| ClientError::BadUrl {
                base: base.to_string(),
                reason: Some(e.to_string()),
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
                return Err(ClientError::BadUrl {
                    base: base.to_string(),
                    reason: None,
                });
            }
            Ok(url)
        };
        let urls = bases.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
        let Some(first) = urls.first() else {
            return Err(ClientError::BadUrl {
                base: String::new(),
                reason: Some("no server URL".into()),
            });
        };
        if let Some(other) = urls.iter().find(|u| u.path() != first.path()) {
            return Err(ClientError::BadUrl {
                base: other.to_string(),
                reason: Some(format!(
                    "replicas' URLs must have the same path as {first} (they differ only in \
                     scheme, host and port)"
                )),
            });
        }
        let base = first.as_str();
        let mut session = [0u8; 8];
        getrandom::fill(&mut session).map_err(|e| ClientError::Randomness(e.to_string()))?;
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ClientError::Transport {
                url: base.to_string(),
                cause: format!("starting the HTTP client: {}", root_cause(&e)),
            })?;
        Ok(Self {
            bases: urls,
            current: AtomicUsize::new(0),
            session: hex::encode(session),
            http,
            timeout,
            verifier: None,
            notices: None,
        })
    }

    /// Checks every enclave answer with `verifier` from now on.
    pub fn with_verifier(mut self, verifier: Arc<Verifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Sends the client's notices (such as "the enclave restarted moments ago; stamping
    /// again in N s") to `notices`; without it they are dropped.
    pub fn with_notices(mut self, notices: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.notices = Some(Box::new(notices));
        self
    }

    /// The server's base URL, as the known deployments remember its endpoint.
    pub fn base(&self) -> &Url {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// The verifier, if any.
    pub fn verifier(&self) -> Option<&Arc<Verifier>> {
        self.verifier.as_ref()
    }

    /// The URL of `path` on this server: an API path as [`Route::path`] and
    /// [`ProxyRoute::path`] give it (ids already percent-encoded), without a query (add one
    /// with [`Url::query_pairs_mut`]). The base's own path (a proxy mount point) stays in
    /// front.
    pub fn url(&self, path: &str) -> Url {
        let base = self.base();
        let mut url = base.clone();
        let prefix = base.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}{path}"));
        url
    }

    /// Reads `route` (one that needs no stamp) from the enclave, expecting 200. Verified
    /// when the client has a verifier.
    pub fn get(&self, route: &Route) -> Result<Answer, ClientError> {
        self.get_url(&self.url(&route.path()))
    }

    /// [`Client::get`] for a URL with a query (`/v1/keys?after=ID&limit=N`).
    pub fn get_url(&self, url: &Url) -> Result<Answer, ClientError> {
        let answer = self.request(Method::GET, url, None, None)?;
        if answer.status != StatusCode::OK {
            return Err(ClientError::UnexpectedStatus {
                url: url.to_string(),
                status: answer.status.as_u16(),
                expected: "200 OK",
            });
        }
        Ok(answer)
    }

    /// Calls `route` stamped with `key`: `body` (exact JSON bytes, or none for an empty
    /// body) with the route's method to its path. Any 2xx answer is returned with its
    /// status; others are errors.
    ///
    /// The stamp covers the method, the path and query exactly as they go on the wire and
    /// the exact body bytes, so what is signed is what is sent.
    pub fn stamped(
        &self,
        route: &Route,
        body: Option<&[u8]>,
        key: &SigningKey,
    ) -> Result<Answer, ClientError> {
        // Always GET, POST or DELETE.
        let method = Method::from_bytes(route.method().as_bytes()).unwrap_or(Method::POST);
        self.request(method, &self.url(&route.path()), body, Some(key))
    }

    /// One call to the enclave through the proxy: `body` (JSON bytes) to `url`, stamped
    /// when `key` is given. Returns any 2xx answer; error statuses are
    /// [`ClientError::Api`]. With a verifier, the answer is checked before anything in it
    /// is used, error answers included.
    ///
    /// Right after an enclave restart the enclave refuses stamps that might have been used
    /// before it (`stamp_before_boot` with `retry_after`); the request is stamped afresh
    /// and sent once more after that wait (at most 30 s), unless the refusal is unsigned
    /// while a verifier is set: a refusal the enclave did not sign could be the parent
    /// hiding a request that went through, and sending it again would do it twice.
    pub fn request(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        key: Option<&SigningKey>,
    ) -> Result<Answer, ClientError> {
        let body_bytes = body.unwrap_or_default();
        // A client pinned to a deployment binds its stamps to it: no other deployment's
        // enclave (an impostor the parent booted) can act on them.
        let deployment = self.verifier.as_ref().and_then(|v| v.pinned_genesis());
        let mut retried = false;
        loop {
            let stamp = key
                .map(|k| stamp_header(k, &method, url, body_bytes, deployment))
                .transpose()?;
            let received =
                self.exchange(method.clone(), url, body, stamp.as_deref(), MAX_ANSWER_LEN)?;
            let sent = Sent {
                method: &method,
                url,
                body: body_bytes,
                stamp: stamp.as_deref(),
            };
            let (verification, verified) = self.check(&sent, &received)?;
            if received.status.is_success() {
                return Ok(Answer {
                    status: received.status,
                    body: parse_json(url, &received.bytes)?,
                    bytes: received.bytes,
                    verified,
                });
            }
            let error = api_error(received.status, &received.bytes, verification);
            if let ClientError::Api {
                status: 401,
                body: error_body,
                ..
            } = &error
                && error.api_code() == Some(ApiErrorCode::StampBeforeBoot)
                && key.is_some()
                && !retried
                && verification != Verification::Unsigned
                && let Some(wait) = error_body["error"]["retry_after"].as_u64()
                && wait <= MAX_BOOT_WAIT_SECS
            {
                self.notice(&format!(
                    "the enclave restarted moments ago; stamping again in {wait} s"
                ));
                std::thread::sleep(Duration::from_secs(wait + 1));
                retried = true;
                continue;
            }
            return Err(error);
        }
    }

    /// GET `route` from the proxy itself, expecting 200: endpoints the enclave does not
    /// answer (`/v1/health`, `/metrics`, `/v1/audit`), so nothing is verified.
    pub fn get_unsigned(&self, route: ProxyRoute) -> Result<Value, ClientError> {
        self.get_unsigned_url(&self.url(route.path()))
    }

    /// [`Client::get_unsigned`] for a URL with a query (`/v1/audit?from=SEQ`).
    pub fn get_unsigned_url(&self, url: &Url) -> Result<Value, ClientError> {
        let bytes = self.get_unsigned_bytes(url, MAX_ANSWER_LEN)?;
        parse_json(url, &bytes)
    }

    /// The raw 200 body of an unsigned proxy endpoint (`/v1/audit` is NDJSON), at most
    /// `max_len` bytes; longer is an error, read no further.
    pub fn get_unsigned_bytes(&self, url: &Url, max_len: usize) -> Result<Vec<u8>, ClientError> {
        self.unsigned_bytes(url, max_len, true)
    }

    /// [`Client::get_unsigned_bytes`], at the current replica only unless `failover`.
    fn unsigned_bytes(
        &self,
        url: &Url,
        max_len: usize,
        failover: bool,
    ) -> Result<Vec<u8>, ClientError> {
        let received = if failover {
            self.exchange(Method::GET, url, None, None, max_len)?
        } else {
            self.exchange_once(Method::GET, url, None, None, max_len)?
        };
        if received.status == StatusCode::OK {
            return Ok(received.bytes);
        }
        if received.status.is_success() {
            return Err(ClientError::UnexpectedStatus {
                url: url.to_string(),
                status: received.status.as_u16(),
                expected: "200 OK",
            });
        }
        // Nothing here is signed: with a verifier, say so.
        let verification = match self.verifier {
            Some(_) => Verification::Unsigned,
            None => Verification::NotChecked,
        };
        Err(api_error(received.status, &received.bytes, verification))
    }

    /// Fetches an attestation document (COSE_Sign1 bytes) for `nonce` from
    /// `GET /v1/attestation?nonce=HEX`. Not verified here: see [`Client::attest`] or
    /// [`Verifier::verify_attestation`].
    pub fn fetch_attestation(&self, nonce: &[u8]) -> Result<Vec<u8>, ClientError> {
        let mut url = self.url(ProxyRoute::Attestation.path());
        url.query_pairs_mut()
            .append_pair("nonce", &hex::encode(nonce));
        // From the replica that answered last, whose identity it must name: not another.
        let answer = parse_json(&url, &self.unsigned_bytes(&url, MAX_ANSWER_LEN, false)?)?;
        let bad = |reason: &str| ClientError::BadAttestationAnswer {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let text = answer["document"]
            .as_str()
            .ok_or_else(|| bad("no \"document\" string"))?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| bad(&format!("document is not base64: {e}")))
    }

    /// Fetches an attestation document with a fresh random nonce and verifies it, so the
    /// identity it names is trusted from now on.
    pub fn attest(&self) -> Result<VerifiedIdentity, ClientError> {
        let verifier = self.verifier.as_ref().ok_or(ClientError::NoVerifier)?;
        let nonce = random_nonce()?;
        let document = self
            .fetch_attestation(&nonce)
            .map_err(|e| ClientError::AttestationUnavailable(Box::new(e)))?;
        verifier.verify_attestation_from(&document, &nonce, Some(self.base().as_str()))
    }

    fn notice(&self, text: &str) {
        if let Some(notices) = &self.notices {
            notices(text);
        }
    }

    /// Checks an answer when a verifier is set. An error answer with no signature at all
    /// is the proxy's own (or something in between): reported as [`Verification::Unsigned`],
    /// which keeps it an error; a success without a signature is refused outright.
    fn check(
        &self,
        sent: &Sent<'_>,
        received: &Received,
    ) -> Result<(Verification, Option<VerifiedAnswer>), ClientError> {
        let Some(verifier) = &self.verifier else {
            return Ok((Verification::NotChecked, None));
        };
        if received.signatures.is_empty() && !received.status.is_success() {
            return Ok((Verification::Unsigned, None));
        }
        if received.signatures.len() > 1 {
            return Err(ClientError::MalformedAnswerSignature(
                IdentityError::Malformed {
                    what: "answer signature header",
                    detail: format!("{} headers, expected one", received.signatures.len()),
                },
            ));
        }
        let path = wire_path(sent.url);
        let header = received.signatures.first().map(String::as_str);
        let check = || {
            verifier.check_answer(
                sent.method.as_str(),
                &path,
                sent.body,
                sent.stamp,
                received.status.as_u16(),
                header,
                &received.bytes,
            )
        };
        let verified = match check() {
            Err(ClientError::UnknownIdentity(answered)) => {
                // First answer from this boot of the enclave: learn its identity from a
                // freshly challenged document, then check once more. Behind a load
                // balancer that does not keep a client on one replica, the document may
                // come from another replica (each has its own identity): ask again, a few
                // times, for the one that answered.
                let mut attested = self.attest()?;
                for _ in 0..ATTEST_ATTEMPTS {
                    if attested.identity == answered {
                        break;
                    }
                    attested = self.attest()?;
                }
                if attested.identity != answered {
                    return Err(ClientError::IdentityNotAttested {
                        answered,
                        attested: attested.identity,
                    });
                }
                check()?
            }
            other => other?,
        };
        Ok((Verification::Verified, Some(verified)))
    }

    /// One HTTP exchange, at the current replica and, while it cannot be reached or
    /// answers 503, at the next ones (each once), with the same stamp and body.
    fn exchange(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        stamp: Option<&str>,
        max_len: usize,
    ) -> Result<Received, ClientError> {
        let mut url = url.clone();
        let mut left = self.bases.len();
        loop {
            left -= 1;
            let result = self.exchange_once(method.clone(), &url, body, stamp, max_len);
            let retriable = match &result {
                Ok(r) => r.status == StatusCode::SERVICE_UNAVAILABLE,
                // However far the request got, sending it on is safe: its stamp is good
                // for one decision, which every replica refuses to make twice.
                Err(e) => matches!(
                    e,
                    ClientError::Connect { .. }
                        | ClientError::Timeout { .. }
                        | ClientError::Transport { .. }
                ),
            };
            if !retriable || left == 0 {
                return result;
            }
            let from = self.base().clone();
            let next = (self.current.load(Ordering::Relaxed) + 1) % self.bases.len();
            self.current.store(next, Ordering::Relaxed);
            let to = self.base();
            self.notice(&format!("{from} did not answer; trying {to}"));
            url = rebase(&url, &from, to);
        }
    }

    /// One HTTP exchange: the status, answer signatures and body bytes.
    fn exchange_once(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        stamp: Option<&str>,
        max_len: usize,
    ) -> Result<Received, ClientError> {
        let mut request: RequestBuilder = self
            .http
            .request(method, url.clone())
            .header(SESSION_HEADER, &self.session);
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
        let signatures = response
            .headers()
            .get_all(ANSWER_HEADER)
            .iter()
            // Not ASCII cannot be a valid header; lossy text fails to parse as one.
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        // The proxy is not trusted: read no more than the answer can be.
        let too_large = || ClientError::AnswerTooLarge {
            url: url.to_string(),
            limit: max_len,
        };
        if response
            .content_length()
            .is_some_and(|n| n > max_len as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(response, max_len as u64 + 1),
            &mut bytes,
        )
        .map_err(|e| ClientError::Transport {
            url: url.to_string(),
            cause: e.to_string(),
        })?;
        if bytes.len() > max_len {
            return Err(too_large());
        }
        Ok(Received {
            status,
            signatures,
            bytes,
        })
    }

    /// Describes a failure to get an answer at all, naming the URL.
    fn transport_error(&self, url: &Url, e: &reqwest::Error) -> ClientError {
        let url = url.to_string();
        let cause = root_cause(e);
        if e.is_timeout() {
            ClientError::Timeout {
                url,
                secs: self.timeout.as_secs(),
            }
        } else if e.is_connect() {
            ClientError::Connect { url, cause }
        } else {
            ClientError::Transport { url, cause }
        }
    }
}

/// How many more attestation documents a client asks for when one names another identity
/// than the one that answered (another replica's, behind a load balancer).
const ATTEST_ATTEMPTS: usize = 8;

/// The header that names a client's session, so a load balancer (`balance
/// hdr(X-Strongroom-Session)` in HAProxy) keeps one client on one replica: the attestation
/// it fetches then names the identity that answered it.
pub const SESSION_HEADER: &str = "X-Strongroom-Session";

/// `url` (made on `from`) on `to`: the same path and query.
fn rebase(url: &Url, from: &Url, to: &Url) -> Url {
    let prefix = from.path().trim_end_matches('/');
    let rest = url.path().strip_prefix(prefix).unwrap_or(url.path());
    let mut out = to.clone();
    out.set_path(&format!("{}{rest}", to.path().trim_end_matches('/')));
    out.set_query(url.query());
    out
}

/// The innermost error: reqwest's own message only says "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// [`ClientError::Api`] from an error answer ([`crate::error_from_answer`]).
fn api_error(status: StatusCode, body: &[u8], verification: Verification) -> ClientError {
    crate::answer::error_from_answer(status.as_u16(), body, verification)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn shown(status: StatusCode, body: &[u8]) -> String {
        api_error(status, body, Verification::NotChecked).to_string()
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            shown(
                StatusCode::NOT_FOUND,
                br#"{"error":{"code":"not_found","message":"no key 00"}}"#
            ),
            "404 not_found: no key 00"
        );
        assert_eq!(
            shown(StatusCode::SERVICE_UNAVAILABLE, br#"{"status":"starting"}"#),
            "503 starting: the server is not ready"
        );
        assert_eq!(
            shown(
                StatusCode::SERVICE_UNAVAILABLE,
                br#"{"status":"starting","detail":"waiting for KMS"}"#
            ),
            "503 starting: waiting for KMS"
        );
        assert_eq!(
            shown(StatusCode::BAD_GATEWAY, b"<html>\n  bad   gateway</html>"),
            "502 Bad Gateway: <html> bad gateway</html>"
        );
        assert_eq!(
            shown(StatusCode::INTERNAL_SERVER_ERROR, b""),
            "500 Internal Server Error: (empty body)"
        );
        assert_eq!(
            shown(
                StatusCode::FORBIDDEN,
                br#"{"error":{"code":"denied","message":"value 2 ETH exceeds cap 1 ETH","decision":{"result":"deny","rule":"dev-transactions","reason":"value 2 ETH exceeds cap 1 ETH"}}}"#,
            ),
            "403 denied by rule \"dev-transactions\": value 2 ETH exceeds cap 1 ETH"
        );
        assert_eq!(
            shown(
                StatusCode::FORBIDDEN,
                br#"{"error":{"code":"denied","message":"no rule allows it","decision":{"result":"deny","rule":null,"reason":"no rule allows it"}}}"#,
            ),
            "403 denied (no rule allows it): no rule allows it"
        );
    }

    #[test]
    fn unsigned_errors_say_so_and_keep_their_code() {
        let body = br#"{"error":{"code":"too_large","message":"body over 1 MiB"}}"#;
        let e = api_error(StatusCode::PAYLOAD_TOO_LARGE, body, Verification::Unsigned);
        assert!(
            e.to_string()
                .starts_with("413 too_large: body over 1 MiB (unverified: not signed"),
            "{e}"
        );
        assert!(matches!(e, ClientError::Api { status: 413, .. }));
        assert_eq!(e.api_code(), Some(ApiErrorCode::TooLarge));
        let e = api_error(StatusCode::PAYLOAD_TOO_LARGE, body, Verification::Verified);
        assert_eq!(e.to_string(), "413 too_large: body over 1 MiB");
    }

    #[test]
    fn wire_paths_keep_the_query() {
        let url = Url::parse("http://h/p/v1/requests?status=pending&x=a%20b").unwrap();
        assert_eq!(wire_path(&url), "/p/v1/requests?status=pending&x=a%20b");
        let url = Url::parse("http://h").unwrap();
        assert_eq!(wire_path(&url), "/");
    }

    #[test]
    fn urls_keep_the_base_path_and_the_encoded_ids() {
        let api = Client::new("http://127.0.0.1:8080", Duration::from_secs(1)).unwrap();
        let id = strongroom_api::Id::new("a/b?c").unwrap();
        assert_eq!(
            api.url(&Route::GetKey(id).path()).as_str(),
            "http://127.0.0.1:8080/v1/keys/a%2Fb%3Fc"
        );
        let id = strongroom_api::Id::new("a/../../health").unwrap();
        assert_eq!(
            api.url(&Route::DestroyKey(id).path()).as_str(),
            "http://127.0.0.1:8080/v1/keys/a%2F..%2F..%2Fhealth"
        );
        let api = Client::new("https://example.invalid/sr/", Duration::from_secs(1)).unwrap();
        assert_eq!(
            api.url(ProxyRoute::Health.path()).as_str(),
            "https://example.invalid/sr/v1/health"
        );
        let api = Client::new("https://example.invalid/sr", Duration::from_secs(1)).unwrap();
        assert_eq!(
            api.url(&Route::ListKeys.path()).as_str(),
            "https://example.invalid/sr/v1/keys"
        );
        assert!(matches!(
            Client::new("ftp://example.invalid", Duration::from_secs(1)),
            Err(ClientError::BadUrl { reason: None, .. })
        ));
        assert!(matches!(
            Client::new("127.0.0.1:8080", Duration::from_secs(1)),
            Err(ClientError::BadUrl { .. })
        ));
    }

    #[test]
    fn clients_and_verifiers_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Client>();
        shareable::<Verifier>();
    }
}
