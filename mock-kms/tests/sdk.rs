//! The mock KMS driven by the real `aws-sdk-kms` client over HTTP, in-process.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyEncryptionMechanism, RecipientInfo};
use serde_json::json;
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_attestation::{AttestationRequest, Nsm};
use strongroom_envelope::RecipientKey;
use strongroom_mock_kms::{Config, MockKms};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Server {
    url: String,
    addr: std::net::SocketAddr,
    client: aws_sdk_kms::Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), strongroom_mock_kms::Error>>,
}

impl Server {
    async fn start(config: Config) -> Self {
        let kms = MockKms::open(config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(kms.serve(listener, async {
            let _ = stopped.await;
        }));
        let url = format!("http://{addr}");
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&url)
            .credentials_provider(Credentials::new("mock", "mock", None, None, "test"))
            .build();
        Self {
            url,
            addr,
            client: aws_sdk_kms::Client::from_conf(conf),
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

fn nsm_config() -> MockNsmConfig {
    MockNsmConfig::default()
}

fn pcr0_hex() -> String {
    hex::encode(&nsm_config().pcrs[&0])
}

/// Allows the key-management actions unconditionally and the data-key actions only to an
/// enclave whose PCR0 is `pcr0`.
fn attested_policy(pcr0: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Manage", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
             "Action": ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:CreateAlias"],
             "Resource": "*"},
            {"Sid": "Enclave", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/proxy"},
             "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
             "Condition": {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": pcr0}}}
        ]
    })
    .to_string()
}

fn recipient(document: Vec<u8>) -> RecipientInfo {
    RecipientInfo::builder()
        .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
        .attestation_document(Blob::new(document))
        .build()
}

fn document(nsm: &MockNsm, key: &RecipientKey) -> Vec<u8> {
    nsm.attestation(&AttestationRequest {
        public_key: Some(key.public_key_spki_der().to_vec()),
        ..Default::default()
    })
    .unwrap()
}

fn root_path(dir: &Path) -> PathBuf {
    dir.join("mock-nsm").join("root.pem")
}

async fn create_key(server: &Server, policy: Option<String>) -> String {
    let out = server
        .client
        .create_key()
        .set_policy(policy)
        .send()
        .await
        .unwrap();
    out.key_metadata().unwrap().key_id().to_string()
}

#[tokio::test]
async fn create_describe_and_aliases_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config::new(dir.path())).await;
    let kms = &server.client;

    let created = kms
        .create_key()
        .description("test key")
        .send()
        .await
        .unwrap();
    let meta = created.key_metadata().unwrap();
    let id = meta.key_id().to_string();
    let arn = format!("arn:aws:kms:us-east-1:111122223333:key/{id}");
    assert_eq!(meta.arn(), Some(arn.as_str()));
    assert_eq!(meta.aws_account_id(), Some("111122223333"));
    assert!(meta.enabled());
    assert_eq!(meta.description(), Some("test key"));
    assert_eq!(meta.key_usage().unwrap().as_str(), "ENCRYPT_DECRYPT");
    assert_eq!(meta.key_state().unwrap().as_str(), "Enabled");
    assert_eq!(meta.origin().unwrap().as_str(), "AWS_KMS");
    assert_eq!(meta.key_manager().unwrap().as_str(), "CUSTOMER");
    assert_eq!(meta.key_spec().unwrap().as_str(), "SYMMETRIC_DEFAULT");
    #[allow(deprecated)]
    let cmk_spec = meta
        .customer_master_key_spec()
        .unwrap()
        .as_str()
        .to_string();
    assert_eq!(cmk_spec, "SYMMETRIC_DEFAULT");
    assert_eq!(
        meta.encryption_algorithms()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        ["SYMMETRIC_DEFAULT"]
    );
    assert_eq!(meta.multi_region(), Some(false));
    let created_at = meta.creation_date().unwrap().secs();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - created_at).abs() < 60, "{created_at} vs {now}");

    kms.create_alias()
        .alias_name("alias/strongroom")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let alias_arn = "arn:aws:kms:us-east-1:111122223333:alias/strongroom";
    for reference in [id.as_str(), arn.as_str(), "alias/strongroom", alias_arn] {
        let described = kms.describe_key().key_id(reference).send().await.unwrap();
        assert_eq!(
            described.key_metadata().unwrap().key_id(),
            id,
            "{reference}"
        );
    }

    let again = kms
        .create_alias()
        .alias_name("alias/strongroom")
        .target_key_id(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(again.is_already_exists_exception(), "{again:?}");
    let reserved = kms
        .create_alias()
        .alias_name("alias/aws/s3")
        .target_key_id(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(reserved.is_invalid_alias_name_exception(), "{reserved:?}");

    let second = create_key(&server, None).await;
    kms.create_alias()
        .alias_name("alias/other")
        .target_key_id(&second)
        .send()
        .await
        .unwrap();
    let all = kms.list_aliases().send().await.unwrap();
    let names: Vec<_> = all
        .aliases()
        .iter()
        .filter_map(|a| a.alias_name())
        .collect();
    assert_eq!(names, ["alias/other", "alias/strongroom"]);
    assert!(!all.truncated());
    let entry = &all.aliases()[1];
    assert_eq!(entry.alias_arn(), Some(alias_arn));
    assert_eq!(entry.target_key_id(), Some(id.as_str()));
    assert!(entry.creation_date().is_some());

    let page = kms.list_aliases().limit(1).send().await.unwrap();
    assert_eq!(page.aliases().len(), 1);
    assert!(page.truncated());
    let rest = kms
        .list_aliases()
        .marker(page.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.aliases()[0].alias_name(), Some("alias/strongroom"));
    let filtered = kms.list_aliases().key_id(&second).send().await.unwrap();
    assert_eq!(filtered.aliases().len(), 1);
    assert_eq!(filtered.aliases()[0].alias_name(), Some("alias/other"));

    // Default policy, then a replacement, read back verbatim.
    let policy = kms.get_key_policy().key_id(&id).send().await.unwrap();
    assert_eq!(policy.policy_name(), Some("default"));
    assert!(policy.policy().unwrap().contains("kms:*"));
    let new_policy = attested_policy(&pcr0_hex());
    kms.put_key_policy()
        .key_id(&arn)
        .policy_name("default")
        .policy(&new_policy)
        .send()
        .await
        .unwrap();
    let read_back = kms.get_key_policy().key_id(&id).send().await.unwrap();
    assert_eq!(read_back.policy(), Some(new_policy.as_str()));
    let by_alias = kms
        .get_key_policy()
        .key_id("alias/strongroom")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(by_alias.is_not_found_exception(), "{by_alias:?}");

    server.stop().await;
}

#[tokio::test]
async fn data_keys_round_trip_without_recipient_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config::new(dir.path())).await;
    let id = create_key(&server, None).await;
    server
        .client
        .create_alias()
        .alias_name("alias/strongroom")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();

    let generated = server
        .client
        .generate_data_key()
        .key_id("alias/strongroom")
        .key_spec(DataKeySpec::Aes256)
        .encryption_context("purpose", "root-key")
        .send()
        .await
        .unwrap();
    let plaintext = generated.plaintext().unwrap().as_ref().to_vec();
    assert_eq!(plaintext.len(), 32);
    assert!(generated.ciphertext_for_recipient().is_none());
    assert_eq!(
        generated.key_id().unwrap(),
        format!("arn:aws:kms:us-east-1:111122223333:key/{id}")
    );
    let blob = generated.ciphertext_blob().unwrap().clone();

    let decrypted = server
        .client
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("purpose", "root-key")
        .send()
        .await
        .unwrap();
    assert_eq!(
        decrypted.plaintext().unwrap().as_ref(),
        plaintext.as_slice()
    );
    assert_eq!(
        decrypted.encryption_algorithm().unwrap().as_str(),
        "SYMMETRIC_DEFAULT"
    );
    assert_eq!(decrypted.key_id(), generated.key_id());

    let sized = server
        .client
        .generate_data_key()
        .key_id(&id)
        .number_of_bytes(1024)
        .send()
        .await
        .unwrap();
    assert_eq!(sized.plaintext().unwrap().as_ref().len(), 1024);
    let aes128 = server
        .client
        .generate_data_key()
        .key_id(&id)
        .key_spec(DataKeySpec::Aes128)
        .send()
        .await
        .unwrap();
    assert_eq!(aes128.plaintext().unwrap().as_ref().len(), 16);
    assert_ne!(
        sized.plaintext().unwrap().as_ref()[..32],
        plaintext[..],
        "data keys must be fresh"
    );

    server.stop().await;

    let restarted = Server::start(Config::new(dir.path())).await;
    let again = restarted
        .client
        .decrypt()
        .ciphertext_blob(blob)
        .encryption_context("purpose", "root-key")
        .key_id("alias/strongroom")
        .send()
        .await
        .unwrap();
    assert_eq!(again.plaintext().unwrap().as_ref(), plaintext.as_slice());
    restarted.stop().await;
}

#[tokio::test]
async fn recipient_gets_an_envelope_instead_of_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    // The root does not exist yet when the server starts: the mock NSM writes it later.
    let server =
        Server::start(Config::new(dir.path().join("kms")).attestation_root(root_path(dir.path())))
            .await;
    let id = create_key(&server, Some(attested_policy(&pcr0_hex()))).await;
    server
        .client
        .create_alias()
        .alias_name("alias/strongroom")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let nsm = MockNsm::open_or_create(&dir.path().join("mock-nsm"), nsm_config()).unwrap();

    let first_boot = RecipientKey::generate().unwrap();
    let generated = server
        .client
        .generate_data_key()
        .key_id("alias/strongroom")
        .key_spec(DataKeySpec::Aes256)
        .recipient(recipient(document(&nsm, &first_boot)))
        .send()
        .await
        .unwrap();
    assert!(generated.plaintext().is_none(), "Plaintext must be absent");
    let envelope = generated.ciphertext_for_recipient().unwrap().as_ref();
    let root_key = first_boot.open(envelope).unwrap();
    assert_eq!(root_key.len(), 32);
    let stored_blob = generated.ciphertext_blob().unwrap().clone();

    // A later boot: new ephemeral key, new document, Decrypt of the stored blob.
    let second_boot = RecipientKey::generate().unwrap();
    let decrypted = server
        .client
        .decrypt()
        .ciphertext_blob(stored_blob.clone())
        .key_id("alias/strongroom")
        .recipient(recipient(document(&nsm, &second_boot)))
        .send()
        .await
        .unwrap();
    assert!(decrypted.plaintext().is_none());
    let reopened = second_boot
        .open(decrypted.ciphertext_for_recipient().unwrap().as_ref())
        .unwrap();
    assert_eq!(reopened.as_slice(), root_key.as_slice());

    // The envelope is addressed to the document's key only.
    let third_boot = RecipientKey::generate().unwrap();
    let bystander = RecipientKey::generate().unwrap();
    let for_third = server
        .client
        .decrypt()
        .ciphertext_blob(stored_blob.clone())
        .recipient(recipient(document(&nsm, &third_boot)))
        .send()
        .await
        .unwrap();
    assert!(
        bystander
            .open(for_third.ciphertext_for_recipient().unwrap().as_ref())
            .is_err()
    );

    // Without Recipient the PCR0 condition key is absent: fail closed.
    let plain = server
        .client
        .decrypt()
        .ciphertext_blob(stored_blob)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(plain.code(), Some("AccessDeniedException"), "{plain:?}");

    server.stop().await;
}

#[tokio::test]
async fn a_different_pcr0_is_access_denied_for_both_operations() {
    let dir = tempfile::tempdir().unwrap();
    let nsm = MockNsm::open_or_create(&dir.path().join("mock-nsm"), nsm_config()).unwrap();
    let server =
        Server::start(Config::new(dir.path().join("kms")).attestation_root(root_path(dir.path())))
            .await;
    // Start permissive to get a blob, then lock the key to another image.
    let id = create_key(&server, None).await;
    let blob = server
        .client
        .generate_data_key()
        .key_id(&id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone();
    let other_image = hex::encode([0x5au8; 48]);
    server
        .client
        .put_key_policy()
        .key_id(&id)
        .policy(attested_policy(&other_image))
        .send()
        .await
        .unwrap();

    let key = RecipientKey::generate().unwrap();
    let generate = server
        .client
        .generate_data_key()
        .key_id(&id)
        .key_spec(DataKeySpec::Aes256)
        .recipient(recipient(document(&nsm, &key)))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    // AccessDeniedException is not a modelled error of the KMS operations, so the SDK
    // surfaces it through its error metadata, as it does for real KMS.
    assert_eq!(
        generate.code(),
        Some("AccessDeniedException"),
        "{generate:?}"
    );
    assert!(generate.message().unwrap().contains("kms:GenerateDataKey"));

    let decrypt = server
        .client
        .decrypt()
        .ciphertext_blob(blob)
        .recipient(recipient(document(&nsm, &key)))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(decrypt.code(), Some("AccessDeniedException"), "{decrypt:?}");
    let message = decrypt.message().unwrap();
    assert!(message.contains("kms:Decrypt"), "{message}");
    assert!(
        !message.contains(&pcr0_hex()),
        "the caller is not told the PCRs: {message}"
    );

    server.stop().await;
}

#[tokio::test]
async fn untrusted_old_tampered_or_keyless_documents_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nsm = MockNsm::open_or_create(&dir.path().join("mock-nsm"), nsm_config()).unwrap();
    let server =
        Server::start(Config::new(dir.path().join("kms")).attestation_root(root_path(dir.path())))
            .await;
    let id = create_key(&server, Some(attested_policy(&pcr0_hex()))).await;
    let key = RecipientKey::generate().unwrap();

    let attempt = |doc: Vec<u8>, algorithm: KeyEncryptionMechanism| {
        let client = server.client.clone();
        let id = id.clone();
        async move {
            client
                .generate_data_key()
                .key_id(id)
                .number_of_bytes(32)
                .recipient(
                    RecipientInfo::builder()
                        .key_encryption_algorithm(algorithm)
                        .attestation_document(Blob::new(doc))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| e.into_service_error())
        }
    };
    let oaep = || KeyEncryptionMechanism::RsaesOaepSha256;

    // The genuine document passes, so the refusals below are about the document.
    assert!(attempt(document(&nsm, &key), oaep()).await.is_ok());

    let stranger = MockNsm::ephemeral(nsm_config()).unwrap();
    let err = attempt(document(&stranger, &key), oaep())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some("AccessDeniedException"),
        "other root: {err:?}"
    );

    let old = nsm
        .attestation_at(
            &AttestationRequest {
                public_key: Some(key.public_key_spki_der().to_vec()),
                ..Default::default()
            },
            SystemTime::now() - Duration::from_secs(6 * 60),
        )
        .unwrap();
    let err = attempt(old, oaep()).await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"), "old: {err:?}");

    // Swap the attested public key for the parent's own (same length): the signature breaks.
    let genuine = document(&nsm, &key);
    let parent_key = RecipientKey::generate().unwrap();
    let spki = key.public_key_spki_der();
    let at = genuine
        .windows(spki.len())
        .position(|w| w == spki)
        .expect("the document carries the key");
    let mut swapped = genuine.clone();
    swapped[at..at + spki.len()].copy_from_slice(parent_key.public_key_spki_der());
    let err = attempt(swapped, oaep()).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("AccessDeniedException"),
        "tampered: {err:?}"
    );
    let mut flipped = genuine.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let err = attempt(flipped, oaep()).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("AccessDeniedException"),
        "bad signature: {err:?}"
    );
    let err = attempt(b"not a document".to_vec(), oaep())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some("AccessDeniedException"),
        "garbage: {err:?}"
    );

    let err = attempt(genuine, KeyEncryptionMechanism::from("RSAES_OAEP_SHA_1"))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some("ValidationException"),
        "algorithm: {err:?}"
    );

    let keyless = nsm.attestation(&AttestationRequest::default()).unwrap();
    let err = attempt(keyless, oaep()).await.unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"), "no key: {err:?}");
    let not_rsa = nsm
        .attestation(&AttestationRequest {
            public_key: Some(b"not an RSA key".to_vec()),
            ..Default::default()
        })
        .unwrap();
    let err = attempt(not_rsa, oaep()).await.unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"), "not RSA: {err:?}");

    server.stop().await;
}

#[tokio::test]
async fn a_replaced_root_file_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let first = MockNsm::open_or_create(&dir.path().join("mock-nsm"), nsm_config()).unwrap();
    let server =
        Server::start(Config::new(dir.path().join("kms")).attestation_root(root_path(dir.path())))
            .await;
    let id = create_key(&server, Some(attested_policy(&pcr0_hex()))).await;
    let generate = |nsm: &MockNsm| {
        let key = RecipientKey::generate().unwrap();
        server
            .client
            .generate_data_key()
            .key_id(&id)
            .key_spec(DataKeySpec::Aes256)
            .recipient(recipient(document(nsm, &key)))
            .send()
    };
    assert!(generate(&first).await.is_ok());

    // A new mock NSM state (its root regenerated) replaces root.pem in place.
    let second = MockNsm::ephemeral(nsm_config()).unwrap();
    std::fs::write(root_path(dir.path()), second.root_pem().unwrap()).unwrap();
    assert!(generate(&second).await.is_ok());
    let err = generate(&first).await.unwrap_err().into_service_error();
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");

    // No root at all: nothing verifies.
    std::fs::remove_file(root_path(dir.path())).unwrap();
    let err = generate(&second).await.unwrap_err().into_service_error();
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");

    server.stop().await;
}

#[tokio::test]
async fn ciphertext_and_key_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config::new(dir.path())).await;
    let kms = &server.client;
    let a = create_key(&server, None).await;
    let b = create_key(&server, None).await;
    let generated = kms
        .generate_data_key()
        .key_id(&a)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context("purpose", "root-key")
        .send()
        .await
        .unwrap();
    let blob = generated.ciphertext_blob().unwrap().as_ref().to_vec();

    let decrypt = |bytes: Vec<u8>, context: &str, key_id: Option<&str>| {
        kms.decrypt()
            .ciphertext_blob(Blob::new(bytes))
            .encryption_context("purpose", context)
            .set_key_id(key_id.map(str::to_string))
            .send()
    };
    assert!(decrypt(blob.clone(), "root-key", None).await.is_ok());

    for index in [0, blob.len() / 2, blob.len() - 1] {
        let mut flipped = blob.clone();
        flipped[index] ^= 0x01;
        let err = decrypt(flipped, "root-key", None)
            .await
            .unwrap_err()
            .into_service_error();
        assert!(
            err.is_invalid_ciphertext_exception(),
            "byte {index}: {err:?}"
        );
    }
    let err = decrypt(blob.clone(), "other", None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_ciphertext_exception(), "{err:?}");

    // The blob of key A relabelled as key B's (same id length): B's material does not open it.
    let mut relabelled = blob.clone();
    relabelled[2..2 + b.len()].copy_from_slice(b.as_bytes());
    let err = decrypt(relabelled, "root-key", None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_ciphertext_exception(), "{err:?}");
    // Asking key B to decrypt key A's blob.
    let err = decrypt(blob.clone(), "root-key", Some(&b))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_incorrect_key_exception(), "{err:?}");

    let unknown = "00000000-1111-4222-8333-444444444444";
    let err = kms
        .describe_key()
        .key_id(unknown)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_not_found_exception(), "{err:?}");
    let err = kms
        .generate_data_key()
        .key_id("alias/missing")
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_not_found_exception(), "{err:?}");
    let err = decrypt(blob.clone(), "root-key", Some(unknown))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_not_found_exception(), "{err:?}");

    let both = kms
        .generate_data_key()
        .key_id(&a)
        .key_spec(DataKeySpec::Aes256)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(both.code(), Some("ValidationException"), "{both:?}");
    let zero = kms
        .generate_data_key()
        .key_id(&a)
        .number_of_bytes(0)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(zero.code(), Some("ValidationException"), "{zero:?}");

    let dry = kms
        .generate_data_key()
        .key_id(&a)
        .key_spec(DataKeySpec::Aes256)
        .dry_run(true)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(dry.is_dry_run_operation_exception(), "{dry:?}");

    let rsa = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob))
        .encryption_context("purpose", "root-key")
        .encryption_algorithm(aws_sdk_kms::types::EncryptionAlgorithmSpec::RsaesOaepSha256)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(rsa.is_invalid_key_usage_exception(), "{rsa:?}");

    server.stop().await;
}

#[tokio::test]
async fn malformed_policies_and_unsupported_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config::new(dir.path())).await;
    let kms = &server.client;
    let typo = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
        "Condition": {"StringEquals": {"kms:RecipientAttestation:PRC0": pcr0_hex()}}
    }]})
    .to_string();
    for policy in [typo.as_str(), "{not json", r#"{"Statement": []}"#] {
        let err = kms
            .create_key()
            .policy(policy)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(
            err.is_malformed_policy_document_exception(),
            "{policy}: {err:?}"
        );
    }
    let id = create_key(&server, None).await;
    let err = kms
        .put_key_policy()
        .key_id(&id)
        .policy(&typo)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_malformed_policy_document_exception(), "{err:?}");

    let err = kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::Rsa2048)
        .key_usage(aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_unsupported_operation_exception(), "{err:?}");
    let err = kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::from("AES_512"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");

    server.stop().await;
}

#[tokio::test]
async fn ensure_key_creates_once() {
    let dir = tempfile::tempdir().unwrap();
    let kms = MockKms::open(Config::new(dir.path())).unwrap();
    let policy = attested_policy(&pcr0_hex());
    let first = kms.ensure_key("alias/strongroom", &policy, "root").unwrap();
    assert!(first.created);
    let second = kms.ensure_key("alias/strongroom", &policy, "root").unwrap();
    assert!(!second.created);
    assert_eq!(first.key_id, second.key_id);
    assert!(matches!(
        kms.ensure_key("alias/other", "{}", "root"),
        Err(strongroom_mock_kms::Error::MalformedPolicy(_))
    ));
    assert!(matches!(
        kms.ensure_key("strongroom", &policy, "root"),
        Err(strongroom_mock_kms::Error::Kms {
            code: "InvalidAliasNameException",
            ..
        })
    ));
    drop(kms);

    // The provisioned key is what the SDK sees after a restart.
    let server = Server::start(Config::new(dir.path())).await;
    let described = server
        .client
        .describe_key()
        .key_id("alias/strongroom")
        .send()
        .await
        .unwrap();
    assert_eq!(described.key_metadata().unwrap().key_id(), first.key_id);
    assert_eq!(
        described.key_metadata().unwrap().arn(),
        Some(first.arn.as_str())
    );
    server.stop().await;
}

/// One raw HTTP/1.1 exchange; returns status line, headers (lowercased) and body.
async fn raw(
    addr: std::net::SocketAddr,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn wire_protocol_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config::new(dir.path())).await;
    let json_type = ("Content-Type", "application/x-amz-json-1.1");

    let (status, head, body) = raw(
        server.addr,
        &[json_type, ("X-Amz-Target", "TrentService.Sign")],
        b"{}",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        head.contains("x-amzn-errortype: unknownoperationexception"),
        "{head}"
    );
    assert!(head.contains("x-amzn-requestid: "), "{head}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["__type"], "UnknownOperationException");

    let (status, _, body) = raw(
        server.addr,
        &[json_type, ("X-Amz-Target", "TrentService.CreateKey")],
        b"{oops",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("SerializationException"), "{body}");

    let (status, _, body) = raw(
        server.addr,
        &[
            ("Content-Type", "text/plain"),
            ("X-Amz-Target", "TrentService.CreateKey"),
        ],
        b"{}",
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let huge = vec![b' '; strongroom_mock_kms::MAX_BODY_LEN + 1];
    let (status, _, _) = raw(
        server.addr,
        &[json_type, ("X-Amz-Target", "TrentService.CreateKey")],
        &huge,
    )
    .await;
    assert_eq!(status, 413);

    // Missing required member, and an empty body for an operation without input.
    let (status, _, body) = raw(
        server.addr,
        &[json_type, ("X-Amz-Target", "TrentService.DescribeKey")],
        b"",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("ValidationException") && body.contains("keyId"),
        "{body}"
    );
    let (status, _, body) = raw(
        server.addr,
        &[json_type, ("X-Amz-Target", "TrentService.ListAliases")],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // InvalidCiphertextException carries no message, as from KMS.
    let blob = "AQ==";
    let (status, _, body) = raw(
        server.addr,
        &[json_type, ("X-Amz-Target", "TrentService.Decrypt")],
        format!(r#"{{"CiphertextBlob": "{blob}"}}"#).as_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body, r#"{"__type":"InvalidCiphertextException"}"#);

    assert!(server.url.starts_with("http://127.0.0.1:"));
    server.stop().await;
}
