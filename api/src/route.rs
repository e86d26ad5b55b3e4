//! The routes: what a method and path mean ([`Route::parse`], for the enclave and the
//! proxy), and the method and path a client sends for a route ([`Route::method`],
//! [`Route::path`]).

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

#[cfg(test)]
mod tests;

/// A key's, a proposal's or a request's id, as one segment of a path.
///
/// The ids the API issues are lowercase hex. Any other id is taken too (the server owns
/// the format, and answers `not_found` for what it never issued), but none can change the
/// structure of a path: [`Route::path`] **percent-encodes** every byte of an id outside
/// `A–Z a–z 0–9 - . _ ~`, so a `/`, `?`, `#` or `%` stays inside its one segment, and
/// [`Route::parse`] decodes it again. The three ids that no encoding keeps a segment of
/// their own — the empty one, `.` and `..`, which URL libraries drop or resolve against the
/// segment before — are **refused** by [`Id::new`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(String);

impl Id {
    /// `id`, unless it is empty, `.` or `..`.
    pub fn new(id: impl Into<String>) -> Result<Self, BadId> {
        let id = id.into();
        if matches!(id.as_str(), "" | "." | "..") {
            return Err(BadId(id));
        }
        Ok(Self(id))
    }

    /// The id as text (not encoded).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id percent-encoded as one path segment.
    fn encoded(&self) -> Cow<'_, str> {
        let unreserved =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        if self.0.bytes().all(unreserved) {
            return Cow::Borrowed(&self.0);
        }
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = String::with_capacity(self.0.len() * 3);
        for b in self.0.bytes() {
            if unreserved(b) {
                out.push(char::from(b));
            } else {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        Cow::Owned(out)
    }

    /// An id from a path segment, percent-decoded; `None` for a malformed escape, text
    /// that is not UTF-8 once decoded, or an id [`Id::new`] refuses.
    fn from_segment(segment: &str) -> Option<Self> {
        if !segment.contains('%') {
            return Self::new(segment).ok();
        }
        let bytes = segment.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let digit = |at: usize| char::from(*bytes.get(at)?).to_digit(16);
                let (high, low) = (digit(i + 1)?, digit(i + 2)?);
                out.push(u8::try_from(high * 16 + low).ok()?);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        Self::new(String::from_utf8(out).ok()?).ok()
    }
}

impl Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Id> for String {
    fn from(id: Id) -> String {
        id.0
    }
}

impl FromStr for Id {
    type Err = BadId;
    fn from_str(s: &str) -> Result<Self, BadId> {
        Self::new(s)
    }
}

/// An id that cannot be a path segment: empty, `.` or `..`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadId(String);

impl fmt::Display for BadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an id (an empty id, `.` and `..` cannot be path segments)",
            self.0
        )
    }
}

impl std::error::Error for BadId {}

/// What `POST /v1/keys/{id}/sign/{kind}` signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignKind {
    /// `transaction`: an Ethereum transaction.
    Transaction,
    /// `typed-data`: EIP-712 typed data.
    TypedData,
    /// `message`: a personal_sign (EIP-191) message.
    Message,
    /// `digest`: a bare 32-byte digest.
    Digest,
}

impl SignKind {
    /// Every kind.
    pub const ALL: [SignKind; 4] = [
        SignKind::Transaction,
        SignKind::TypedData,
        SignKind::Message,
        SignKind::Digest,
    ];

    /// The path segment: `transaction`, `typed-data`, `message` or `digest`.
    pub fn segment(self) -> &'static str {
        match self {
            SignKind::Transaction => "transaction",
            SignKind::TypedData => "typed-data",
            SignKind::Message => "message",
            SignKind::Digest => "digest",
        }
    }

    /// The kind a path segment names.
    pub fn from_segment(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.segment() == segment)
    }
}

/// The routes the enclave answers; the proxy relays them with the sealed blobs they need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/keys` (the proxy attaches a page of key blobs)
    ListKeys,
    /// `GET /v1/keys/{id}`
    GetKey(Id),
    /// `GET /v1/audit/head`
    AuditHead,
    /// `POST /v1/keys`
    CreateKey,
    /// `DELETE /v1/keys/{id}`
    DestroyKey(Id),
    /// `POST /v1/keys/{id}/sign/{transaction|typed-data|message|digest}`
    Sign(Id, SignKind),
    /// `GET /v1/policy`
    GetPolicy,
    /// `POST /v1/policy/proposals`
    Propose,
    /// `GET /v1/policy/proposals`
    ListProposals,
    /// `GET /v1/policy/proposals/{id}`
    GetProposal(Id),
    /// `POST /v1/policy/proposals/{id}/approve`
    ApproveProposal(Id),
    /// `POST /v1/policy/proposals/{id}/cancel`
    CancelProposal(Id),
    /// `GET /v1/requests`
    ListRequests,
    /// `GET /v1/requests/{id}`
    GetRequest(Id),
    /// `POST /v1/requests/{id}/approve`
    ApproveRequest(Id),
    /// `POST /v1/requests/{id}/execute`
    ExecuteRequest(Id),
    /// `POST /v1/requests/{id}/cancel`
    CancelRequest(Id),
    /// `POST /rpc` (Ethereum JSON-RPC)
    Rpc,
}

impl Route {
    /// Routes a method and path. Any query string is ignored here (the stamp covers it);
    /// ids are percent-decoded ([`Id`]). `None`: no such route.
    pub fn parse(method: &str, path: &str) -> Option<Route> {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        let parts: Vec<&str> = path.split('/').collect();
        let id = Id::from_segment;
        Some(match (method, parts.as_slice()) {
            ("GET", ["", "v1", "keys"]) => Route::ListKeys,
            ("GET", ["", "v1", "keys", k]) => Route::GetKey(id(k)?),
            ("GET", ["", "v1", "audit", "head"]) => Route::AuditHead,
            ("POST", ["", "v1", "keys"]) => Route::CreateKey,
            ("DELETE", ["", "v1", "keys", k]) => Route::DestroyKey(id(k)?),
            ("POST", ["", "v1", "keys", k, "sign", kind]) => {
                Route::Sign(id(k)?, SignKind::from_segment(kind)?)
            }
            ("GET", ["", "v1", "policy"]) => Route::GetPolicy,
            ("POST", ["", "v1", "policy", "proposals"]) => Route::Propose,
            ("GET", ["", "v1", "policy", "proposals"]) => Route::ListProposals,
            ("GET", ["", "v1", "policy", "proposals", p]) => Route::GetProposal(id(p)?),
            ("POST", ["", "v1", "policy", "proposals", p, "approve"]) => {
                Route::ApproveProposal(id(p)?)
            }
            ("POST", ["", "v1", "policy", "proposals", p, "cancel"]) => {
                Route::CancelProposal(id(p)?)
            }
            ("GET", ["", "v1", "requests"]) => Route::ListRequests,
            ("GET", ["", "v1", "requests", r]) => Route::GetRequest(id(r)?),
            ("POST", ["", "v1", "requests", r, "approve"]) => Route::ApproveRequest(id(r)?),
            ("POST", ["", "v1", "requests", r, "execute"]) => Route::ExecuteRequest(id(r)?),
            ("POST", ["", "v1", "requests", r, "cancel"]) => Route::CancelRequest(id(r)?),
            ("POST", ["", "rpc"]) => Route::Rpc,
            _ => return None,
        })
    }

    /// The HTTP method: `GET`, `POST` or `DELETE`.
    pub fn method(&self) -> &'static str {
        match self {
            Route::ListKeys
            | Route::GetKey(_)
            | Route::AuditHead
            | Route::GetPolicy
            | Route::ListProposals
            | Route::GetProposal(_)
            | Route::ListRequests
            | Route::GetRequest(_) => "GET",
            Route::DestroyKey(_) => "DELETE",
            Route::CreateKey
            | Route::Sign(..)
            | Route::Propose
            | Route::ApproveProposal(_)
            | Route::CancelProposal(_)
            | Route::ApproveRequest(_)
            | Route::ExecuteRequest(_)
            | Route::CancelRequest(_)
            | Route::Rpc => "POST",
        }
    }

    /// The path a client sends, ids percent-encoded so each stays one segment (see
    /// [`Id`]): `Route::parse(r.method(), &r.path()) == Some(r)` for every route.
    pub fn path(&self) -> String {
        self.render(Id::encoded)
    }

    /// The path with `{id}` where an id goes (`/v1/keys/{id}/sign/digest`): the form
    /// `docs/openapi.json` documents.
    pub fn template(&self) -> String {
        self.render(|_| Cow::Borrowed("{id}"))
    }

    fn render<'a>(&'a self, id: impl Fn(&'a Id) -> Cow<'a, str>) -> String {
        match self {
            Route::ListKeys | Route::CreateKey => "/v1/keys".into(),
            Route::GetKey(k) | Route::DestroyKey(k) => format!("/v1/keys/{}", id(k)),
            Route::Sign(k, kind) => format!("/v1/keys/{}/sign/{}", id(k), kind.segment()),
            Route::AuditHead => "/v1/audit/head".into(),
            Route::GetPolicy => "/v1/policy".into(),
            Route::Propose | Route::ListProposals => "/v1/policy/proposals".into(),
            Route::GetProposal(p) => format!("/v1/policy/proposals/{}", id(p)),
            Route::ApproveProposal(p) => format!("/v1/policy/proposals/{}/approve", id(p)),
            Route::CancelProposal(p) => format!("/v1/policy/proposals/{}/cancel", id(p)),
            Route::ListRequests => "/v1/requests".into(),
            Route::GetRequest(r) => format!("/v1/requests/{}", id(r)),
            Route::ApproveRequest(r) => format!("/v1/requests/{}/approve", id(r)),
            Route::ExecuteRequest(r) => format!("/v1/requests/{}/execute", id(r)),
            Route::CancelRequest(r) => format!("/v1/requests/{}/cancel", id(r)),
            Route::Rpc => "/rpc".into(),
        }
    }

    /// Reads need no stamp: they reveal nothing secret, and change nothing.
    pub fn needs_stamp(&self) -> bool {
        self.method() != "GET"
    }

    /// The key whose sealed blob the call needs: the key shown, destroyed or signed with.
    pub fn key_id(&self) -> Option<&Id> {
        match self {
            Route::GetKey(k) | Route::DestroyKey(k) | Route::Sign(k, _) => Some(k),
            _ => None,
        }
    }

    /// The pending request whose key the call may sign with (an approval that completes
    /// it, its execution, or reading a replica's signed request, whose result the enclave
    /// signs again): the proxy attaches that key's blob.
    pub fn signing_request_id(&self) -> Option<&Id> {
        match self {
            Route::ApproveRequest(r) | Route::ExecuteRequest(r) | Route::GetRequest(r) => Some(r),
            _ => None,
        }
    }

    /// Every route once, each sign kind once, with `id` wherever a route takes one: for
    /// the tests and checks that must cover them all.
    pub fn every(id: &Id) -> Vec<Route> {
        let mut all = vec![
            Route::ListKeys,
            Route::GetKey(id.clone()),
            Route::AuditHead,
            Route::CreateKey,
            Route::DestroyKey(id.clone()),
            Route::GetPolicy,
            Route::Propose,
            Route::ListProposals,
            Route::GetProposal(id.clone()),
            Route::ApproveProposal(id.clone()),
            Route::CancelProposal(id.clone()),
            Route::ListRequests,
            Route::GetRequest(id.clone()),
            Route::ApproveRequest(id.clone()),
            Route::ExecuteRequest(id.clone()),
            Route::CancelRequest(id.clone()),
            Route::Rpc,
        ];
        all.extend(SignKind::ALL.map(|kind| Route::Sign(id.clone(), kind)));
        all
    }
}

/// The proxy's own endpoints: answered from its state and storage, never by the enclave,
/// so never signed. All are `GET`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyRoute {
    /// `GET /v1/health`: `{"status": "ready"}`, or 503 while starting.
    Health,
    /// `GET /v1/attestation?nonce=HEX`: a fresh attestation document (signed by the NSM).
    Attestation,
    /// `GET /v1/audit?from=SEQ&limit=N`: the stored audit chain as NDJSON.
    AuditStream,
    /// `GET /metrics`: the Prometheus/OpenMetrics exposition.
    Metrics,
}

impl ProxyRoute {
    /// Every proxy route.
    pub const ALL: [ProxyRoute; 4] = [
        ProxyRoute::Health,
        ProxyRoute::Attestation,
        ProxyRoute::AuditStream,
        ProxyRoute::Metrics,
    ];

    /// The HTTP method: `GET`.
    pub fn method(self) -> &'static str {
        "GET"
    }

    /// The path (queries go after it).
    pub fn path(self) -> &'static str {
        match self {
            ProxyRoute::Health => "/v1/health",
            ProxyRoute::Attestation => "/v1/attestation",
            ProxyRoute::AuditStream => "/v1/audit",
            ProxyRoute::Metrics => "/metrics",
        }
    }
}
