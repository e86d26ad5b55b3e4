//! `strongroom measure --eif FILE`: an enclave image's measurements (PCR0/1/2, and PCR8 for
//! a signed image) in the shape `nitro-cli build-enclave` prints, so they feed
//! `kms-policy --pcrs` and `--expect-pcrs` directly; with `--check FILE`, compared with a
//! PCR file (what the key policy pins, what a running enclave attests).
//!
//! The measuring is done by `strongroom-eif` (`eif-build/measure/`), which uses AWS's EIF
//! crate: that crate brings OpenSSL, the AWS SDK and exact-pinned dependencies, so it lives
//! in a workspace of its own and this program runs it. Its answer is checked here like any
//! PCR file before it is printed.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use strongroom_attestation::parse_pcr_file;

use crate::client::print_json;
use crate::input::pcr_file;

/// The measuring program's name.
pub const TOOL: &str = "strongroom-eif";

/// How to get the measuring program.
const BUILD_HINT: &str = "build it with `make eif-tool` (that is, `cargo build --locked \
    --manifest-path eif-build/measure/Cargo.toml`), then name it with --tool or \
    STRONGROOM_EIF_TOOL, or put it next to strongroom or on PATH";

/// The PCRs an image determines: 0 to 2 always, 8 when signed. The others (3: the parent's
/// IAM role, 4: its instance id…) depend on where the image runs.
const IMAGE_PCRS: [u16; 4] = [0, 1, 2, 8];

/// Arguments of `measure`.
#[derive(clap::Args)]
pub struct MeasureArgs {
    /// The enclave image file (EIF), as `nitro-cli build-enclave` writes it.
    #[arg(long, value_name = "FILE")]
    eif: PathBuf,
    /// The `strongroom-eif` program; without it, the one next to this program, then the one
    /// on PATH.
    #[arg(long, value_name = "PATH", env = "STRONGROOM_EIF_TOOL")]
    tool: Option<PathBuf>,
    /// Also compare with this PCR file (nitro-cli's output, `{"PCR0": "hex", …}` or
    /// `{"0": "hex", …}`): exit 1 naming every PCR that differs. PCRs an image does not
    /// determine (3, 4, …) are not compared.
    #[arg(long, value_name = "PCRS.json")]
    check: Option<PathBuf>,
}

/// Runs `measure`.
pub fn run(args: MeasureArgs) -> Result<()> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let tool = find_tool(
        args.tool.as_deref(),
        exe_dir.as_deref(),
        std::env::var_os("PATH").as_deref(),
    )?;
    let measured = measure(&tool, &args.eif)?;
    print_json(&nitro_json(&measured))?;
    if let Some(path) = &args.check {
        let expected = pcr_file("--check", path)?;
        let outcome = compare(&measured, &expected, &path.display().to_string())?;
        eprintln!("{outcome}");
    }
    Ok(())
}

/// The measuring program: `explicit` (--tool or STRONGROOM_EIF_TOOL), else the one in
/// `exe_dir`, else the first on `path_var`.
fn find_tool(
    explicit: Option<&Path>,
    exe_dir: Option<&Path>,
    path_var: Option<&OsStr>,
) -> Result<PathBuf> {
    if let Some(tool) = explicit {
        if tool.is_file() {
            return Ok(tool.to_path_buf());
        }
        bail!(
            "{}: no such program (--tool or STRONGROOM_EIF_TOOL); {BUILD_HINT}",
            tool.display()
        );
    }
    let beside = exe_dir.map(|d| d.join(TOOL));
    let on_path = path_var
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(TOOL));
    if let Some(found) = beside.into_iter().chain(on_path).find(|p| p.is_file()) {
        return Ok(found);
    }
    let beside = exe_dir.map_or_else(String::new, |d| format!("not in {}, ", d.display()));
    bail!("{TOOL} not found ({beside}not on PATH): {BUILD_HINT}")
}

/// Runs `tool measure --eif EIF` and checks its answer: a SHA-384 PCR file with PCR0, PCR1
/// and PCR2, and nothing an image does not determine.
fn measure(tool: &Path, eif: &Path) -> Result<BTreeMap<u16, Vec<u8>>> {
    let out = Command::new(tool)
        .arg("measure")
        .arg("--eif")
        .arg(eif)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", tool.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = stderr.trim().trim_start_matches("error: ");
        bail!("{} refused the image: {reason}", tool.display());
    }
    let text = String::from_utf8(out.stdout)
        .with_context(|| format!("{} printed something that is not text", tool.display()))?;
    let pcrs = parse_pcr_file(&text)
        .with_context(|| format!("the measurements {} printed", tool.display()))?;
    if let Some(i) = (0..3).find(|i| !pcrs.contains_key(i)) {
        bail!("{} printed no PCR{i}", tool.display());
    }
    if let Some(i) = pcrs.keys().find(|i| !IMAGE_PCRS.contains(i)) {
        bail!(
            "{} printed PCR{i}, which no image determines",
            tool.display()
        );
    }
    Ok(pcrs)
}

/// `{"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": …}}`, as nitro-cli prints.
fn nitro_json(pcrs: &BTreeMap<u16, Vec<u8>>) -> Value {
    let mut m = Map::new();
    m.insert("HashAlgorithm".into(), json!("Sha384 { ... }"));
    for (i, v) in pcrs {
        m.insert(format!("PCR{i}"), json!(hex::encode(v)));
    }
    json!({ "Measurements": m })
}

/// Compares the image's PCRs with `expected` (read from `source`): an error naming every
/// PCR that differs, or what matched.
fn compare(
    measured: &BTreeMap<u16, Vec<u8>>,
    expected: &BTreeMap<u16, Vec<u8>>,
    source: &str,
) -> Result<String> {
    let mut matched = Vec::new();
    let mut differ = Vec::new();
    let mut skipped = Vec::new();
    for (i, want) in expected {
        if !IMAGE_PCRS.contains(i) {
            skipped.push(format!("PCR{i}"));
            continue;
        }
        match measured.get(i) {
            Some(have) if have == want => matched.push(format!("PCR{i}")),
            Some(have) => differ.push(format!(
                "PCR{i} differs: the image has {}, {source} has {}",
                hex::encode(have),
                hex::encode(want)
            )),
            None => differ.push(format!(
                "PCR{i} differs: the image has none (it is not signed), {source} has {}",
                hex::encode(want)
            )),
        }
    }
    if !differ.is_empty() {
        bail!("{}", differ.join("; "));
    }
    if matched.is_empty() {
        bail!("{source} has none of PCR0, PCR1, PCR2, PCR8: nothing to compare");
    }
    let mut outcome = format!("the image matches {source}: {}", matched.join(", "));
    if !skipped.is_empty() {
        outcome.push_str(&format!(
            " ({} not compared: no image determines them)",
            skipped.join(", ")
        ));
    }
    Ok(outcome)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::{nitro_pcr_file, pcrs, temp_dir};

    /// A stand-in `strongroom-eif` that prints `stdout` and exits with `code`.
    #[cfg(unix)]
    fn fake_tool(dir: &Path, stdout: &str, code: i32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(TOOL);
        let script = format!(
            "#!/bin/sh\n[ \"$1 $2\" = \"measure --eif\" ] || exit 9\ncat <<'EOF'\n{stdout}\nEOF\n\
             [ {code} -eq 0 ] || echo 'error: bad image' >&2\nexit {code}\n"
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn the_tool_is_found_in_order_and_its_absence_says_how_to_build_it() {
        let a = temp_dir("measure-a");
        let b = temp_dir("measure-b");
        for d in [&a, &b] {
            std::fs::write(d.join(TOOL), "").unwrap();
        }
        let path_var = std::env::join_paths([&b]).unwrap();
        let explicit = b.join(TOOL);
        assert_eq!(
            find_tool(Some(&explicit), Some(&a), None).unwrap(),
            explicit
        );
        assert_eq!(
            find_tool(None, Some(&a), Some(&path_var)).unwrap(),
            a.join(TOOL)
        );
        let empty = temp_dir("measure-empty");
        assert_eq!(
            find_tool(None, Some(&empty), Some(&path_var)).unwrap(),
            b.join(TOOL)
        );
        let e = find_tool(None, Some(&empty), None).unwrap_err().to_string();
        assert!(
            e.contains("make eif-tool") && e.contains("not found"),
            "{e}"
        );
        let e = find_tool(Some(&empty.join("nope")), Some(&a), Some(&path_var))
            .unwrap_err()
            .to_string();
        assert!(e.contains("make eif-tool") && e.contains("nope"), "{e}");
    }

    #[test]
    fn the_output_is_nitro_clis_shape_and_reads_back() {
        let m = pcrs(1);
        let v = nitro_json(&m);
        assert_eq!(v["Measurements"]["HashAlgorithm"], "Sha384 { ... }");
        assert_eq!(v["Measurements"]["PCR1"], hex::encode([2u8; 48]));
        assert_eq!(parse_pcr_file(&v.to_string()).unwrap(), m);
    }

    #[test]
    fn check_names_each_pcr_that_differs() {
        let m = pcrs(1);
        let ok = compare(&m, &m, "p.json").unwrap();
        assert!(ok.contains("PCR0, PCR1, PCR2"), "{ok}");
        let mut other = m.clone();
        other.get_mut(&2).unwrap()[47] ^= 1;
        let e = compare(&m, &other, "p.json").unwrap_err().to_string();
        assert!(e.starts_with("PCR2 differs") && !e.contains("PCR1"), "{e}");
        // A signed image's PCR8 expected of an unsigned image.
        let mut signed = m.clone();
        signed.insert(8, vec![9; 48]);
        let e = compare(&m, &signed, "p.json").unwrap_err().to_string();
        assert!(
            e.contains("PCR8 differs") && e.contains("not signed"),
            "{e}"
        );
        // PCRs of the running instance are not the image's: reported, not compared.
        let mut attested = m.clone();
        attested.insert(3, vec![7; 48]);
        attested.insert(4, vec![7; 48]);
        let ok = compare(&m, &attested, "p.json").unwrap();
        assert!(ok.contains("PCR3, PCR4 not compared"), "{ok}");
        let only3: BTreeMap<u16, Vec<u8>> = [(3, vec![7; 48])].into();
        assert!(compare(&m, &only3, "p.json").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_tools_answer_is_checked() {
        let h = |b: u8| hex::encode([b; 48]);
        let good = nitro_pcr_file(1);
        let dir = temp_dir("measure-run");
        let eif = dir.join("x.eif");
        let tool = fake_tool(&dir, &good, 0);
        let m = measure(&tool, &eif).unwrap();
        assert_eq!(m[&2], vec![3; 48]);

        let e = format!("{:#}", measure(&fake_tool(&dir, "", 1), &eif).unwrap_err());
        assert!(e.contains("refused the image: bad image"), "{e}");
        let no_pcr2 = format!(r#"{{"PCR0": "{}", "PCR1": "{}"}}"#, h(1), h(2));
        let e = format!(
            "{:#}",
            measure(&fake_tool(&dir, &no_pcr2, 0), &eif).unwrap_err()
        );
        assert!(e.contains("no PCR2"), "{e}");
        let pcr4 = format!("{}, \"PCR4\": \"{}\"}}}}", &good[..good.len() - 2], h(4));
        let e = format!(
            "{:#}",
            measure(&fake_tool(&dir, &pcr4, 0), &eif).unwrap_err()
        );
        assert!(e.contains("PCR4"), "{e}");
        let sha256 = good.replace("Sha384", "Sha256");
        let e = format!(
            "{:#}",
            measure(&fake_tool(&dir, &sha256, 0), &eif).unwrap_err()
        );
        assert!(e.contains("SHA-384"), "{e}");
    }
}
