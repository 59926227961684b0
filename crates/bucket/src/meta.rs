//! What is stored beside an object's bytes: its content type, user
//! metadata (bounded as S3 bounds it) and ETag (hex SHA-256 of the bytes).

use crate::BucketError;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Longest content type accepted.
pub const MAX_CONTENT_TYPE_BYTES: usize = 256;
/// Most bytes of user metadata (names plus values) per object, as S3.
pub const MAX_USER_METADATA_BYTES: usize = 2048;

pub(crate) fn etag(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn content_type(given: Option<String>) -> Result<String, BucketError> {
    let Some(value) = given.filter(|v| !v.is_empty()) else {
        return Ok(crate::DEFAULT_CONTENT_TYPE.to_owned());
    };
    if value.len() > MAX_CONTENT_TYPE_BYTES || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(BucketError::Invalid(format!(
            "the content type must be at most {MAX_CONTENT_TYPE_BYTES} printable ASCII characters"
        )));
    }
    Ok(value)
}

pub(crate) fn check_user_metadata(meta: &BTreeMap<String, String>) -> Result<(), BucketError> {
    let total: usize = meta.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_USER_METADATA_BYTES {
        return Err(BucketError::Invalid(format!(
            "user metadata is {total} bytes, over the limit of {MAX_USER_METADATA_BYTES}"
        )));
    }
    for (name, value) in meta {
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(BucketError::Invalid(format!(
                "user metadata name `{name}` must be lowercase letters, digits, `-` and `_`"
            )));
        }
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(BucketError::Invalid(format!(
                "user metadata `{name}` must be printable ASCII"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_is_the_hex_sha256_of_the_bytes() {
        assert_eq!(
            etag(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ranges_resolve_against_the_size() {
        use crate::ByteRange;
        let from = |first, last| ByteRange::From { first, last };
        assert_eq!(from(0, Some(3)).resolve(10), Some(0..4));
        assert_eq!(from(5, None).resolve(10), Some(5..10));
        assert_eq!(from(5, Some(100)).resolve(10), Some(5..10));
        assert_eq!(from(10, None).resolve(10), None);
        assert_eq!(from(4, Some(3)).resolve(10), None);
        assert_eq!(ByteRange::Suffix(3).resolve(10), Some(7..10));
        assert_eq!(ByteRange::Suffix(30).resolve(10), Some(0..10));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(from(0, None).resolve(0), None);
    }
}
