//! The routes the enclave answers, parsed from the method and path the client sent.

use strongroom_policy::Action;

/// The routes the enclave answers; the proxy relays anything under these prefixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/keys` (the proxy attaches a page of key blobs)
    ListKeys,
    /// `GET /v1/keys/{id}`
    GetKey(String),
    /// `GET /v1/audit/head`
    AuditHead,
    /// `POST /v1/keys`
    CreateKey,
    /// `DELETE /v1/keys/{id}`
    DestroyKey(String),
    /// `POST /v1/keys/{id}/sign/{transaction|typed-data|message|digest}`
    Sign(String, Action),
    /// `GET /v1/policy`
    GetPolicy,
    /// `POST /v1/policy/proposals`
    Propose,
    /// `GET /v1/policy/proposals`
    ListProposals,
    /// `GET /v1/policy/proposals/{id}`
    GetProposal(String),
    /// `POST /v1/policy/proposals/{id}/approve`
    ApproveProposal(String),
    /// `POST /v1/policy/proposals/{id}/cancel`
    CancelProposal(String),
    /// `GET /v1/requests`
    ListRequests,
    /// `GET /v1/requests/{id}`
    GetRequest(String),
    /// `POST /v1/requests/{id}/approve`
    ApproveRequest(String),
    /// `POST /v1/requests/{id}/execute`
    ExecuteRequest(String),
    /// `POST /v1/requests/{id}/cancel`
    CancelRequest(String),
    /// `POST /rpc` (Ethereum JSON-RPC)
    Rpc,
}

impl Route {
    /// Routes a method and path (any query string is ignored for routing but covered by
    /// the stamp).
    pub fn parse(method: &str, path: &str) -> Option<Route> {
        let path = path.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path.split('/').collect();
        let id = |s: &str| s.to_string();
        Some(match (method, parts.as_slice()) {
            ("GET", ["", "v1", "keys"]) => Route::ListKeys,
            ("GET", ["", "v1", "keys", k]) => Route::GetKey(id(k)),
            ("GET", ["", "v1", "audit", "head"]) => Route::AuditHead,
            ("POST", ["", "v1", "keys"]) => Route::CreateKey,
            ("DELETE", ["", "v1", "keys", k]) => Route::DestroyKey(id(k)),
            ("POST", ["", "v1", "keys", k, "sign", what]) => {
                let action = match *what {
                    "transaction" => Action::SignTransaction,
                    "typed-data" => Action::SignTypedData,
                    "message" => Action::SignMessage,
                    "digest" => Action::SignDigest,
                    _ => return None,
                };
                Route::Sign(id(k), action)
            }
            ("GET", ["", "v1", "policy"]) => Route::GetPolicy,
            ("POST", ["", "v1", "policy", "proposals"]) => Route::Propose,
            ("GET", ["", "v1", "policy", "proposals"]) => Route::ListProposals,
            ("GET", ["", "v1", "policy", "proposals", p]) => Route::GetProposal(id(p)),
            ("POST", ["", "v1", "policy", "proposals", p, "approve"]) => {
                Route::ApproveProposal(id(p))
            }
            ("POST", ["", "v1", "policy", "proposals", p, "cancel"]) => {
                Route::CancelProposal(id(p))
            }
            ("GET", ["", "v1", "requests"]) => Route::ListRequests,
            ("GET", ["", "v1", "requests", r]) => Route::GetRequest(id(r)),
            ("POST", ["", "v1", "requests", r, "approve"]) => Route::ApproveRequest(id(r)),
            ("POST", ["", "v1", "requests", r, "execute"]) => Route::ExecuteRequest(id(r)),
            ("POST", ["", "v1", "requests", r, "cancel"]) => Route::CancelRequest(id(r)),
            ("POST", ["", "rpc"]) => Route::Rpc,
            _ => return None,
        })
    }

    /// Reads need no stamp: they reveal nothing secret, and change nothing.
    pub fn needs_stamp(&self) -> bool {
        !matches!(
            self,
            Route::ListKeys
                | Route::GetKey(_)
                | Route::AuditHead
                | Route::GetPolicy
                | Route::ListProposals
                | Route::GetProposal(_)
                | Route::ListRequests
                | Route::GetRequest(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::parse("POST", "/v1/keys"), Some(Route::CreateKey));
        assert_eq!(
            Route::parse("POST", "/v1/keys/ab/sign/typed-data?x=1"),
            Some(Route::Sign("ab".into(), Action::SignTypedData))
        );
        assert_eq!(Route::parse("POST", "/v1/keys/ab/sign/other"), None);
        assert_eq!(Route::parse("GET", "/v1/keys"), Some(Route::ListKeys));
        assert_eq!(Route::parse("PUT", "/v1/keys"), None);
        assert!(!Route::GetPolicy.needs_stamp());
        assert!(Route::Propose.needs_stamp());
    }
}
