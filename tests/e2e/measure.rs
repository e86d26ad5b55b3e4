//! `strongroom measure` across real processes: an enclave image built by `strongroom-eif`
//! from small known inputs, measured by `strongroom measure`, and checked against PCRs and
//! a layout computed independently in Python (`tests/interop/eif_pcrs.py`: hashlib, struct,
//! zlib); then the attacks an auditor's tool must refuse, and the measurements fed to
//! `strongroom kms-policy`.
//!
//! Needs the workspace binaries and `strongroom-eif` in the same directory: `make test`
//! builds both (`make eif-tool` the latter).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use strongroom_e2e::{bin_dir, interop_script, temp_data};

const CMDLINE: &str = "reboot=k panic=30 pci=off nomodule console=ttyS0 quiet";
const ROLE: &str = "arn:aws:iam::111122223333:role/strongroom-parent";

fn tool() -> PathBuf {
    let tool = bin_dir().join("strongroom-eif");
    assert!(
        tool.exists(),
        "{} is missing: `make eif-tool` builds it (`make test` does)",
        tool.display()
    );
    tool
}

fn run(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("STRONGROOM_EIF_TOOL")
        .env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok_json(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `strongroom ARGS`, expecting exit 1; returns stderr.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run(&bin_dir().join("strongroom"), args, env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "strongroom {args:?}: {stderr}");
    stderr
}

fn measure(eif: &Path) -> Value {
    let out = run(
        &bin_dir().join("strongroom"),
        &["measure", "--eif", eif.to_str().unwrap()],
        &[],
    );
    ok_json(&out, "strongroom measure")
}

/// Deterministic bytes.
fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8 ^ seed)
        .collect()
}

struct Inputs {
    dir: PathBuf,
    kernel: PathBuf,
    ramdisks: Vec<PathBuf>,
}

impl Inputs {
    fn new(tag: &str, app_seed: u8) -> Self {
        let dir = temp_data(tag);
        let kernel = dir.join("bzImage");
        std::fs::write(&kernel, bytes(1, 8 * 1024)).unwrap();
        // The bootstrap ramdisk (PCR1) and two application ramdisks (PCR2).
        let ramdisks: Vec<PathBuf> = [
            ("bootstrap.cpio", 2, 3 * 1024),
            ("app.cpio", app_seed, 2048),
            ("app-extra.cpio", 9, 1024),
        ]
        .into_iter()
        .map(|(name, seed, len)| {
            let p = dir.join(name);
            std::fs::write(&p, bytes(seed, len)).unwrap();
            p
        })
        .collect();
        Self {
            dir,
            kernel,
            ramdisks,
        }
    }

    /// The arguments naming these inputs, for `strongroom-eif build` and the Python script.
    fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--kernel".into(),
            self.kernel.display().to_string(),
            "--cmdline".into(),
            CMDLINE.into(),
        ];
        for r in &self.ramdisks {
            a.push("--ramdisk".into());
            a.push(r.display().to_string());
        }
        a
    }

    /// `strongroom-eif build` into `name`; returns the path and the printed measurements.
    fn build(&self, name: &str, env: &[(&str, &str)]) -> (PathBuf, Value) {
        let out_path = self.dir.join(name);
        let mut args = vec!["build".to_string()];
        args.extend(self.args());
        args.extend(["--output".into(), out_path.display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let printed = ok_json(&run(&tool(), &args, env), "strongroom-eif build");
        (out_path, printed)
    }

    /// The Python script's PCRs (and, with `eif`, its layout check of that file).
    fn python_pcrs(&self, eif: Option<&Path>) -> Value {
        let mut args = vec!["pcrs".to_string()];
        args.extend(self.args());
        if let Some(e) = eif {
            args.extend(["--eif".into(), e.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        serde_json::from_slice(&interop_script("eif_pcrs.py", &args)).unwrap()
    }
}

impl Drop for Inputs {
    fn drop(&mut self) {
        // Kept when a test fails, to look at.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `eif_pcrs.py ARGS`: the byte surgery of forged images.
fn eif_py(args: &[&str]) {
    interop_script("eif_pcrs.py", args);
}

/// PCR`i` of a printed `{"Measurements": …}`.
fn pcr(v: &Value, i: u8) -> &str {
    v["Measurements"][format!("PCR{i}")].as_str().unwrap()
}

#[test]
fn measured_pcrs_match_an_independent_computation_and_attacks_are_refused() {
    let inputs = Inputs::new("measure", 3);
    let (eif, built) = inputs.build("image.eif", &[]);
    let eif_s = eif.to_str().unwrap();

    // nitro-cli's shape, from the builder and from `strongroom measure`, alike.
    let measured = measure(&eif);
    assert_eq!(measured, built);
    assert_eq!(measured["Measurements"]["HashAlgorithm"], "Sha384 { ... }");
    let keys: Vec<&String> = measured["Measurements"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys, ["HashAlgorithm", "PCR0", "PCR1", "PCR2"]);

    // Python: the same PCRs from the inputs, and the file laid out as the format says.
    let py = inputs.python_pcrs(Some(&eif));
    for i in 0..3 {
        assert_eq!(pcr(&measured, i), py[format!("PCR{i}")], "PCR{i}");
    }
    let layout = &py["layout"];
    assert_eq!(layout["crc_ok"], true);
    assert_eq!(layout["version"], 4);
    assert_eq!(layout["sections"][0]["offset"], 548);
    assert_eq!(layout["sections"][0]["size"], 8 * 1024);
    // Deterministic metadata: no build time but SOURCE_DATE_EPOCH's, no host paths.
    let meta = &layout["metadata"];
    assert_eq!(
        meta["BuildMetadata"]["BuildTime"],
        "1970-01-01T00:00:00+00:00"
    );
    assert_eq!(meta["BuildMetadata"]["BuildTool"], "strongroom-eif");
    let image = std::fs::read(&eif).unwrap();
    let dir = inputs.dir.display().to_string();
    assert!(!String::from_utf8_lossy(&image).contains(&dir));
    let (again, _) = inputs.build("again.eif", &[]);
    assert_eq!(
        std::fs::read(again).unwrap(),
        image,
        "same inputs, same image"
    );
    let (dated, dated_pcrs) = inputs.build("dated.eif", &[("SOURCE_DATE_EPOCH", "1700000000")]);
    assert_ne!(std::fs::read(dated).unwrap(), image);
    assert_eq!(dated_pcrs, built, "the metadata is not measured");

    // The tool is found through --tool, STRONGROOM_EIF_TOOL, or next to strongroom.
    let t = tool();
    let by_flag = run(
        &bin_dir().join("strongroom"),
        &["measure", "--eif", eif_s, "--tool", t.to_str().unwrap()],
        &[("PATH", "/nonexistent")],
    );
    assert_eq!(ok_json(&by_flag, "measure --tool"), measured);
    let by_env = run(
        &bin_dir().join("strongroom"),
        &["measure", "--eif", eif_s],
        &[("STRONGROOM_EIF_TOOL", t.to_str().unwrap())],
    );
    assert_eq!(
        ok_json(&by_env, "measure with STRONGROOM_EIF_TOOL"),
        measured
    );

    // One flipped byte in the app ramdisk: the CRC refuses it; a forger who also fixes the
    // CRC gets another PCR2 (and PCR0), the bootstrap's PCR1 unchanged.
    let last = layout["sections"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let at = (last["offset"].as_u64().unwrap() + 12 + 100) as usize;
    let mut flipped = image.clone();
    flipped[at] ^= 0x01;
    let bad = inputs.dir.join("flipped.eif");
    std::fs::write(&bad, &flipped).unwrap();
    let e = refused(&["measure", "--eif", bad.to_str().unwrap()], &[]);
    assert!(e.contains("CRC mismatch"), "{e}");
    eif_py(&["fix-crc", bad.to_str().unwrap()]);
    let forged = measure(&bad);
    assert_ne!(pcr(&forged, 2), pcr(&measured, 2));
    assert_ne!(pcr(&forged, 0), pcr(&measured, 0));
    assert_eq!(pcr(&forged, 1), pcr(&measured, 1));

    // Truncated: a clear error, wherever it is cut.
    for len in [100, 548, 560, image.len() / 2, image.len() - 1] {
        let cut = inputs.dir.join("cut.eif");
        std::fs::write(&cut, &image[..len]).unwrap();
        let e = refused(&["measure", "--eif", cut.to_str().unwrap()], &[]);
        assert!(e.contains("truncated"), "{len}: {e}");
    }

    // A section header (and the table, and the CRC) claiming 4 GiB: refused before anything
    // of that size is allocated — under a 1 GiB address-space limit, an allocation of it
    // would abort the tool instead.
    let huge = inputs.dir.join("huge.eif");
    std::fs::write(&huge, &image).unwrap();
    eif_py(&[
        "set-size",
        huge.to_str().unwrap(),
        "4",
        &(4u64 << 30).to_string(),
    ]);
    let out = Command::new("bash")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" measure --eif \"$1\"")
        .arg(&t)
        .arg(&huge)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("claims 4294967296 bytes"), "{e}");
    let e = refused(&["measure", "--eif", huge.to_str().unwrap()], &[]);
    assert!(e.contains("claims 4294967296 bytes"), "{e}");

    // Not an EIF at all.
    let e = refused(&["measure", "--eif", inputs.kernel.to_str().unwrap()], &[]);
    assert!(e.contains("not an EIF"), "{e}");

    // --check: the same measurements pass, one changed PCR fails naming it.
    let good = inputs.dir.join("pcrs.json");
    std::fs::write(&good, serde_json::to_vec(&measured).unwrap()).unwrap();
    let out = run(
        &bin_dir().join("strongroom"),
        &["measure", "--eif", eif_s, "--check", good.to_str().unwrap()],
        &[],
    );
    assert_eq!(ok_json(&out, "measure --check"), measured);
    assert!(String::from_utf8_lossy(&out.stderr).contains("matches"));
    let mut wrong = measured.clone();
    wrong["Measurements"]["PCR1"] = Value::String("00".repeat(47) + "01");
    let wrong_path = inputs.dir.join("wrong.json");
    std::fs::write(&wrong_path, serde_json::to_vec(&wrong).unwrap()).unwrap();
    let e = refused(
        &[
            "measure",
            "--eif",
            eif_s,
            "--check",
            wrong_path.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        e.contains("PCR1 differs") && !e.contains("PCR0") && !e.contains("PCR2"),
        "{e}"
    );

    // The measurements are a PCR file kms-policy takes as they are.
    let out = run(
        &bin_dir().join("strongroom"),
        &[
            "kms-policy",
            "--pcrs",
            good.to_str().unwrap(),
            "--role",
            ROLE,
        ],
        &[],
    );
    let policy = ok_json(&out, "kms-policy");
    let allow = &policy["Statement"][0];
    assert_eq!(allow["Principal"]["AWS"], ROLE);
    for i in 0..3u8 {
        let key = format!("kms:RecipientAttestation:PCR{i}");
        assert_eq!(
            allow["Condition"]["StringEqualsIgnoreCase"][&key],
            pcr(&measured, i)
        );
        let deny = &policy["Statement"][1 + usize::from(i)];
        assert_eq!(deny["Effect"], "Deny");
        assert_eq!(
            deny["Condition"]["StringNotEqualsIgnoreCase"][&key],
            pcr(&measured, i)
        );
    }
}

#[test]
fn only_the_app_ramdisk_changing_changes_pcr2_not_pcr1() {
    let a = Inputs::new("measure-app-a", 3);
    let b = Inputs::new("measure-app-b", 4);
    let (ea, _) = a.build("a.eif", &[]);
    let (eb, _) = b.build("b.eif", &[]);
    let (ma, mb) = (measure(&ea), measure(&eb));
    assert_eq!(pcr(&ma, 1), pcr(&mb, 1));
    assert_ne!(pcr(&ma, 2), pcr(&mb, 2));
    assert_ne!(pcr(&ma, 0), pcr(&mb, 0));
    let py = b.python_pcrs(None);
    assert_eq!(pcr(&mb, 2), py["PCR2"]);
}

#[test]
fn without_the_tool_it_says_how_to_build_it() {
    let dir = temp_data("measure-no-tool");
    // A strongroom with no strongroom-eif beside it (current_exe resolves links, so copy).
    let lone = dir.join("strongroom");
    if std::fs::hard_link(bin_dir().join("strongroom"), &lone).is_err() {
        std::fs::copy(bin_dir().join("strongroom"), &lone).unwrap();
    }
    let eif = dir.join("x.eif");
    std::fs::write(&eif, b"whatever").unwrap();
    let out = run(
        &lone,
        &["measure", "--eif", eif.to_str().unwrap()],
        &[("PATH", "/usr/bin:/bin")],
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("strongroom-eif not found") && e.contains("make eif-tool"),
        "{e}"
    );
    let e = refused(
        &[
            "measure",
            "--eif",
            eif.to_str().unwrap(),
            "--tool",
            "/nonexistent/strongroom-eif",
        ],
        &[],
    );
    assert!(e.contains("make eif-tool"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}
