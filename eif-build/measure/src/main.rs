//! `strongroom-eif`: measure an Enclave Image File (PCR0/1/2, PCR8 if signed) or build an
//! unsigned one, with AWS's EIF code. Prints the measurements as `nitro-cli` does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use strongroom_eif::{BuildSpec, EifError, build, build_time, measure, to_json_text};

/// Measures and builds AWS Nitro Enclave Image Files (EIF).
#[derive(Parser)]
#[command(name = "strongroom-eif", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print an image's measurements as `nitro-cli build-enclave` does:
    /// `{"Measurements": {"HashAlgorithm": …, "PCR0": …, "PCR1": …, "PCR2": …}}`. A
    /// malformed, truncated or corrupted (CRC) image is refused.
    Measure {
        /// The image.
        #[arg(long, value_name = "FILE")]
        eif: PathBuf,
    },
    /// Build an unsigned x86_64 image and print its measurements. The metadata is
    /// deterministic: build time from SOURCE_DATE_EPOCH (default 0), no paths or host names.
    Build {
        /// The kernel image.
        #[arg(long, value_name = "FILE")]
        kernel: PathBuf,
        /// The kernel command line.
        #[arg(long, value_name = "STRING")]
        cmdline: String,
        /// A ramdisk; the first is the bootstrap ramdisk (PCR1), the others the application
        /// (PCR2). Repeat for each, in order.
        #[arg(long, value_name = "FILE", required = true)]
        ramdisk: Vec<PathBuf>,
        /// Where to write the image.
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
        /// The image name in its metadata.
        #[arg(long, value_name = "NAME", default_value = "strongroom-enclave")]
        name: String,
        /// The image version in its metadata.
        #[arg(long = "version", value_name = "VERSION", default_value = "0.0.0")]
        image_version: String,
    },
}

fn run(cli: Cli) -> Result<String> {
    let measurements = match cli.command {
        Command::Measure { eif } => measure(&eif).map_err(|e| naming(&eif, e))?,
        Command::Build {
            kernel,
            cmdline,
            ramdisk,
            output,
            name,
            image_version,
        } => {
            let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
            let spec = BuildSpec {
                kernel,
                cmdline,
                ramdisks: ramdisk,
                output,
                name,
                version: image_version,
                build_time: build_time(epoch.as_deref())?,
            };
            build(&spec).with_context(|| format!("building {}", spec.output.display()))?
        }
    };
    Ok(to_json_text(&measurements))
}

/// Names the image in an error, unless the error already does.
fn naming(eif: &Path, e: EifError) -> anyhow::Error {
    match e {
        EifError::Io { .. } | EifError::NotAFile(_) | EifError::Changed(_) => e.into(),
        e => anyhow::Error::new(e).context(eif.display().to_string()),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(text) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: writing the measurements: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
