//! Where object bytes go on an S3-compatible service: `s3://BUCKET[/PREFIX]`
//! and the connection settings, read the way AWS tools read them
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, and the rest
//! of `AWS_*` that `object_store` knows). Nothing here prints a secret:
//! messages name the bucket, prefix and endpoint only.

use object_store::ClientConfigKey;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as BlobPath;

/// The region when none is set, as the AWS tools assume.
pub const DEFAULT_REGION: &str = "us-east-1";
/// How long one request may take. `object_store`'s 30 s default would fail
/// an upload of the largest object (256 MiB) on a slow link; this stays far
/// below [`crate::UPLOAD_BOUND`], after which an upload's registration ends.
const REQUEST_TIMEOUT: &str = "300 seconds";

/// `s3://BUCKET[/PREFIX]`: an S3 bucket and the key prefix under which
/// Nimbus keeps its blobs (`PREFIX/NIMBUS_BUCKET/BLOB`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

impl S3Location {
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("s3://")
            .ok_or("an S3 location is s3://BUCKET or s3://BUCKET/PREFIX")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules, loosely: enough to keep a mistyped
        // location from turning into a URL that means something else.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            // Not echoed: a mistaken `s3://KEY:SECRET@bucket` lands here.
            return Err(
                "the bucket is not an S3 bucket name (3 to 63 lower-case letters, digits, `-` and `.`)"
                    .to_owned(),
            );
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|part| part == "." || part == "..")
            || prefix.contains("//")
            || prefix.chars().any(char::is_control)
        {
            return Err(format!(
                "`{prefix}` is not a usable key prefix (no empty, `.` or `..` segments)"
            ));
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// Where the blobs of every Nimbus bucket are (`None`: the S3 bucket's
    /// root).
    pub(crate) fn root_path(&self) -> Option<BlobPath> {
        let parts: Vec<&str> = self.prefix.split('/').filter(|p| !p.is_empty()).collect();
        (!parts.is_empty()).then(|| BlobPath::from_iter(parts))
    }

    /// Where the blobs of Nimbus bucket `bucket` are.
    pub(crate) fn bucket_path(&self, bucket: &str) -> BlobPath {
        BlobPath::from_iter(
            self.prefix
                .split('/')
                .filter(|p| !p.is_empty())
                .chain([bucket]),
        )
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix.as_str() {
            "" => write!(f, "s3://{}", self.bucket),
            prefix => write!(f, "s3://{}/{prefix}", self.bucket),
        }
    }
}

/// An S3 location with the settings to reach it.
#[derive(Clone)]
pub struct S3Config {
    pub location: S3Location,
    builder: AmazonS3Builder,
    /// Named in messages; `None` means AWS itself.
    endpoint: Option<String>,
}

/// Names the location and endpoint, never the credentials.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl S3Config {
    /// Settings from the environment, as AWS tools read them: credentials
    /// from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (or a web
    /// identity, the container or instance credentials, as `object_store`
    /// finds them); `AWS_REGION` (else `AWS_DEFAULT_REGION`, else
    /// [`DEFAULT_REGION`]); the endpoint from `AWS_ENDPOINT_URL_S3`, else
    /// `AWS_ENDPOINT_URL`, else AWS.
    pub fn from_env(location: S3Location) -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut builder = base_builder();
        for (key, value) in std::env::vars() {
            if !key.starts_with("AWS_") {
                continue;
            }
            if let Ok(config) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(config, value);
            }
        }
        let region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
        let endpoint = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL"));
        S3Config::finish(location, builder, region, endpoint)
    }

    /// Settings given outright: a static key pair at `endpoint` (tests, and
    /// callers with their own configuration).
    pub fn with_static_credentials(
        location: S3Location,
        endpoint: Option<&str>,
        region: Option<&str>,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Self {
        let builder = base_builder()
            .with_access_key_id(access_key_id)
            .with_secret_access_key(secret_access_key);
        S3Config::finish(
            location,
            builder,
            region.map(str::to_owned),
            endpoint.map(str::to_owned),
        )
    }

    fn finish(
        location: S3Location,
        builder: AmazonS3Builder,
        region: Option<String>,
        endpoint: Option<String>,
    ) -> Self {
        let mut builder = builder
            .with_bucket_name(&location.bucket)
            .with_region(region.unwrap_or_else(|| DEFAULT_REGION.to_owned()));
        if let Some(endpoint) = &endpoint {
            // Services other than AWS: path-style requests (the bucket in
            // the path, not the host name), and plain HTTP when the
            // endpoint says so (a service on a private network or loopback).
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        S3Config {
            location,
            builder,
            endpoint,
        }
    }

    /// `s3://BUCKET/PREFIX at ENDPOINT`, for messages.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("{} at {endpoint}", self.location),
            None => self.location.to_string(),
        }
    }

    pub(crate) fn build(&self) -> Result<AmazonS3, crate::BucketError> {
        self.builder
            .clone()
            .build()
            .map_err(|e| crate::BucketError::Blob(format!("cannot use {}: {e}", self.describe())))
    }
}

fn base_builder() -> AmazonS3Builder {
    AmazonS3Builder::new().with_config(
        AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
        REQUEST_TIMEOUT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_a_bucket_and_an_optional_prefix() {
        let bare = S3Location::parse("s3://media").unwrap();
        assert_eq!((bare.bucket.as_str(), bare.prefix.as_str()), ("media", ""));
        assert_eq!(bare.to_string(), "s3://media");
        let deep = S3Location::parse("s3://media.eu-1/nimbus/prod/").unwrap();
        assert_eq!(deep.prefix, "nimbus/prod");
        assert_eq!(deep.to_string(), "s3://media.eu-1/nimbus/prod");
        assert_eq!(deep.bucket_path("photos").as_ref(), "nimbus/prod/photos");
        assert_eq!(bare.bucket_path("photos").as_ref(), "photos");
        for bad in [
            "media",
            "s3://",
            "s3://Media",
            "s3://ab",
            "s3://a_b",
            "s3://media/../x",
            "s3://media/a//b",
            "s3://user:secret@media",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_description_names_the_place_and_never_the_secret() {
        let config = S3Config::with_static_credentials(
            S3Location::parse("s3://media/p").unwrap(),
            Some("http://127.0.0.1:9000"),
            None,
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI-secret",
        );
        let shown = format!("{config:?} {}", config.describe());
        assert!(shown.contains("s3://media/p at http://127.0.0.1:9000"));
        assert!(!shown.contains("wJalrXUtnFEMI-secret"), "{shown}");
        let built = config.build().unwrap();
        assert!(!format!("{built} {built:?}").contains("wJalrXUtnFEMI-secret"));
    }
}
