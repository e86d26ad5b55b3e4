//! The algorithm identifiers KMS uses, and the checks of their parameters.

use cms::spki::AlgorithmIdentifierOwned;
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, EncodingRules, Sequence};

use crate::EnvelopeError;

/// `id-envelopedData` (RFC 5652 § 6.1).
pub(crate) const ID_ENVELOPED_DATA: ObjectIdentifier = rfc5911::ID_ENVELOPED_DATA;
/// `id-data` (RFC 5652 § 4).
pub(crate) const ID_DATA: ObjectIdentifier = rfc5911::ID_DATA;
/// `aes256-CBC` (RFC 3565).
pub(crate) const ID_AES_256_CBC: ObjectIdentifier = rfc5911::ID_AES_256_CBC;
/// `id-RSAES-OAEP` (RFC 8017).
const ID_RSAES_OAEP: ObjectIdentifier = rfc5912::ID_RSAES_OAEP;
/// `id-mgf1` (RFC 8017).
const ID_MGF1: ObjectIdentifier = rfc5912::ID_MGF_1;
/// `id-pSpecified` (RFC 8017).
const ID_P_SPECIFIED: ObjectIdentifier = rfc5912::ID_P_SPECIFIED;
/// `id-sha256` (RFC 5754).
const ID_SHA256: ObjectIdentifier = rfc5912::ID_SHA_256;

/// AES block and IV length.
pub(crate) const AES_BLOCK_LEN: usize = 16;
/// AES-256 key length.
pub(crate) const AES_256_KEY_LEN: usize = 32;

/// `RSAES-OAEP-params` (RFC 8017 A.2.1).
///
/// Every field is `DEFAULT` (SHA-1, MGF1-SHA-1, empty label) in the ASN.1; they are modelled as
/// optional so that an absent hash or mask function is seen, and refused, rather than silently
/// defaulted to SHA-1.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct RsaesOaepParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash_func: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mask_gen_func: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    p_source_func: Option<AlgorithmIdentifierOwned>,
}

/// `sha256` as KMS writes it: with explicit `NULL` parameters.
fn sha256_identifier() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: Some(Any::null()),
    }
}

/// RSAES-OAEP with SHA-256 and MGF1(SHA-256), parameters explicit, as KMS encodes it.
pub(crate) fn rsaes_oaep_sha256_identifier() -> Result<AlgorithmIdentifierOwned, der::Error> {
    let mgf1 = AlgorithmIdentifierOwned {
        oid: ID_MGF1,
        parameters: Some(Any::encode_from(&sha256_identifier())?),
    };
    let params = RsaesOaepParams {
        hash_func: Some(sha256_identifier()),
        mask_gen_func: Some(mgf1),
        p_source_func: None,
    };
    Ok(AlgorithmIdentifierOwned {
        oid: ID_RSAES_OAEP,
        parameters: Some(Any::encode_from(&params)?),
    })
}

/// AES-256-CBC with its IV as parameter.
pub(crate) fn aes256_cbc_identifier(
    iv: &[u8; AES_BLOCK_LEN],
) -> Result<AlgorithmIdentifierOwned, der::Error> {
    Ok(AlgorithmIdentifierOwned {
        oid: ID_AES_256_CBC,
        parameters: Some(Any::encode_from(&OctetString::new(iv.as_slice())?)?),
    })
}

/// Decode `ANY` parameters as `T` under BER, the rules of the surrounding envelope.
fn decode_params<T>(any: &Any) -> Result<T, der::Error>
where
    T: for<'a> der::Choice<'a> + for<'a> der::DecodeValue<'a, Error = der::Error>,
{
    any.decode_as_encoding(EncodingRules::Ber)
}

/// Whether `alg` is SHA-256; parameters may be absent or `NULL` (RFC 5754 § 2 allows both, and
/// KMS and OpenSSL write `NULL`).
fn is_sha256(alg: &AlgorithmIdentifierOwned) -> bool {
    alg.oid == ID_SHA256 && alg.parameters.as_ref().is_none_or(Any::is_null)
}

/// Check that `alg` is RSAES-OAEP with SHA-256, MGF1(SHA-256) and an empty label.
pub(crate) fn check_key_encryption(alg: &AlgorithmIdentifierOwned) -> Result<(), EnvelopeError> {
    use EnvelopeError::UnsupportedKeyEncryption as Unsupported;

    if alg.oid != ID_RSAES_OAEP {
        return Err(Unsupported("not id-RSAES-OAEP"));
    }
    // Absent parameters mean SHA-1 everywhere: refused.
    let params = alg
        .parameters
        .as_ref()
        .ok_or(Unsupported("RSAES-OAEP parameters absent (SHA-1 defaults)"))?;
    let params: RsaesOaepParams =
        decode_params(params).map_err(|_| Unsupported("RSAES-OAEP parameters malformed"))?;

    match &params.hash_func {
        Some(hash) if is_sha256(hash) => {}
        _ => return Err(Unsupported("OAEP hash is not SHA-256")),
    }
    let mgf = params.mask_gen_func.as_ref().ok_or(Unsupported(
        "OAEP mask generation function absent (MGF1-SHA-1 default)",
    ))?;
    if mgf.oid != ID_MGF1 {
        return Err(Unsupported("OAEP mask generation function is not MGF1"));
    }
    let mgf_hash: AlgorithmIdentifierOwned = mgf
        .parameters
        .as_ref()
        .ok_or(Unsupported("MGF1 hash absent"))
        .and_then(|p| decode_params(p).map_err(|_| Unsupported("MGF1 parameters malformed")))?;
    if !is_sha256(&mgf_hash) {
        return Err(Unsupported("MGF1 hash is not SHA-256"));
    }
    // The label source defaults to an empty pSpecified; BER may also spell that out.
    if let Some(source) = &params.p_source_func {
        let label: Option<OctetString> = match (&source.oid, &source.parameters) {
            (oid, Some(p)) if *oid == ID_P_SPECIFIED => decode_params(p).ok(),
            _ => None,
        };
        if !label.is_some_and(|l| l.as_bytes().is_empty()) {
            return Err(Unsupported("OAEP label is not empty"));
        }
    }
    Ok(())
}

/// Check that `alg` is AES-256-CBC and return its IV.
pub(crate) fn check_content_encryption(
    alg: &AlgorithmIdentifierOwned,
) -> Result<[u8; AES_BLOCK_LEN], EnvelopeError> {
    use EnvelopeError::UnsupportedContentEncryption as Unsupported;

    if alg.oid != ID_AES_256_CBC {
        return Err(Unsupported("not aes256-CBC"));
    }
    let iv: OctetString = alg
        .parameters
        .as_ref()
        .ok_or(Unsupported("AES-CBC IV absent"))
        .and_then(|p| {
            decode_params(p).map_err(|_| Unsupported("AES-CBC IV is not an OCTET STRING"))
        })?;
    <[u8; AES_BLOCK_LEN]>::try_from(iv.as_bytes())
        .map_err(|_| Unsupported("AES-CBC IV is not 16 bytes"))
}

/// DER encoding of `value`, for the definite-length pieces of a built envelope.
pub(crate) fn to_der<T: Encode>(value: &T) -> Result<Vec<u8>, EnvelopeError> {
    value.to_der().map_err(EnvelopeError::Encoding)
}

/// Decode a whole input of `T` under BER.
pub(crate) fn from_ber<'a, T: Decode<'a, Error = der::Error>>(
    bytes: &'a [u8],
) -> Result<T, EnvelopeError> {
    T::from_ber(bytes).map_err(EnvelopeError::Malformed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn built_oaep_identifier_passes_its_own_check() {
        check_key_encryption(&rsaes_oaep_sha256_identifier().unwrap()).unwrap();
    }

    #[test]
    fn oaep_without_parameters_is_refused() {
        let alg = AlgorithmIdentifierOwned {
            oid: ID_RSAES_OAEP,
            parameters: None,
        };
        assert!(matches!(
            check_key_encryption(&alg),
            Err(EnvelopeError::UnsupportedKeyEncryption(_))
        ));
    }

    #[test]
    fn oaep_with_sha1_defaults_is_refused() {
        // An empty RSAES-OAEP-params SEQUENCE means SHA-1 / MGF1-SHA-1.
        let params = RsaesOaepParams {
            hash_func: None,
            mask_gen_func: None,
            p_source_func: None,
        };
        let alg = AlgorithmIdentifierOwned {
            oid: ID_RSAES_OAEP,
            parameters: Some(Any::encode_from(&params).unwrap()),
        };
        assert!(matches!(
            check_key_encryption(&alg),
            Err(EnvelopeError::UnsupportedKeyEncryption(_))
        ));
    }

    #[test]
    fn oaep_with_sha256_hash_but_sha1_mgf_is_refused() {
        let sha1 = AlgorithmIdentifierOwned {
            oid: rfc5912::ID_SHA_1,
            parameters: Some(Any::null()),
        };
        let params = RsaesOaepParams {
            hash_func: Some(sha256_identifier()),
            mask_gen_func: Some(AlgorithmIdentifierOwned {
                oid: ID_MGF1,
                parameters: Some(Any::encode_from(&sha1).unwrap()),
            }),
            p_source_func: None,
        };
        let alg = AlgorithmIdentifierOwned {
            oid: ID_RSAES_OAEP,
            parameters: Some(Any::encode_from(&params).unwrap()),
        };
        assert!(matches!(
            check_key_encryption(&alg),
            Err(EnvelopeError::UnsupportedKeyEncryption(
                "MGF1 hash is not SHA-256"
            ))
        ));
    }

    #[test]
    fn oaep_label_explicit_empty_is_accepted_and_non_empty_refused() {
        let with_label = |label: &[u8]| {
            let mgf1 = AlgorithmIdentifierOwned {
                oid: ID_MGF1,
                parameters: Some(Any::encode_from(&sha256_identifier()).unwrap()),
            };
            let params = RsaesOaepParams {
                hash_func: Some(sha256_identifier()),
                mask_gen_func: Some(mgf1),
                p_source_func: Some(AlgorithmIdentifierOwned {
                    oid: ID_P_SPECIFIED,
                    parameters: Some(Any::encode_from(&OctetString::new(label).unwrap()).unwrap()),
                }),
            };
            AlgorithmIdentifierOwned {
                oid: ID_RSAES_OAEP,
                parameters: Some(Any::encode_from(&params).unwrap()),
            }
        };
        check_key_encryption(&with_label(b"")).unwrap();
        assert!(matches!(
            check_key_encryption(&with_label(b"label")),
            Err(EnvelopeError::UnsupportedKeyEncryption(
                "OAEP label is not empty"
            ))
        ));
    }

    #[test]
    fn sha256_parameters_absent_or_null_only() {
        assert!(is_sha256(&sha256_identifier()));
        assert!(is_sha256(&AlgorithmIdentifierOwned {
            oid: ID_SHA256,
            parameters: None
        }));
        assert!(!is_sha256(&AlgorithmIdentifierOwned {
            oid: ID_SHA256,
            parameters: Some(Any::encode_from(&OctetString::new(*b"x").unwrap()).unwrap()),
        }));
    }

    #[test]
    fn aes_iv_must_be_16_bytes() {
        let iv = [7u8; AES_BLOCK_LEN];
        assert_eq!(
            check_content_encryption(&aes256_cbc_identifier(&iv).unwrap()).unwrap(),
            iv
        );
        let short = AlgorithmIdentifierOwned {
            oid: ID_AES_256_CBC,
            parameters: Some(Any::encode_from(&OctetString::new([0u8; 8]).unwrap()).unwrap()),
        };
        assert!(matches!(
            check_content_encryption(&short),
            Err(EnvelopeError::UnsupportedContentEncryption(_))
        ));
        let aes128 = AlgorithmIdentifierOwned {
            oid: rfc5911::ID_AES_128_CBC,
            parameters: Some(Any::encode_from(&OctetString::new(iv).unwrap()).unwrap()),
        };
        assert!(matches!(
            check_content_encryption(&aes128),
            Err(EnvelopeError::UnsupportedContentEncryption(
                "not aes256-CBC"
            ))
        ));
    }
}
