//! What is stored beside an object's bytes: its content type, user
//! metadata (bounded as S3 bounds it), ETag (hex MD5 of the bytes, as S3
//! clients check it; a multipart upload's is given by the uploader) and the
//! checksums an S3 client had checked on upload ([`Checksums`]).

use crate::BucketError;
use md5::{Digest, Md5};
use std::collections::BTreeMap;

/// Longest content type accepted.
pub const MAX_CONTENT_TYPE_BYTES: usize = 256;
/// Most bytes of user metadata (names plus values) per object, as S3.
pub const MAX_USER_METADATA_BYTES: usize = 2048;

/// The ETag of an object stored in one piece: the lowercase hex MD5 of its
/// bytes (unquoted; the APIs quote it in the `ETag` header).
pub fn etag(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// The ETag S3 gives an object put together from parts: the hex MD5 of
/// the parts' binary MD5s one after another, then `-` and how many parts.
/// `None` if a part's ETag is not 32 hex digits.
pub fn multipart_etag<'a>(part_etags: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut md5 = Md5::new();
    let mut count = 0usize;
    for part in part_etags {
        let part = part.trim_matches('"');
        if part.len() != 32 {
            return None;
        }
        let mut binary = [0u8; 16];
        for (i, byte) in binary.iter_mut().enumerate() {
            *byte = u8::from_str_radix(part.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        md5.update(binary);
        count += 1;
    }
    Some(format!("{}-{count}", hex(&md5.finalize())))
}

/// Whether `etag` may be stored as an object's ETag: what
/// [`multipart_etag`] or [`etag`] makes.
pub(crate) fn is_etag(etag: &str) -> bool {
    let (digest, count) = etag.split_once('-').unwrap_or((etag, "1"));
    digest.len() == 32
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && !count.is_empty()
        && count.len() <= 5
        && count.bytes().all(|b| b.is_ascii_digit())
}

/// Checksums of an object's bytes, checked when it was uploaded, by
/// algorithm (`crc32`, `crc32c`, `sha1`, `sha256`, `crc64nvme`; values in
/// base64, as S3 gives them), to give back to S3 clients that ask.
///
/// They live in the object's user metadata under names a user's metadata
/// cannot have (`:` is not allowed there), so they need no column of their
/// own; [`Buckets`](crate::Buckets) takes them out of every object it
/// hands on, so `/v1`, functions and listings never see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checksums(BTreeMap<String, String>);

/// The algorithms kept, as S3 names them in lower case.
pub const CHECKSUM_ALGORITHMS: [&str; 5] = ["crc32", "crc32c", "sha1", "sha256", "crc64nvme"];
/// Longest checksum value kept (a SHA-256 in base64 is 44).
const MAX_CHECKSUM_BYTES: usize = 64;
/// What a stored checksum's name starts with.
const CHECKSUM_NAME: &str = "nimbus:checksum:";

impl Checksums {
    /// Adds the checksum of `algorithm` (one of [`CHECKSUM_ALGORITHMS`]);
    /// an unknown algorithm or a value that is not short base64 is
    /// refused.
    pub fn insert(&mut self, algorithm: &str, value: &str) -> Result<(), BucketError> {
        let base64 = value.len() <= MAX_CHECKSUM_BYTES
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        if !CHECKSUM_ALGORITHMS.contains(&algorithm) || !base64 {
            return Err(BucketError::Invalid(format!(
                "`{algorithm}` checksum `{value}` cannot be stored"
            )));
        }
        self.0.insert(algorithm.to_owned(), value.to_owned());
        Ok(())
    }

    /// The checksum of `algorithm`, if one was kept.
    pub fn get(&self, algorithm: &str) -> Option<&str> {
        self.0.get(algorithm).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Puts them into `user_metadata` (already checked as a user's).
    pub(crate) fn store_in(self, user_metadata: &mut BTreeMap<String, String>) {
        for (algorithm, value) in self.0 {
            user_metadata.insert(format!("{CHECKSUM_NAME}{algorithm}"), value);
        }
    }

    /// Takes them out of `user_metadata`, leaving the user's own.
    pub(crate) fn take_from(user_metadata: &mut BTreeMap<String, String>) -> Self {
        let mut taken = Checksums::default();
        user_metadata.retain(|name, value| match name.strip_prefix(CHECKSUM_NAME) {
            Some(algorithm) => {
                taken.0.insert(algorithm.to_owned(), std::mem::take(value));
                false
            }
            None => true,
        });
        taken
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    fn the_etag_is_the_hex_md5_of_the_bytes() {
        assert_eq!(etag(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(etag(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert!(is_etag(&etag(b"abc")));
    }

    #[test]
    fn a_multipart_etag_is_the_md5_of_the_part_md5s_with_the_count() {
        // Two parts "abc" and "def": MD5 over the 32 binary bytes.
        let parts = [etag(b"abc"), etag(b"def")];
        let mut both = Vec::new();
        for p in &parts {
            both.extend((0..16).map(|i| u8::from_str_radix(&p[2 * i..2 * i + 2], 16).unwrap()));
        }
        let expected = format!("{}-2", etag(&both));
        let quoted = format!("\"{}\"", parts[0]);
        assert_eq!(
            multipart_etag([quoted.as_str(), parts[1].as_str()]),
            Some(expected.clone())
        );
        assert!(is_etag(&expected));
        assert_eq!(multipart_etag(["not-an-md5"]), None);
        assert!(!is_etag("abc-2"));
    }

    #[test]
    fn checksums_go_into_user_metadata_and_come_out_again_alone() {
        let mut checksums = Checksums::default();
        checksums.insert("crc32", "NhCmhg==").unwrap();
        checksums
            .insert("sha256", "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")
            .unwrap();
        assert!(checksums.insert("md4", "AAAA").is_err());
        assert!(checksums.insert("crc32", "not base64!").is_err());
        assert!(checksums.insert("crc32", &"A".repeat(65)).is_err());
        let mut user = BTreeMap::from([("owner".to_owned(), "me".to_owned())]);
        check_user_metadata(&user).unwrap();
        checksums.clone().store_in(&mut user);
        // A user cannot give such a name.
        assert!(check_user_metadata(&user).is_err());
        assert_eq!(Checksums::take_from(&mut user), checksums);
        assert_eq!(
            user,
            BTreeMap::from([("owner".to_owned(), "me".to_owned())])
        );
        assert_eq!(checksums.get("crc32"), Some("NhCmhg=="));
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
