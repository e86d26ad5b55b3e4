//! The pure policy engine: rules, intents, evaluation, decisions with reasons. No I/O.
//!
//! A [`Policy`] is parsed and validated from JSON or TOML (see `README.md` for the schema);
//! an [`Engine`] holds it with the [`Velocity`] counters and decides each [`Context`] —
//! principal, key, decoded [`Intent`], clock, approvals — into a [`Decision`]. Evaluation
//! is default deny: deny rules first, then allow rules.

mod document;
mod engine;
mod error;
mod governance;
pub mod intent;
mod policy;
mod units;
mod velocity;

pub use engine::{Context, Decision, Engine, KeyRef, Outcome};
pub use error::PolicyError;
pub use governance::{
    AdminSet, AdminSetDoc, Genesis, MAX_ADMINS, MAX_GENESIS_LEN, proposal_digest,
};
pub use intent::{
    AccessListEntry, Action, CallArg, DecodedCall, Erc20Call, InnerCall, Intent, MessageIntent,
    Permit, PermitScheme, RouterCommand, TransactionIntent, TxType, TypedDataIntent,
};
pub use policy::{
    Effect, GroupNode, KeySpec, MAX_GROUP_NODES, MAX_KEY_REF_LEN, MAX_KEYS_PER_PRINCIPAL,
    MAX_LIST_LEN, MAX_NODE_NAME_LEN, MAX_POLICY_LEN, MAX_PRINCIPALS, MAX_RULES, Policy, Principal,
    Rule, SCHEMA_VERSION, Scope as VelocityScope, SigningGroup,
};
pub use strongroom_auth::{Algorithm, PrincipalKey};
pub use units::{MAX_WINDOW_SECS, format_eth, parse_wei};
pub use velocity::{BUCKETS_PER_WINDOW, MAX_SUBJECT_LEN, SignatureRecord, Velocity};
