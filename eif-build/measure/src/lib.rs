//! Measures and builds AWS Nitro Enclave Image Files (EIF) with AWS's own EIF code
//! (`aws-nitro-enclaves-image-format`, what `nitro-cli` uses), so the PCRs printed here are
//! the ones `nitro-cli build-enclave` prints and the NSM attests.
//!
//! An EIF to measure is untrusted input: the EIF crate's reader allocates every section at
//! the size its header claims and indexes the signature list without a check, so
//! [`measure`] first walks the file itself — magic, version, section count, every section
//! header and size within what the file holds, known section types, the header's section
//! table agreeing with the sections actually in the file, nothing after the last one — and
//! only then hands it to the crate, whose CRC check must pass too.
//!
//! PCR0 is SHA-384 over 48 zero bytes and SHA-384(kernel ‖ cmdline ‖ every ramdisk); PCR1
//! the same over kernel ‖ cmdline ‖ the first (bootstrap) ramdisk; PCR2 over the remaining
//! (application) ramdisks; PCR8, only for a signed image, over the signing certificate (DER).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use aws_nitro_enclaves_image_format::defs::{
    CURRENT_VERSION, EIF_MAGIC, EifBuildInfo, EifHeader, EifIdentityInfo, EifSectionHeader,
    MAX_NUM_SECTIONS, PcrSignature,
};
use aws_nitro_enclaves_image_format::utils::EifBuilder;
use aws_nitro_enclaves_image_format::utils::eif_reader::EifReader;
use sha2::{Digest, Sha384};

/// Size of the EIF header (548 bytes).
pub const HEADER_SIZE: u64 = EifHeader::size() as u64;
/// Size of a section header (12 bytes: type, flags, size).
pub const SECTION_HEADER_SIZE: u64 = EifSectionHeader::size() as u64;
/// The sections every built image has besides its ramdisks: kernel, cmdline, metadata.
const FIXED_SECTIONS: usize = 3;
/// The most ramdisks one image can carry.
pub const MAX_RAMDISKS: usize = MAX_NUM_SECTIONS - FIXED_SECTIONS;

/// What went wrong measuring or building an image.
#[derive(Debug, thiserror::Error)]
pub enum EifError {
    /// A file could not be opened, read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// A path that must be a regular file is not one.
    #[error("{}: not a regular file", .0.display())]
    NotAFile(PathBuf),
    /// Shorter than the EIF header.
    #[error("truncated: the file is {0} bytes, shorter than the {HEADER_SIZE}-byte EIF header")]
    ShortHeader(u64),
    /// The first four bytes are not `.eif`.
    #[error("not an EIF: the file starts with {0:02x?}, not the magic \".eif\"")]
    BadMagic([u8; 4]),
    /// A version this tool (and the EIF crate it uses) does not know.
    #[error(
        "EIF version {0} is not supported (versions 2 to {CURRENT_VERSION}: with a CRC, \
         known to aws-nitro-enclaves-image-format 0.8.1)"
    )]
    Version(u16),
    /// More sections than an EIF can have.
    #[error("{0} sections: an EIF has at most {MAX_NUM_SECTIONS}")]
    TooManySections(usize),
    /// The file ends inside a section header.
    #[error(
        "truncated: section {index}'s header at offset {offset} needs {SECTION_HEADER_SIZE} \
         bytes, the file has {remaining} left"
    )]
    TruncatedSectionHeader {
        /// Which section (0-based).
        index: usize,
        /// Where its header starts.
        offset: u64,
        /// Bytes left in the file from there.
        remaining: u64,
    },
    /// A section claims more bytes than the file has left.
    #[error(
        "section {index} ({kind}) at offset {offset} claims {size} bytes, the file has only \
         {remaining} left (truncated or forged header)"
    )]
    SectionPastEnd {
        /// Which section.
        index: usize,
        /// Its type.
        kind: SectionKind,
        /// Where its header starts.
        offset: u64,
        /// The size its header claims.
        size: u64,
        /// Bytes left in the file after its header.
        remaining: u64,
    },
    /// A section type this format does not define.
    #[error("section {index} at offset {offset} has unknown type {value}")]
    UnknownSectionType {
        /// Which section.
        index: usize,
        /// Where its header starts.
        offset: u64,
        /// The type value.
        value: u16,
    },
    /// The file ends before all the sections the header lists.
    #[error("truncated: the header lists {listed} sections, the {len}-byte file holds {found}")]
    Truncated {
        /// Sections the header lists.
        listed: usize,
        /// Sections in the file.
        found: usize,
        /// The file's length.
        len: u64,
    },
    /// The header's section table does not describe the sections in the file (the loader
    /// reads the table, the measurement the sections: they must be the same bytes).
    #[error("the header's section table does not match the file: {0}")]
    Table(String),
    /// The sections are not an image: kernel, cmdline, ramdisks, at most one signature.
    #[error("not a valid enclave image: {0}")]
    Layout(String),
    /// The signature section is not a non-empty CBOR list of PCR signatures.
    #[error("the signature section is not a non-empty list of PCR signatures: {0}")]
    Signature(String),
    /// The CRC in the header is not the CRC of the file.
    #[error(
        "CRC mismatch: the header says {expected:08x}, the contents give {actual:08x}: the \
         image is corrupted or was modified"
    )]
    Crc {
        /// The header's CRC.
        expected: u32,
        /// The CRC of the contents.
        actual: u32,
    },
    /// The file changed while it was being measured.
    #[error("{}: changed while it was being measured", .0.display())]
    Changed(PathBuf),
    /// The EIF crate's reader refused the file.
    #[error("EIF reader: {0}")]
    Reader(String),
    /// The kernel command line has a NUL byte (it is written as a C string).
    #[error("the kernel command line contains a NUL byte")]
    NulInCmdline,
    /// No ramdisk, or more than fit.
    #[error("{0} ramdisks: an image needs the bootstrap ramdisk and at most {MAX_RAMDISKS} in all")]
    RamdiskCount(usize),
    /// `SOURCE_DATE_EPOCH` is not a usable time.
    #[error("SOURCE_DATE_EPOCH {0:?} is not a whole number of seconds since 1970")]
    SourceDateEpoch(String),
    /// The EIF crate's builder failed.
    #[error("EIF builder: {0}")]
    Builder(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EifError + '_ {
    move |error| EifError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// A section's type (the EIF format's `EifSectionType`, as stored: big-endian u16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    /// The kernel (bzImage / Image).
    Kernel,
    /// The kernel command line.
    Cmdline,
    /// A ramdisk (initramfs).
    Ramdisk,
    /// The PCR0 signature and signing certificate.
    Signature,
    /// Build metadata (JSON; not measured).
    Metadata,
}

impl SectionKind {
    /// The type for a stored value; 0 ("invalid") and unknown values are `None`.
    pub fn from_u16(value: u16) -> Option<Self> {
        Some(match value {
            1 => Self::Kernel,
            2 => Self::Cmdline,
            3 => Self::Ramdisk,
            4 => Self::Signature,
            5 => Self::Metadata,
            _ => return None,
        })
    }
}

impl std::fmt::Display for SectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Kernel => "kernel",
            Self::Cmdline => "cmdline",
            Self::Ramdisk => "ramdisk",
            Self::Signature => "signature",
            Self::Metadata => "metadata",
        })
    }
}

/// One section as found in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    /// Its type.
    pub kind: SectionKind,
    /// Where its section header starts.
    pub offset: u64,
    /// The size of its data (after the section header).
    pub size: u64,
}

/// The checked layout of an image.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The header.
    pub header: EifHeader,
    /// The sections, in file order.
    pub sections: Vec<Section>,
}

fn read_at<R: Read + Seek>(r: &mut R, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    r.seek(SeekFrom::Start(offset))?;
    r.read_exact(buf)
}

/// Checks the layout of an image of `len` bytes without reading section contents, so a
/// forged size costs nothing: every size is checked against what the file holds before
/// anything of that size could be allocated.
pub fn check_layout<R: Read + Seek>(r: &mut R, len: u64) -> Result<Layout, LayoutError> {
    if len < HEADER_SIZE {
        return Err(EifError::ShortHeader(len).into());
    }
    let mut raw = [0u8; EifHeader::size()];
    read_at(r, 0, &mut raw)?;
    if raw[..4] != EIF_MAGIC {
        return Err(EifError::BadMagic([raw[0], raw[1], raw[2], raw[3]]).into());
    }
    // Exactly `size()` bytes: the crate's parser cannot fail or panic on them.
    let header = EifHeader::from_be_bytes(&raw).map_err(EifError::Reader)?;
    if !(2..=CURRENT_VERSION).contains(&header.version) {
        return Err(EifError::Version(header.version).into());
    }
    let listed = usize::from(header.num_sections);
    if listed > MAX_NUM_SECTIONS {
        return Err(EifError::TooManySections(listed).into());
    }

    let mut sections = Vec::with_capacity(listed);
    let mut offset = HEADER_SIZE;
    while offset < len {
        let index = sections.len();
        if index == MAX_NUM_SECTIONS {
            return Err(EifError::TooManySections(index + 1).into());
        }
        let remaining = len - offset;
        if remaining < SECTION_HEADER_SIZE {
            return Err(EifError::TruncatedSectionHeader {
                index,
                offset,
                remaining,
            }
            .into());
        }
        let mut sh = [0u8; EifSectionHeader::size()];
        read_at(r, offset, &mut sh)?;
        let value = u16::from_be_bytes([sh[0], sh[1]]);
        let kind = SectionKind::from_u16(value).ok_or(EifError::UnknownSectionType {
            index,
            offset,
            value,
        })?;
        let size = u64::from_be_bytes([sh[4], sh[5], sh[6], sh[7], sh[8], sh[9], sh[10], sh[11]]);
        let remaining = remaining - SECTION_HEADER_SIZE;
        if size > remaining {
            return Err(EifError::SectionPastEnd {
                index,
                kind,
                offset,
                size,
                remaining,
            }
            .into());
        }
        sections.push(Section { kind, offset, size });
        offset += SECTION_HEADER_SIZE + size;
    }

    if listed > sections.len() {
        return Err(EifError::Truncated {
            listed,
            found: sections.len(),
            len,
        }
        .into());
    }
    check_table(&header, listed, &sections)?;
    check_order(&sections)?;
    Ok(Layout { header, sections })
}

/// The header's table (count, offsets, sizes) must describe exactly the sections found:
/// the enclave loader finds sections through the table, the measurement walks the file.
fn check_table(header: &EifHeader, listed: usize, sections: &[Section]) -> Result<(), EifError> {
    if listed != sections.len() {
        return Err(EifError::Table(format!(
            "it lists {listed} sections, the file holds {}",
            sections.len()
        )));
    }
    for (i, s) in sections.iter().enumerate() {
        let (o, z) = (header.section_offsets[i], header.section_sizes[i]);
        if (o, z) != (s.offset, s.size) {
            return Err(EifError::Table(format!(
                "section {i} ({}) is {z} bytes at offset {o} in the table, {} bytes at offset \
                 {} in the file",
                s.kind, s.size, s.offset
            )));
        }
    }
    if let Some(i) = (listed..MAX_NUM_SECTIONS)
        .find(|&i| header.section_offsets[i] != 0 || header.section_sizes[i] != 0)
    {
        return Err(EifError::Table(format!(
            "entry {i} is set, past its {listed} sections"
        )));
    }
    Ok(())
}

/// Kernel first, cmdline second, at least one ramdisk, at most one metadata section, and a
/// signature, if any, last: the layout `nitro-cli` (the EIF crate's builder) writes.
fn check_order(sections: &[Section]) -> Result<(), EifError> {
    let count = |k: SectionKind| sections.iter().filter(|s| s.kind == k).count();
    let layout = |m: &str| Err(EifError::Layout(m.to_string()));
    match sections {
        [first, second, ..]
            if first.kind == SectionKind::Kernel && second.kind == SectionKind::Cmdline => {}
        _ => return layout("the first two sections must be the kernel and the cmdline"),
    }
    if count(SectionKind::Kernel) != 1 || count(SectionKind::Cmdline) != 1 {
        return layout("more than one kernel or cmdline section");
    }
    if count(SectionKind::Ramdisk) == 0 {
        return layout("no ramdisk");
    }
    if count(SectionKind::Metadata) > 1 {
        return layout("more than one metadata section");
    }
    match count(SectionKind::Signature) {
        0 => Ok(()),
        1 if sections.last().map(|s| s.kind) == Some(SectionKind::Signature) => Ok(()),
        _ => layout("the signature section must be one, and the last"),
    }
}

/// A layout check's error: the image's fault, or a read that failed.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The image is malformed.
    #[error(transparent)]
    Eif(#[from] EifError),
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl LayoutError {
    fn at(self, path: &Path) -> EifError {
        match self {
            Self::Eif(e) => e,
            Self::Io(e) => io_err(path)(e),
        }
    }
}

/// An image's measurements, as `nitro-cli` prints them: `HashAlgorithm`, `PCR0`, `PCR1`,
/// `PCR2` and, for a signed image, `PCR8` (hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurements(pub BTreeMap<String, String>);

/// The hash algorithm's name as `nitro-cli` prints it. The EIF crate writes the `Debug` form
/// of its hasher, which with sha2 0.10 reads `Sha512_48 { .. }` (SHA-384 is SHA-512's
/// 48-byte variant); the reader and the builder here always use SHA-384.
pub const HASH_ALGORITHM: &str = "Sha384 { ... }";

impl Measurements {
    /// The crate's map, with the algorithm named as nitro-cli names it.
    fn from_crate(mut map: BTreeMap<String, String>) -> Self {
        map.insert("HashAlgorithm".to_string(), HASH_ALGORITHM.to_string());
        Self(map)
    }

    /// `{"Measurements": {…}}`, the shape `nitro-cli build-enclave` prints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "Measurements": self.0 })
    }
}

/// Opens `path` as a regular file.
fn open_file(path: &Path) -> Result<(File, u64), EifError> {
    let file = File::open(path).map_err(io_err(path))?;
    let meta = file.metadata().map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(EifError::NotAFile(path.to_path_buf()));
    }
    Ok((file, meta.len()))
}

/// Measures the image at `path`: its layout checked first, then read by the EIF crate,
/// whose CRC must match.
pub fn measure(path: &Path) -> Result<Measurements, EifError> {
    let (mut file, len) = open_file(path)?;
    let layout = check_layout(&mut file, len).map_err(|e| e.at(path))?;
    if let Some(sig) = layout
        .sections
        .iter()
        .find(|s| s.kind == SectionKind::Signature)
    {
        check_signature_section(&mut file, sig).map_err(|e| e.at(path))?;
    }

    // The crate opens by path: hand it this open file where the system allows (Linux), so
    // what it reads is what was checked, not whatever the path names by then.
    let reader_path = same_file_path(&file).unwrap_or_else(|| path.to_path_buf());
    let reader_path = reader_path
        .to_str()
        .ok_or_else(|| EifError::Reader(format!("{}: not a UTF-8 path", path.display())))?
        .to_string();
    let mut reader = EifReader::from_eif(reader_path).map_err(EifError::Reader)?;
    if file.metadata().map_err(io_err(path))?.len() != len {
        return Err(EifError::Changed(path.to_path_buf()));
    }
    if !reader.check_crc() {
        return Err(EifError::Crc {
            expected: reader.header.eif_crc32,
            actual: reader.eif_crc,
        });
    }
    reader
        .get_measurements()
        .map(Measurements::from_crate)
        .map_err(EifError::Reader)
}

/// A path naming this open file itself (`/proc/self/fd/N`), where there is one.
#[cfg(target_os = "linux")]
fn same_file_path(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    path.exists().then_some(path)
}

#[cfg(not(target_os = "linux"))]
fn same_file_path(_: &File) -> Option<PathBuf> {
    None
}

/// The EIF crate's reader takes the first entry of the signature list unchecked: make sure
/// there is one. The section's size was checked against the file's before this allocation.
fn check_signature_section(file: &mut File, sig: &Section) -> Result<(), LayoutError> {
    let size = usize::try_from(sig.size)
        .map_err(|_| EifError::Signature(format!("{} bytes", sig.size)))?;
    let mut buf = vec![0u8; size];
    read_at(file, sig.offset + SECTION_HEADER_SIZE, &mut buf)?;
    let list: Vec<PcrSignature> =
        ciborium::from_reader(buf.as_slice()).map_err(|e| EifError::Signature(e.to_string()))?;
    if list.is_empty() {
        return Err(EifError::Signature("the list is empty".into()).into());
    }
    Ok(())
}

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildSpec {
    /// The kernel image.
    pub kernel: PathBuf,
    /// The kernel command line.
    pub cmdline: String,
    /// The ramdisks: the first is the bootstrap ramdisk (measured into PCR1), the rest the
    /// application (PCR2).
    pub ramdisks: Vec<PathBuf>,
    /// Where to write the image.
    pub output: PathBuf,
    /// The image name in the metadata.
    pub name: String,
    /// The image version in the metadata.
    pub version: String,
    /// The build time in the metadata, RFC 3339 (see [`build_time`]).
    pub build_time: String,
}

/// The metadata's build time from `SOURCE_DATE_EPOCH` (seconds since 1970), 1970-01-01 when
/// unset, so the same inputs always give the same image.
pub fn build_time(source_date_epoch: Option<&str>) -> Result<String, EifError> {
    let Some(text) = source_date_epoch else {
        return Ok("1970-01-01T00:00:00+00:00".to_string());
    };
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map(|t| t.to_rfc3339())
        .ok_or_else(|| EifError::SourceDateEpoch(text.to_string()))
}

/// Builds an unsigned x86_64 image and returns its measurements (those of the written file,
/// measured again, and checked against what the builder computed). The inputs are checked
/// first, since the EIF crate's builder panics on bad ones; the image is written next to
/// `output` and renamed over it only when complete.
pub fn build(spec: &BuildSpec) -> Result<Measurements, EifError> {
    if spec.cmdline.as_bytes().contains(&0) {
        return Err(EifError::NulInCmdline);
    }
    if spec.ramdisks.is_empty() || spec.ramdisks.len() > MAX_RAMDISKS {
        return Err(EifError::RamdiskCount(spec.ramdisks.len()));
    }
    for path in std::iter::once(&spec.kernel).chain(&spec.ramdisks) {
        open_file(path)?;
    }
    let info = EifIdentityInfo {
        img_name: spec.name.clone(),
        img_version: spec.version.clone(),
        build_info: EifBuildInfo {
            build_time: spec.build_time.clone(),
            build_tool: env!("CARGO_PKG_NAME").to_string(),
            build_tool_version: env!("CARGO_PKG_VERSION").to_string(),
            img_os: "Unknown".to_string(),
            img_kernel: "Unknown".to_string(),
        },
        docker_info: serde_json::Value::Null,
        custom_info: serde_json::Value::Null,
    };

    let file_name = spec
        .output
        .file_name()
        .ok_or_else(|| EifError::NotAFile(spec.output.clone()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = spec.output.with_file_name(temp_name);
    let result = write_image(spec, info, &temp).and_then(|built| {
        std::fs::rename(&temp, &spec.output).map_err(io_err(&spec.output))?;
        Ok(built)
    });
    let built = match result {
        Ok(built) => built,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    let measured = measure(&spec.output)?;
    if measured != built {
        return Err(EifError::Builder(format!(
            "the written image measures {:?}, the builder computed {:?}",
            measured.0, built.0
        )));
    }
    Ok(measured)
}

fn write_image(
    spec: &BuildSpec,
    info: EifIdentityInfo,
    temp: &Path,
) -> Result<Measurements, EifError> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)
        .map_err(io_err(temp))?;
    // Checked above, so the builder's `expect`s should not fire; if a file changes under it
    // anyway, its panic becomes an error here rather than an abort.
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut builder = EifBuilder::new(
            &spec.kernel,
            spec.cmdline.clone(),
            None,
            Sha384::new(),
            0,
            info,
        );
        for ramdisk in &spec.ramdisks {
            builder.add_ramdisk(ramdisk);
        }
        builder.write_to(&mut out)
    }))
    .map_err(|panic| {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        EifError::Builder(format!("failed: {text}"))
    })?;
    out.flush().map_err(io_err(temp))?;
    out.sync_all().map_err(io_err(temp))?;
    Ok(Measurements::from_crate(built))
}

/// The measurements as pretty JSON text, with a final newline.
pub fn to_json_text(m: &Measurements) -> String {
    let mut text = serde_json::to_string_pretty(&m.to_json()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use aws_nitro_enclaves_image_format::defs::EifSectionType;

    /// Where the section count sits in the header (after magic, version, flags, memory,
    /// cpus, reserved), then the table of offsets and of sizes, and the CRC.
    const NUM_SECTIONS_AT: usize = 26;
    /// Where the header's CRC sits (its last four bytes).
    const CRC_AT: usize = EifHeader::size() - 4;
    const OFFSETS_AT: usize = 28;
    const SIZES_AT: usize = OFFSETS_AT + 8 * MAX_NUM_SECTIONS;

    /// Deterministic bytes.
    fn bytes(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
            .collect()
    }

    struct Fixture {
        /// Removed on drop.
        _temp: tempfile::TempDir,
        dir: PathBuf,
        spec: BuildSpec,
    }

    fn fixture(tag: &str, app: &[u8]) -> Fixture {
        let temp = tempfile::Builder::new()
            .prefix(&format!("strongroom-eif-{tag}-"))
            .tempdir()
            .unwrap();
        let dir = temp.path().to_path_buf();
        let kernel = dir.join("bzImage");
        std::fs::write(&kernel, bytes(1, 4096)).unwrap();
        let boot = dir.join("bootstrap.cpio");
        std::fs::write(&boot, bytes(2, 1000)).unwrap();
        let app_path = dir.join("app.cpio");
        std::fs::write(&app_path, app).unwrap();
        let spec = BuildSpec {
            kernel,
            cmdline: "console=ttyS0 reboot=k".into(),
            ramdisks: vec![boot, app_path],
            output: dir.join("image.eif"),
            name: "test".into(),
            version: "1".into(),
            build_time: build_time(None).unwrap(),
        };
        Fixture {
            _temp: temp,
            dir,
            spec,
        }
    }

    /// SHA-384 over 48 zero bytes and SHA-384 of `parts` concatenated.
    fn pcr(parts: &[&[u8]]) -> String {
        let mut inner = Sha384::new();
        for p in parts {
            inner.update(p);
        }
        let mut outer = Sha384::new();
        outer.update([0u8; 48]);
        outer.update(inner.finalize());
        hex::encode(outer.finalize())
    }

    /// CRC-32 (ISO-HDLC, as zlib) over the image minus the header's CRC field, written in.
    fn fix_crc(image: &mut [u8]) {
        let mut crc = !0u32;
        let covered = image[..CRC_AT].iter().chain(&image[EifHeader::size()..]);
        for &b in covered {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        image[CRC_AT..EifHeader::size()].copy_from_slice(&(!crc).to_be_bytes());
    }

    fn measure_bytes(f: &Fixture, image: &[u8]) -> Result<Measurements, EifError> {
        let path = f.dir.join("mutated.eif");
        std::fs::write(&path, image).unwrap();
        measure(&path)
    }

    fn built(tag: &str) -> (Fixture, Vec<u8>) {
        let f = fixture(tag, &bytes(3, 3000));
        build(&f.spec).unwrap();
        let image = std::fs::read(&f.spec.output).unwrap();
        (f, image)
    }

    #[test]
    fn section_kinds_are_the_crates() {
        for (kind, theirs) in [
            (SectionKind::Kernel, EifSectionType::EifSectionKernel),
            (SectionKind::Cmdline, EifSectionType::EifSectionCmdline),
            (SectionKind::Ramdisk, EifSectionType::EifSectionRamdisk),
            (SectionKind::Signature, EifSectionType::EifSectionSignature),
            (SectionKind::Metadata, EifSectionType::EifSectionMetadata),
        ] {
            assert_eq!(SectionKind::from_u16(theirs as u16), Some(kind));
        }
        assert_eq!(SectionKind::from_u16(0), None);
        assert_eq!(SectionKind::from_u16(6), None);
        assert_eq!(HEADER_SIZE, 548);
        assert_eq!(SECTION_HEADER_SIZE, 12);
    }

    #[test]
    fn built_image_measures_as_computed_independently() {
        let f = fixture("pcrs", &bytes(3, 3000));
        let m = build(&f.spec).unwrap();
        let kernel = std::fs::read(&f.spec.kernel).unwrap();
        let boot = std::fs::read(&f.spec.ramdisks[0]).unwrap();
        let app = std::fs::read(&f.spec.ramdisks[1]).unwrap();
        let cmdline = f.spec.cmdline.as_bytes();
        let want: BTreeMap<String, String> = [
            ("HashAlgorithm", "Sha384 { ... }".to_string()),
            ("PCR0", pcr(&[&kernel, cmdline, &boot, &app])),
            ("PCR1", pcr(&[&kernel, cmdline, &boot])),
            ("PCR2", pcr(&[&app])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(m.0, want);
        assert_eq!(measure(&f.spec.output).unwrap(), m);
        let json: serde_json::Value = serde_json::from_str(&to_json_text(&m)).unwrap();
        assert_eq!(json["Measurements"]["PCR2"], want["PCR2"]);

        // Same inputs, same bytes: the metadata holds no time or path of this build.
        let image = std::fs::read(&f.spec.output).unwrap();
        let again = BuildSpec {
            output: f.dir.join("again.eif"),
            ..f.spec.clone()
        };
        build(&again).unwrap();
        assert_eq!(std::fs::read(&again.output).unwrap(), image);
        let text = String::from_utf8_lossy(&image);
        assert!(!text.contains(f.dir.to_str().unwrap()));
        assert!(text.contains("1970-01-01T00:00:00+00:00"));

        // The layout is the one described: kernel, cmdline, metadata, ramdisks.
        let layout = check_layout(&mut std::io::Cursor::new(&image), image.len() as u64).unwrap();
        let kinds: Vec<SectionKind> = layout.sections.iter().map(|s| s.kind).collect();
        use SectionKind::*;
        assert_eq!(kinds, [Kernel, Cmdline, Metadata, Ramdisk, Ramdisk]);
        assert_eq!(layout.sections[0].size, 4096);
    }

    #[test]
    fn only_the_app_ramdisk_changing_changes_pcr2_and_pcr0() {
        let a = fixture("app-a", &bytes(3, 3000));
        let b = fixture("app-b", &bytes(4, 3000));
        let (ma, mb) = (build(&a.spec).unwrap(), build(&b.spec).unwrap());
        assert_eq!(ma.0["PCR1"], mb.0["PCR1"]);
        assert_ne!(ma.0["PCR2"], mb.0["PCR2"]);
        assert_ne!(ma.0["PCR0"], mb.0["PCR0"]);
    }

    #[test]
    fn a_flipped_byte_is_a_crc_mismatch() {
        let (f, mut image) = built("flip");
        let last = image.len() - 10; // inside the app ramdisk
        image[last] ^= 0x01;
        let e = measure_bytes(&f, &image).unwrap_err();
        assert!(matches!(e, EifError::Crc { .. }), "{e}");
        // A forger who fixes the CRC gets a different PCR2, not the same one.
        fix_crc(&mut image);
        let m = measure_bytes(&f, &image).unwrap();
        assert_ne!(m, measure(&f.spec.output).unwrap());
    }

    #[test]
    fn truncated_files_are_refused() {
        let (f, image) = built("trunc");
        for len in [0, 3, 100, 547, 548, 555, 600, image.len() - 1] {
            let e = measure_bytes(&f, &image[..len]).unwrap_err();
            let text = e.to_string();
            assert!(
                matches!(
                    e,
                    EifError::ShortHeader(_)
                        | EifError::TruncatedSectionHeader { .. }
                        | EifError::SectionPastEnd { .. }
                        | EifError::Truncated { .. }
                ),
                "{len}: {text}"
            );
            assert!(text.contains("truncated"), "{text}");
        }
    }

    #[test]
    fn a_forged_section_size_is_refused_before_any_allocation() {
        let (f, mut image) = built("huge");
        // The app ramdisk's section header claims 4 GiB (and the table agrees, CRC fixed).
        let layout = check_layout(&mut std::io::Cursor::new(&image), image.len() as u64).unwrap();
        let s = layout.sections[4];
        let at = s.offset as usize + 4;
        image[at..at + 8].copy_from_slice(&(4u64 << 30).to_be_bytes());
        image[SIZES_AT + 32..SIZES_AT + 40].copy_from_slice(&(4u64 << 30).to_be_bytes());
        fix_crc(&mut image);
        let e = measure_bytes(&f, &image).unwrap_err();
        assert!(
            matches!(e, EifError::SectionPastEnd { size, kind: SectionKind::Ramdisk, .. } if size == 4 << 30),
            "{e}"
        );
        // u64::MAX too: no overflow.
        image[at..at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            measure_bytes(&f, &image).unwrap_err(),
            EifError::SectionPastEnd { .. }
        ));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let (f, image) = built("hdr");
        let case = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut img = image.clone();
            edit(&mut img);
            fix_crc(&mut img);
            measure_bytes(&f, &img).unwrap_err()
        };
        assert!(matches!(case(&|i| i[0] = b'x'), EifError::BadMagic(_)));
        assert!(matches!(case(&|i| i[5] = 9), EifError::Version(9)));
        assert!(matches!(case(&|i| i[5] = 1), EifError::Version(1)));
        let e = case(&|i| i[27] = 33);
        assert!(matches!(e, EifError::TooManySections(33)), "{e}");
        let e = case(&|i| i[NUM_SECTIONS_AT..NUM_SECTIONS_AT + 2].copy_from_slice(&[0xff, 0xff]));
        assert!(matches!(e, EifError::TooManySections(65535)), "{e}");
        // One section fewer in the count, an offset moved, a stray entry past the count.
        assert!(matches!(case(&|i| i[27] -= 1), EifError::Table(_)));
        assert!(matches!(
            case(&|i| i[OFFSETS_AT + 15] ^= 1),
            EifError::Table(_)
        ));
        assert!(matches!(
            case(&|i| i[SIZES_AT + 8 * 10 + 7] = 1),
            EifError::Table(_)
        ));
        // An unknown section type; bytes after the last section.
        let e = case(&|i| i[EifHeader::size() + 1] = 7);
        assert!(
            matches!(
                e,
                EifError::UnknownSectionType {
                    value: 7,
                    index: 0,
                    ..
                }
            ),
            "{e}"
        );
        let e = case(&|i| i.extend_from_slice(&[0u8; 12]));
        assert!(
            matches!(e, EifError::UnknownSectionType { value: 0, .. }),
            "{e}"
        );
        let e = case(&|i| i.extend_from_slice(&[0u8; 5]));
        assert!(matches!(e, EifError::TruncatedSectionHeader { .. }), "{e}");
        // Kernel and cmdline swapped in type.
        let e = case(&|i| {
            let k = EifHeader::size() + 1;
            i[k] = 2;
        });
        assert!(matches!(e, EifError::Layout(_)), "{e}");
    }

    #[test]
    fn an_empty_signature_list_is_refused_not_a_panic() {
        let (f, mut image) = built("sig");
        // Append a signature section holding an empty CBOR array, listed in the table.
        let offset = image.len() as u64;
        image.extend_from_slice(&4u16.to_be_bytes());
        image.extend_from_slice(&0u16.to_be_bytes());
        image.extend_from_slice(&1u64.to_be_bytes());
        image.push(0x80);
        let index = 5;
        image[27] = 6;
        image[OFFSETS_AT + 8 * index..OFFSETS_AT + 8 * index + 8]
            .copy_from_slice(&offset.to_be_bytes());
        image[SIZES_AT + 8 * index..SIZES_AT + 8 * index + 8].copy_from_slice(&1u64.to_be_bytes());
        fix_crc(&mut image);
        let e = measure_bytes(&f, &image).unwrap_err();
        assert!(matches!(e, EifError::Signature(_)), "{e}");
        // Not CBOR at all.
        let last = image.len() - 1;
        image[last] = 0xff;
        fix_crc(&mut image);
        assert!(matches!(
            measure_bytes(&f, &image).unwrap_err(),
            EifError::Signature(_)
        ));
    }

    /// Runs the `openssl` command (scripts/test-env.sh installs it).
    fn openssl(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("the openssl command (scripts/test-env.sh installs it)");
        assert!(status.success(), "openssl {args:?}");
    }

    #[test]
    fn a_signed_image_passes_the_checks_and_has_pcr8_of_its_certificate() {
        use aws_nitro_enclaves_image_format::utils::SignKeyData;
        let f = fixture("signed", &bytes(3, 3000));
        openssl(
            &f.dir,
            &[
                "ecparam",
                "-name",
                "secp384r1",
                "-genkey",
                "-noout",
                "-out",
                "key.pem",
            ],
        );
        openssl(
            &f.dir,
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                "key.pem",
                "-out",
                "cert.pem",
                "-days",
                "1",
                "-subj",
                "/CN=strongroom-test",
            ],
        );
        openssl(
            &f.dir,
            &[
                "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
            ],
        );
        let key = f.dir.join("key.pem");
        let sign = SignKeyData::new(key.to_str().unwrap(), &f.dir.join("cert.pem")).unwrap();
        let info = EifIdentityInfo {
            img_name: "signed".into(),
            img_version: "1".into(),
            build_info: EifBuildInfo {
                build_time: build_time(None).unwrap(),
                build_tool: "test".into(),
                build_tool_version: "0".into(),
                img_os: "Unknown".into(),
                img_kernel: "Unknown".into(),
            },
            docker_info: serde_json::Value::Null,
            custom_info: serde_json::Value::Null,
        };
        let mut builder = EifBuilder::new(
            &f.spec.kernel,
            f.spec.cmdline.clone(),
            Some(sign),
            Sha384::new(),
            0,
            info,
        );
        for r in &f.spec.ramdisks {
            builder.add_ramdisk(r);
        }
        let mut out = File::create(&f.spec.output).unwrap();
        builder.write_to(&mut out);
        drop(out);

        let m = measure(&f.spec.output).unwrap();
        let der = std::fs::read(f.dir.join("cert.der")).unwrap();
        assert_eq!(m.0["PCR8"], pcr(&[&der]));
        let app = std::fs::read(&f.spec.ramdisks[1]).unwrap();
        assert_eq!(m.0["PCR2"], pcr(&[&app]));
        let image = std::fs::read(&f.spec.output).unwrap();
        let layout = check_layout(&mut std::io::Cursor::new(&image), image.len() as u64).unwrap();
        assert_eq!(layout.sections.last().unwrap().kind, SectionKind::Signature);
    }

    #[test]
    fn bad_build_inputs_are_refused_before_the_builder() {
        let f = fixture("inputs", &bytes(3, 100));
        let nul = BuildSpec {
            cmdline: "a\0b".into(),
            ..f.spec.clone()
        };
        assert!(matches!(build(&nul), Err(EifError::NulInCmdline)));
        let missing = BuildSpec {
            kernel: f.dir.join("nope"),
            ..f.spec.clone()
        };
        assert!(matches!(build(&missing), Err(EifError::Io { .. })));
        let dir = BuildSpec {
            ramdisks: vec![f.dir.clone()],
            ..f.spec.clone()
        };
        assert!(matches!(build(&dir), Err(EifError::NotAFile(_))));
        let none = BuildSpec {
            ramdisks: vec![],
            ..f.spec.clone()
        };
        assert!(matches!(build(&none), Err(EifError::RamdiskCount(0))));
        let many = BuildSpec {
            ramdisks: vec![f.spec.ramdisks[0].clone(); MAX_RAMDISKS + 1],
            ..f.spec.clone()
        };
        assert!(matches!(build(&many), Err(EifError::RamdiskCount(30))));
        // The most that fit is fine.
        let most = BuildSpec {
            ramdisks: vec![f.spec.ramdisks[0].clone(); MAX_RAMDISKS],
            ..f.spec.clone()
        };
        build(&most).unwrap();
        // Nothing half-written is left behind by a refused build.
        let names: Vec<_> = std::fs::read_dir(&f.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains(".tmp-")), "{names:?}");
        assert!(measure(&f.dir).is_err());
    }

    #[test]
    fn source_date_epoch() {
        assert_eq!(
            build_time(Some("1700000000")).unwrap(),
            "2023-11-14T22:13:20+00:00"
        );
        assert_eq!(build_time(None).unwrap(), "1970-01-01T00:00:00+00:00");
        for bad in ["", "soon", "1.5", "99999999999999999999"] {
            assert!(build_time(Some(bad)).is_err(), "{bad}");
        }
    }
}
