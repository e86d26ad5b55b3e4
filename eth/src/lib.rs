//! Ethereum payload decoding for the enclave.
