//! `strongroom health`: is the server up and the enclave unsealed?

use anyhow::Result;
use strongroom_client::ProxyRoute;

use crate::client::{Api, print_json};

/// Runs `strongroom health`: 200 `{"status":"ready"}` once unsealed; before, the 503 is an
/// error (exit 1), so scripts can wait on it.
pub fn run(api: &Api) -> Result<()> {
    // Answered by the proxy, not the enclave: nothing to verify.
    print_json(&api.get_unsigned(ProxyRoute::Health)?)
}
