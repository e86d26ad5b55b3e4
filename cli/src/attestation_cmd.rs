//! `strongroom attestation …`: fetch and verify attestation documents.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use base64::Engine;
use clap::Subcommand;
use serde_json::{Map, Value, json};
use strongroom_attestation::{Expectations, TrustedRoot, VerifiedDocument, rfc3339, verify};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::{Api, cli_error, print_text};
use crate::input::{Hex, bytes_file, hex_arg, pcr_arg, trusted_root};

/// Attestation subcommands.
#[derive(Subcommand)]
pub enum AttestationCommand {
    /// Fetch an attestation document from the server (`GET /v1/attestation`) and print it
    /// as base64, for `attestation verify --doc FILE --nonce HEX`. With --expect-pcrs it is
    /// verified too, and the identity it names is shown on stderr.
    Fetch {
        /// The nonce the enclave must bind into the document; default 32 random bytes,
        /// shown on stderr.
        #[arg(long, value_name = "HEX", value_parser = hex_arg)]
        nonce: Option<Hex>,
        /// Write the document (base64) to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Verify an attestation document and print its contents as JSON.
    Verify {
        /// The document: raw CBOR (COSE_Sign1) or base64.
        #[arg(long, value_name = "FILE")]
        doc: String,
        /// Trusted root: `aws` (the pinned AWS Nitro Enclaves Root G1) or a PEM file.
        #[arg(long, value_name = "aws|PEM-FILE", default_value = "aws")]
        root: String,
        /// Verification time (RFC 3339); default now. Auditors check old documents at their time.
        #[arg(long, value_name = "RFC3339-TIME")]
        at: Option<String>,
        /// Expected PCR value; repeat for several PCRs.
        #[arg(long = "pcr", value_name = "INDEX=HEX", value_parser = pcr_arg)]
        pcrs: Vec<(u8, Vec<u8>)>,
        /// Expected nonce.
        #[arg(long, value_name = "HEX", value_parser = hex_arg)]
        nonce: Option<Hex>,
        /// Refuse documents older than this many seconds at the verification time.
        #[arg(long, value_name = "SECONDS")]
        max_age: Option<u64>,
        /// Accept debug-mode documents (PCR0 all zeros). Never for production enclaves.
        #[arg(long)]
        allow_debug: bool,
    },
}

/// Runs an attestation subcommand; `api` makes the client, for the commands that need one.
pub fn run(api: impl FnOnce() -> Result<Api>, cmd: AttestationCommand) -> Result<()> {
    match cmd {
        AttestationCommand::Fetch { nonce, out } => fetch(&api()?, nonce, out),
        AttestationCommand::Verify {
            doc,
            root,
            at,
            pcrs,
            nonce,
            max_age,
            allow_debug,
        } => {
            let bytes = bytes_file(&doc)?;
            let at = match at {
                Some(t) => OffsetDateTime::parse(&t, &Rfc3339)
                    .with_context(|| format!("--at {t:?} is not an RFC 3339 time"))?
                    .into(),
                None => SystemTime::now(),
            };
            let root = trusted_root("--root", &root)?;
            let mut exp = Expectations::new(at)
                .root(root.clone())
                .allow_debug(allow_debug);
            for (index, value) in pcrs {
                exp = exp.pcr(index, value);
            }
            if let Some(Hex(n)) = nonce {
                exp = exp.nonce(n);
            }
            if let Some(secs) = max_age {
                exp = exp.max_age(Duration::from_secs(secs));
            }
            let verified = verify(&bytes, &exp).context("attestation document refused")?;
            let out = report(&verified, &root);
            crate::client::print_json(&out)?;
            Ok(())
        }
    }
}

/// `attestation fetch`.
fn fetch(api: &Api, nonce: Option<Hex>, out: Option<PathBuf>) -> Result<()> {
    let nonce = match nonce {
        Some(Hex(nonce)) => nonce,
        None => {
            let nonce = strongroom_client::random_nonce()?;
            eprintln!("nonce: {}", hex::encode(nonce));
            nonce.to_vec()
        }
    };
    let document = api.client().fetch_attestation(&nonce).map_err(cli_error)?;
    if let Some(verifier) = api.client().verifier() {
        let identity = verifier.verify_attestation_from(
            &document,
            &nonce,
            Some(api.client().base().as_str()),
        )?;
        eprintln!(
            "verified: enclave {} with the expected PCRs; answer-signing identity {}; \
             genesis {} (--expect-genesis); root-key check {} (--expect-key-check); \
             policy {}",
            identity.module_id,
            identity.identity,
            hex::encode(identity.user_data.genesis),
            hex::encode(identity.user_data.key_check),
            hex::encode(identity.user_data.policy),
        );
    }
    let text = format!(
        "{}\n",
        base64::engine::general_purpose::STANDARD.encode(&document)
    );
    match out {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
        }
        None => print_text(&text),
    }
}

fn opt_hex(v: &Option<Vec<u8>>) -> Value {
    v.as_ref()
        .map_or(Value::Null, |b| Value::String(hex::encode(b)))
}

/// The JSON report of a verified document.
fn report(v: &VerifiedDocument, root: &TrustedRoot) -> Value {
    let d = &v.document;
    let pcrs: Map<String, Value> = d
        .pcrs
        .iter()
        .map(|(i, p)| (i.to_string(), Value::String(hex::encode(p))))
        .collect();
    json!({
        "module_id": d.module_id,
        "digest": d.digest,
        "timestamp": rfc3339(v.timestamp()),
        "timestamp_ms": d.timestamp,
        "pcrs": pcrs,
        "public_key": opt_hex(&d.public_key),
        "user_data": opt_hex(&d.user_data),
        "nonce": opt_hex(&d.nonce),
        "certificate": {
            "subject": v.certificate.subject,
            "issuer": v.certificate.issuer,
            "not_before": rfc3339(v.certificate.not_before),
            "not_after": rfc3339(v.certificate.not_after),
        },
        "root_sha256": hex::encode(root.fingerprint()),
        "debug_mode": d.is_debug_mode(),
    })
}
