//! `strongroom mock …`: developer tools for mock mode.

use std::path::PathBuf;

use anyhow::{Context, Result};
use base64::Engine;
use clap::Subcommand;
use strongroom_attestation::AttestationRequest;
use strongroom_attestation::Nsm;
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};

use crate::input::{Hex, der_or_pem_file, hex_arg};

/// Mock-mode subcommands.
#[derive(Subcommand)]
pub enum MockCommand {
    /// Print a mock attestation document (base64) from the mock NSM whose CA lives in --state.
    Attest {
        /// Public key to bind (DER or PEM).
        #[arg(long, value_name = "FILE")]
        public_key: Option<String>,
        /// User data to bind.
        #[arg(long, value_name = "HEX", value_parser = hex_arg)]
        user_data: Option<Hex>,
        /// Nonce to bind.
        #[arg(long, value_name = "HEX", value_parser = hex_arg)]
        nonce: Option<Hex>,
        /// PCR values, JSON `{"0": "hex", ...}` or nitro-cli's `{"Measurements": {"PCR0": ...}}`.
        #[arg(long, value_name = "FILE")]
        pcrs: Option<String>,
        /// Mock NSM state directory (created on first use; root certificate at DIR/root.pem).
        #[arg(
            long,
            value_name = "DIR",
            env = "STRONGROOM_MOCK_NSM_DIR",
            default_value = "data/mock-nsm"
        )]
        state: PathBuf,
    },
}

/// Runs a mock subcommand.
pub fn run(cmd: MockCommand) -> Result<()> {
    match cmd {
        MockCommand::Attest {
            public_key,
            user_data,
            nonce,
            pcrs,
            state,
        } => {
            let mut config = MockNsmConfig::default();
            if let Some(path) = pcrs {
                let text =
                    std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
                config.pcrs = MockNsmConfig::pcrs_from_json(&text)?;
            }
            let nsm = MockNsm::open_or_create(&state, config)
                .with_context(|| format!("mock NSM state in {}", state.display()))?;
            let request = AttestationRequest {
                user_data: user_data.map(|h| h.0),
                nonce: nonce.map(|h| h.0),
                public_key: public_key.map(|p| der_or_pem_file(&p)).transpose()?,
            };
            let doc = nsm.attestation(&request)?;
            crate::client::print_text(&format!(
                "{}\n",
                base64::engine::general_purpose::STANDARD.encode(doc)
            ))?;
            Ok(())
        }
    }
}
