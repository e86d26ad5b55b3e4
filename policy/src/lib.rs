//! The pure policy engine: rules, intents, evaluation, decisions with reasons. No I/O.

pub mod intent;

pub use intent::{
    Action, Erc20Call, Intent, MessageIntent, Permit, PermitScheme, TransactionIntent, TxType,
    TypedDataIntent,
};
