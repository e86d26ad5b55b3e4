//! What the test binaries share: an in-memory network of parties and relays between
//! session engines.

#![allow(dead_code)]

pub mod engines;
pub mod network;
