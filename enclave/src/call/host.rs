//! What a call needs from the enclave (the [`Host`] seam: time, randomness, key blobs,
//! the log), and who made the call: the stamp check and the keys that may stamp.

use crate::replica::DECIDED_ELSEWHERE;
use std::collections::HashMap;
use std::sync::Arc;

use strongroom_api::ApiErrorCode;
use strongroom_auth::{
    MAX_VALIDITY_SECS, PrincipalKey, Request as StampedRequest, authenticate_for,
};
use strongroom_identity::Checkpoint;
use strongroom_policy::Policy;
use strongroom_protocol::messages::{Call, KeyInfo, SealedKey};

use super::error::ApiError;
use super::{Governed, GovernedLock, lock};
use crate::apply::Applied;
use crate::governance::AdminSet;
use crate::keys::KeyRecord;
use crate::record::{By, Record};

/// Who signed a stamp.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The principal key id.
    pub key_id: String,
    /// The principal it belongs to, if any.
    pub principal: Option<String>,
    /// True if the key is in the admin set.
    pub admin: bool,
}

impl Caller {
    pub(crate) fn principal(&self) -> Result<&str, ApiError> {
        self.principal.as_deref().ok_or_else(|| {
            ApiError::forbidden(format!(
                "key {} is an admin key, not a principal's; principals make requests",
                self.key_id
            ))
        })
    }
}

/// Every key that may sign a stamp: principals' keys from the policy and the admins' keys.
#[derive(Debug, Default)]
pub struct KeyTable {
    keys: HashMap<String, (PrincipalKey, Option<String>, bool)>,
}

impl KeyTable {
    /// Builds the table for a policy and an admin set.
    pub fn build(policy: &Policy, admins: &AdminSet) -> Self {
        let mut keys = HashMap::new();
        for principal in policy.principals() {
            for key in &principal.keys {
                keys.insert(
                    key.id().to_string(),
                    (key.clone(), Some(principal.id.clone()), false),
                );
            }
        }
        for key in admins.keys() {
            keys.entry(key.id().to_string())
                .and_modify(|e: &mut (PrincipalKey, Option<String>, bool)| e.2 = true)
                .or_insert_with(|| (key.clone(), None, true));
        }
        Self { keys }
    }

    fn lookup(&self, id: &str) -> Option<&PrincipalKey> {
        self.keys.get(id).map(|(k, _, _)| k)
    }

    fn caller(&self, id: &str) -> Option<Caller> {
        self.keys.get(id).map(|(k, p, a)| Caller {
            key_id: k.id().to_string(),
            principal: p.clone(),
            admin: *a,
        })
    }
}

impl Caller {
    /// The fields every record about this call carries.
    pub(crate) fn by(&self, host: &dyn Host) -> By {
        By {
            request: hex::encode(host.request_digest()),
            principal: self.principal.clone(),
            stamp_key: self.key_id.clone(),
        }
    }
}

/// What a call handler needs from the enclave: time, randomness, key blobs and the log.
pub trait Host {
    /// Seconds since the Unix epoch (enclave clock).
    fn now(&self) -> u64;
    /// When this enclave unsealed; stamps expiring within the validity window of it are
    /// refused (see [`check_horizon`]).
    fn boot_time(&self) -> u64;
    /// Fresh random bytes.
    fn random(&self, out: &mut [u8]) -> Result<(), ApiError>;
    /// Opens the sealed key blob that came with the call, checking it is `key_id`'s.
    fn open_key(&self, key_id: &str, call: &Call) -> Result<KeyRecord, ApiError>;
    /// Opens one sealed key blob, checking it is the id it is filed under.
    fn open_sealed(&self, key: &SealedKey) -> Result<KeyRecord, ApiError>;
    /// The digest of the call being answered (method, path, body, stamp), which the
    /// answer's signature and the call's records name.
    fn request_digest(&self) -> [u8; 32];
    /// Appends `record` (made at `time`) to the log and applies it to the state, under
    /// the state lock: either both happen or neither. The only way a call changes state.
    fn append(&self, g: &mut Governed, record: Record, time: u64) -> Result<Applied, ApiError>;
    /// A signed checkpoint of the audit chain's head.
    fn checkpoint(&self, g: &Governed) -> Option<Checkpoint>;
    /// Makes and seals a new key.
    fn create_key(&self, label: String) -> Result<(KeyInfo, Vec<u8>), ApiError>;
    /// Whether this is a replica deciding a request again after it lost its place: its
    /// stamp's nonce was recorded by the first decision, so it is not recorded again.
    fn redeciding(&self) -> bool {
        false
    }
    /// Whether this enclave is a replica, whose records leave it before its answers.
    fn replicated(&self) -> bool {
        false
    }
}

/// The replay memory starts at boot: a stamp that expires before `boot + MAX_VALIDITY` may
/// have been used before this boot, when the replay cache was another one, so it is
/// refused. No stored state is involved, so a parent rolling state back cannot reopen a
/// replay window. Clients that stamp with the full validity never see this.
pub fn check_horizon(expires_at: u64, boot_time: u64) -> Result<(), ApiError> {
    let horizon = boot_time.saturating_add(MAX_VALIDITY_SECS);
    if expires_at < horizon {
        let mut e = ApiError::new(
            ApiErrorCode::StampBeforeBoot,
            format!(
                "stamp expires at {expires_at}, before {horizon}: the enclave started at \
                 {boot_time} and accepts only stamps that expire at least {MAX_VALIDITY_SECS} \
                 s after its start (an earlier stamp may have been used before it started); \
                 stamp again with a later expiry"
            ),
        );
        e.retry_after = Some(horizon - expires_at);
        return Err(e);
    }
    Ok(())
}

/// Checks the stamp: the signature outside the lock (it is the costly part), then the boot
/// horizon and the nonce under it.
pub(crate) fn authenticate_call(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
) -> Result<Caller, ApiError> {
    let (keys, genesis) = {
        let g = lock(gov)?;
        (Arc::clone(&g.keys), g.state.genesis)
    };
    let now = host.now();
    let request = StampedRequest {
        method: &call.method,
        path: &call.path,
        body: &call.body,
    };
    let authenticated = authenticate_for(
        call.stamp.as_deref(),
        request,
        |id| keys.lookup(id),
        now,
        Some(&genesis),
    )
    .map_err(|e| ApiError::unauthenticated(e.to_string()))?;
    check_horizon(authenticated.expires_at, host.boot_time())?;
    let key = {
        let mut g = lock(gov)?;
        // A replica refuses what another replica decided (the stamp's nonce is in that
        // replica's replay cache, not this one's; the request's digest is in the log).
        if let Some(elsewhere) = g.decided_elsewhere.as_mut()
            && elsewhere.contains(DECIDED_ELSEWHERE, &host.request_digest(), now)
        {
            return Err(ApiError::unauthenticated(
                "stamp already used: another replica decided this request",
            ));
        }
        if host.redeciding() {
            authenticated.key
        } else {
            authenticated
                .consume(&mut g.replay, now)
                .map_err(|e| ApiError::unauthenticated(e.to_string()))?
        }
    };
    keys.caller(key.id())
        .ok_or_else(|| ApiError::unauthenticated("stamp key vanished"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizon_refuses_stamps_that_could_predate_the_boot() {
        assert!(check_horizon(1000 + MAX_VALIDITY_SECS - 1, 1000).is_err());
        assert!(check_horizon(1000 + MAX_VALIDITY_SECS, 1000).is_ok());
    }
}
