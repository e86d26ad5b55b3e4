//! The CLI's use of [`strongroom_client::Client`]: its errors with the CLI's hints (which
//! flag to change, which key stamped), the verifier the global flags ask for, and the
//! helpers that print on stdout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::input::{pcr_file, trusted_root};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use strongroom_client::{Client, ClientError, HeadBook, ProxyRoute, Route, Url, Verifier};

pub use strongroom_client::Answer;

use crate::principal::PrincipalKeySource;

/// What the global flags say about verifying answers.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions<'a> {
    /// `--expect-pcrs FILE`, repeatable (one file a release): verify every enclave answer.
    pub expect_pcrs: &'a [PathBuf],
    /// `--attestation-root aws|PEM-FILE` (default `aws`).
    pub root: Option<&'a str>,
    /// `--expect-genesis HEX`.
    pub genesis: Option<[u8; 32]>,
    /// `--expect-key-check HEX`.
    pub key_check: Option<[u8; 16]>,
    /// `--state-file FILE` / `--no-state`.
    pub state: StateChoice,
}

/// Where verified audit heads are remembered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StateChoice {
    /// The default file ([`strongroom_client::default_state_file`]); in memory if there is
    /// no home directory.
    #[default]
    Default,
    /// This file.
    File(PathBuf),
    /// Nowhere beyond the command.
    None,
}

impl StateChoice {
    /// The file this choice names, if any.
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            StateChoice::Default => strongroom_client::default_state_file(),
            StateChoice::File(p) => Some(p.clone()),
            StateChoice::None => None,
        }
    }
}

impl VerifyOptions<'_> {
    /// The verifier these options describe; `None` without `--expect-pcrs`. A root, genesis
    /// or key check given without it is refused rather than silently not checked.
    pub fn verifier(&self) -> Result<Option<Verifier>> {
        if self.expect_pcrs.is_empty() {
            if self.root.is_some() || self.genesis.is_some() || self.key_check.is_some() {
                bail!(
                    "--attestation-root, --expect-genesis and --expect-key-check take effect \
                     only with --expect-pcrs FILE (nothing would be verified)"
                );
            }
            return Ok(None);
        }
        // One release a file: a document must carry all the PCRs of one of them.
        let mut verifier: Option<Verifier> = None;
        for path in self.expect_pcrs {
            let pcrs = pcr_file("--expect-pcrs", path)?;
            verifier = Some(
                match verifier {
                    None => Verifier::new(pcrs),
                    Some(v) => v.also_trust(pcrs),
                }
                .with_context(|| format!("--expect-pcrs {}", path.display()))?,
            );
        }
        let mut verifier = verifier.context("no --expect-pcrs")?;
        if let Some(spec) = self.root {
            verifier = verifier.with_root(trusted_root("--attestation-root", spec)?);
        }
        if let Some(genesis) = self.genesis {
            verifier = verifier.expect_genesis(genesis);
        }
        if let Some(check) = self.key_check {
            verifier = verifier.expect_key_check(check);
        }
        let path = self.state.path();
        if let Some(warning) = self.pin_warning(path.as_deref())? {
            eprintln!("warning: {warning}");
        }
        let heads = match path {
            Some(p) => HeadBook::open(&p).map_err(cli_error)?,
            None => HeadBook::in_memory(),
        };
        Ok(Some(verifier.with_heads(Arc::new(heads))))
    }

    /// What the pins leave open: half a deployment pinned with nothing to remember the
    /// other half is refused; trust on first use, or no deployment pinned at all, is a
    /// warning (once a command).
    fn pin_warning(&self, state: Option<&std::path::Path>) -> Result<Option<String>> {
        let half = match (self.genesis.is_some(), self.key_check.is_some()) {
            (true, true) => return Ok(None),
            (true, false) => Some("--expect-genesis without --expect-key-check"),
            (false, true) => Some("--expect-key-check without --expect-genesis"),
            (false, false) => None,
        };
        Ok(match (half, state) {
            (Some(half), None) => bail!(
                "{half} does not pin a deployment (the parent can first-boot a fresh enclave \
                 with the one and its own other half) and --no-state leaves nothing to \
                 remember the other half: give both, from the deployment's operators"
            ),
            (Some(half), Some(path)) => Some(format!(
                "{half} does not pin a deployment: the other half is trusted on first use \
                 ({}); give both to pin it",
                path.display()
            )),
            (None, Some(_)) => None,
            (None, None) => Some(
                "no deployment pinned and --no-state: any deployment of the expected images \
                 is accepted, including one the parent booted itself (pin --expect-genesis \
                 and --expect-key-check)"
                    .into(),
            ),
        })
    }
}

/// The CLI's client for one Strongroom server.
#[derive(Debug)]
pub struct Api {
    client: Client,
}

impl Api {
    /// A client for the server at `base`, verifying answers as `verify` says.
    pub fn new(bases: &[String], timeout: Duration, verify: &VerifyOptions<'_>) -> Result<Self> {
        let bases: Vec<&str> = bases.iter().map(String::as_str).collect();
        let mut client = Client::with_replicas(&bases, timeout)
            .map_err(cli_error)?
            .with_notices(|notice| eprintln!("{notice}"));
        if let Some(verifier) = verify.verifier()? {
            client = client.with_verifier(Arc::new(verifier));
        }
        Ok(Self { client })
    }

    /// The library client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Reads `route` from the enclave, expecting 200 (verified with `--expect-pcrs`).
    pub fn get(&self, route: &Route) -> Result<Value> {
        Ok(self.client.get(route).map_err(cli_error)?.body)
    }

    /// GET a URL of this server with a query, like [`Api::get`].
    pub fn get_url(&self, url: &Url) -> Result<Value> {
        Ok(self.client.get_url(url).map_err(cli_error)?.body)
    }

    /// The URL of `path` ([`Route::path`], [`ProxyRoute::path`]) on this server.
    pub fn url(&self, path: &str) -> Url {
        self.client.url(path)
    }

    /// The raw 200 body of an unsigned proxy endpoint (the audit chain's NDJSON), at most
    /// `max_len` bytes.
    pub fn get_bytes(&self, url: &Url, max_len: usize) -> Result<Vec<u8>> {
        self.client
            .get_unsigned_bytes(url, max_len)
            .map_err(cli_error)
    }

    /// GET `route` from the proxy itself (`/v1/health`): never signed.
    pub fn get_unsigned(&self, route: ProxyRoute) -> Result<Value> {
        self.client.get_unsigned(route).map_err(cli_error)
    }

    /// Calls `route` stamped with `key`; see [`Client::stamped`]. A refused stamp names
    /// the key used and where it came from.
    pub fn stamped(
        &self,
        route: &Route,
        body: Option<&[u8]>,
        key: &PrincipalKeySource,
    ) -> Result<Answer> {
        self.client
            .stamped(route, body, &key.key)
            .map_err(|e| match e {
                ClientError::Api { status: 401, .. } => anyhow!(
                    "{e} (the request was stamped with key {} from {})",
                    key.key.public().id(),
                    key.source
                ),
                other => cli_error(other),
            })
    }
}

/// A library error with the flag that governs it named.
pub fn cli_error(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Timeout { .. } => anyhow!("{e} (--timeout)"),
        ClientError::BadUrl { .. } => anyhow!("--url {e}"),
        other => other.into(),
    }
}

/// Prints an answer on stdout as pretty JSON.
pub fn print_json(value: &Value) -> Result<()> {
    print_text(&format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// Writes to stdout. A reader that went away (`strongroom … | head`) is not an error:
/// what it wanted, it has.
pub fn print_text(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::test_support::temp_dir;
    use strongroom_auth::SigningKey;

    /// One request as a socket server received it.
    #[derive(Debug)]
    struct Captured {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Captured {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A minimal HTTP/1.1 server on a real loopback socket: answers each connection with
    /// the next canned (status, body) and reports what it received.
    fn serve(answers: Vec<(u16, &'static str)>) -> (String, std::sync::mpsc::Receiver<Captured>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (status, answer) in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap().to_string();
                let target = parts.next().unwrap().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (n, v) = h.split_once(':').unwrap();
                    headers.push((n.trim().to_string(), v.trim().to_string()));
                }
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                tx.send(Captured {
                    method,
                    target,
                    headers,
                    body,
                })
                .unwrap();
                let mut stream = stream;
                write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                )
                .unwrap();
            }
        });
        (url, rx)
    }

    fn test_key() -> PrincipalKeySource {
        PrincipalKeySource {
            key: SigningKey::ed25519_from_seed(&[42; 32]),
            source: "a test".into(),
        }
    }

    #[test]
    fn stamp_refusals_name_the_key_used() {
        let (url, seen) = serve(vec![(
            401,
            r#"{"error":{"code":"unauthenticated","message":"stamp key 00 is not a principal key"}}"#,
        )]);
        let api = Api::new(
            std::slice::from_ref(&url),
            Duration::from_secs(5),
            &VerifyOptions::default(),
        )
        .unwrap();
        let key = test_key();
        let err = api
            .stamped(&Route::CreateKey, Some(b"{}"), &key)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "401 unauthenticated: stamp key 00 is not a principal key (the request was \
                 stamped with key {} from a test)",
                key.key.public().id()
            )
        );
        let request = seen.recv().unwrap();
        assert_eq!(
            (request.method.as_str(), request.target.as_str()),
            ("POST", "/v1/keys")
        );
        assert_eq!(request.body, b"{}");
        assert!(request.header(strongroom_client::STAMP_HEADER).is_some());
    }

    #[test]
    fn library_errors_name_the_flag() {
        let e = cli_error(ClientError::Timeout {
            url: "http://h/v1/keys".into(),
            secs: 3,
        });
        assert_eq!(
            e.to_string(),
            "no answer from http://h/v1/keys within 3 s (--timeout)"
        );
        let e = Api::new(
            &["ftp://h/".to_string()],
            Duration::from_secs(1),
            &VerifyOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("--url \"ftp://h/\""), "{e}");
    }

    #[test]
    fn verification_options() {
        assert!(VerifyOptions::default().verifier().unwrap().is_none());
        // Pins without PCRs would verify nothing: refused.
        for options in [
            VerifyOptions {
                root: Some("aws"),
                ..VerifyOptions::default()
            },
            VerifyOptions {
                genesis: Some([1; 32]),
                ..VerifyOptions::default()
            },
            VerifyOptions {
                key_check: Some([1; 16]),
                ..VerifyOptions::default()
            },
        ] {
            let e = options.verifier().unwrap_err().to_string();
            assert!(e.contains("only with --expect-pcrs"), "{e}");
        }
        let dir = temp_dir("verify-options");
        let pcrs = dir.join("pcrs.json");
        std::fs::write(&pcrs, format!(r#"{{"PCR0": "{}"}}"#, "ab".repeat(48))).unwrap();
        let verifier = VerifyOptions {
            expect_pcrs: std::slice::from_ref(&pcrs),
            ..VerifyOptions::default()
        }
        .verifier()
        .unwrap()
        .unwrap();
        assert_eq!(
            verifier.root(),
            &strongroom_attestation::TrustedRoot::aws_nitro_g1()
        );
        assert_eq!(verifier.expected_pcrs()[0][&0], vec![0xab; 48]);
        // Several files: one release each, in order; the same release twice counts once.
        let next = dir.join("next.json");
        std::fs::write(&next, format!(r#"{{"PCR0": "{}"}}"#, "cd".repeat(48))).unwrap();
        let verifier = VerifyOptions {
            expect_pcrs: &[pcrs.clone(), next.clone(), pcrs.clone()],
            ..VerifyOptions::default()
        }
        .verifier()
        .unwrap()
        .unwrap();
        let releases: Vec<_> = verifier.expected_pcrs().iter().map(|r| r[&0][0]).collect();
        assert_eq!(releases, [0xab, 0xcd]);

        let nsm = strongroom_attestation::mock::MockNsm::ephemeral(Default::default()).unwrap();
        let root = dir.join("root.pem");
        std::fs::write(&root, nsm.root_pem().unwrap()).unwrap();
        let root_text = root.to_str().unwrap();
        let verifier = VerifyOptions {
            expect_pcrs: std::slice::from_ref(&pcrs),
            root: Some(root_text),
            ..VerifyOptions::default()
        }
        .verifier()
        .unwrap()
        .unwrap();
        use strongroom_attestation::Nsm;
        assert_eq!(verifier.root(), &nsm.trusted_root());

        let e = VerifyOptions {
            expect_pcrs: &[pcrs.clone(), dir.join("missing.json")],
            ..VerifyOptions::default()
        }
        .verifier()
        .unwrap_err();
        assert!(format!("{e:#}").contains("--expect-pcrs"), "{e:#}");
        let e = VerifyOptions {
            expect_pcrs: std::slice::from_ref(&pcrs),
            root: Some(pcrs.to_str().unwrap()),
            ..VerifyOptions::default()
        }
        .verifier()
        .unwrap_err();
        assert!(format!("{e:#}").contains("--attestation-root"), "{e:#}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
