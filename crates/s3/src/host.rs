//! Virtual-hosted-style addressing (`BUCKET.DOMAIN`), when the endpoint is
//! given its domain (`--s3-domain`): a request to a host under the domain
//! names its bucket in the host; any other host (the domain itself, an IP
//! address, `localhost`) is path style, so both keep working.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// The domain whose subdomains are buckets.
pub(crate) struct BucketDomain {
    /// Lower case, without a port.
    domain: String,
}

/// Why a domain cannot be the S3 endpoint's.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a domain name (letters, digits and `-` in dot-separated labels, without a port)"
)]
pub struct InvalidDomain(String);

impl BucketDomain {
    pub(crate) fn new(domain: &str) -> Result<Self, InvalidDomain> {
        let valid = !domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !valid {
            return Err(InvalidDomain(domain.to_owned()));
        }
        Ok(BucketDomain {
            domain: domain.to_ascii_lowercase(),
        })
    }

    /// The bucket `host` (a `Host` header, maybe with a port) names, if it
    /// is a subdomain of the domain.
    fn bucket<'a>(&self, host: &'a str) -> Option<&'a str> {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let cut = name.len().checked_sub(self.domain.len() + 1)?;
        let (bucket, rest) = name.split_at(cut);
        (rest.starts_with('.')
            && rest[1..].eq_ignore_ascii_case(&self.domain)
            && !bucket.is_empty())
        .then_some(bucket)
    }
}

impl S3Host for BucketDomain {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket(host) {
            Some(bucket) => VirtualHost::new(self.domain.as_str()).with_bucket(bucket),
            None => VirtualHost::new(host),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_name_buckets_and_other_hosts_are_path_style() {
        let d = BucketDomain::new("s3.example.test").unwrap();
        assert_eq!(d.bucket("photos.s3.example.test:9000"), Some("photos"));
        assert_eq!(d.bucket("Photos.S3.Example.Test"), Some("Photos"));
        assert_eq!(d.bucket("my.bucket.s3.example.test"), Some("my.bucket"));
        assert_eq!(d.bucket("s3.example.test:9000"), None);
        assert_eq!(d.bucket(".s3.example.test"), None);
        assert_eq!(d.bucket("photos.s3.example.test.evil"), None);
        assert_eq!(d.bucket("photoss3.example.test"), None);
        assert_eq!(d.bucket("localhost:9000"), None);
        for bad in [
            "",
            "s3..test",
            "s3.example.test:9000",
            "-s3.test",
            "s3_x.test",
        ] {
            assert!(BucketDomain::new(bad).is_err(), "{bad}");
        }
    }
}
