//! The pure policy engine: rules, intents, evaluation, decisions with reasons. No I/O.
//!
//! A [`Policy`] is parsed and validated from JSON or TOML (see `README.md` for the schema);
//! an [`Engine`] holds it with the velocity [`Ledger`] and decides each [`Context`] —
//! principal, key, decoded [`Intent`], clock, approvals — into a [`Decision`]. Evaluation
//! is default deny: deny rules first, then allow rules.

mod document;
mod engine;
mod error;
mod governance;
pub mod intent;
mod ledger;
mod policy;
mod units;

pub use engine::{Context, Decision, Engine, KeyRef, Outcome};
pub use error::PolicyError;
pub use governance::{
    AdminSet, AdminSetDoc, Genesis, MAX_ADMINS, MAX_GENESIS_LEN, proposal_digest,
};
pub use intent::{
    Action, Erc20Call, Intent, MessageIntent, Permit, PermitScheme, TransactionIntent, TxType,
    TypedDataIntent,
};
pub use ledger::{Ledger, LedgerEntry, MAX_LEDGER_ENTRIES, MAX_LEDGER_ID_LEN};
pub use policy::{
    Effect, KeySpec, MAX_KEY_REF_LEN, MAX_KEYS_PER_PRINCIPAL, MAX_LIST_LEN, MAX_POLICY_LEN,
    MAX_PRINCIPALS, MAX_RULES, Policy, Principal, Rule, SCHEMA_VERSION,
};
pub use strongroom_auth::{Algorithm, PrincipalKey};
pub use units::{MAX_WINDOW_SECS, format_eth, parse_wei};
