//! `nimbus:function/buckets`: get, put, delete and list objects of a bucket
//! the function is granted (`bucket:NAME:read|write`, optionally narrowed to
//! a key prefix with `bucket:NAME/PREFIX:...`). The key is checked, then the
//! grant, before the bucket is touched.

use crate::state::InvocationState;
use nimbus_bucket::{BucketError, PutOptions};
use nimbus_store::{ListQuery, ObjectMeta};
use nimbus_trace::SpanKind;
use nimbus_wit::buckets::{Host, ObjectInfo};
use nimbus_wit::types::Error;

/// Objects one `list` call returns.
const LIST_LIMIT: u32 = 1000;

/// Read or write.
#[derive(Clone, Copy)]
enum Access {
    Read,
    Write,
}

impl Access {
    fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

fn info(meta: ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        key: meta.key,
        size: meta.size,
        etag: meta.etag,
        content_type: meta.content_type,
    }
}

impl InvocationState {
    /// Checks the bucket name and key (so nothing unbounded reaches the
    /// audit log), then the grant: `Ok(())` or the guest-visible error.
    fn bucket_access(&self, bucket: &str, key: &str, access: Access) -> Result<(), Error> {
        let caps = &self.capabilities;
        if bucket.is_empty() || bucket.len() > 63 {
            return Err(Error::Invalid("a bucket name is 1 to 63 bytes".to_owned()));
        }
        nimbus_manifest::bucket::check_key_prefix(key).map_err(Error::Invalid)?;
        let granted = match access {
            Access::Read => &caps.grants.bucket_read,
            Access::Write => &caps.grants.bucket_write,
        };
        let prefixes: Vec<&String> = granted
            .iter()
            .filter(|(b, _)| b == bucket)
            .map(|(_, prefix)| prefix)
            .collect();
        if prefixes.iter().any(|p| key.starts_with(p.as_str())) {
            return Ok(());
        }
        let action = access.as_str();
        Err(if prefixes.is_empty() || key.is_empty() {
            caps.deny(format!("bucket:{bucket}:{action}"))
        } else {
            caps.deny(format!("bucket:{bucket}/{key}:{action}"))
        })
    }

    fn bucket_error(&self, e: BucketError) -> Error {
        let caps = &self.capabilities;
        match e {
            BucketError::NoSuchBucket(b) => Error::NotFound(format!("bucket `{b}`")),
            BucketError::NoSuchKey(k) => Error::NotFound(format!("object `{k}`")),
            e @ (BucketError::InvalidKey(_)
            | BucketError::Invalid(_)
            | BucketError::TooLarge { .. }
            | BucketError::RangeNotSatisfiable { .. }) => Error::Invalid(e.to_string()),
            e => {
                tracing::error!(function = %caps.function, invocation_id = %caps.invocation_id, "bucket call failed: {e}");
                Error::Unavailable("the bucket is unavailable; see the server log".to_owned())
            }
        }
    }
}

impl Host for InvocationState {
    async fn get(
        &mut self,
        bucket: String,
        key: String,
    ) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        if let Err(e) = self.bucket_access(&bucket, &key, Access::Read) {
            return Ok(Err(e));
        }
        let caps = &self.capabilities;
        let mut span = caps.span(format!("get {bucket}"), SpanKind::Client);
        let got = caps.services.buckets.get(&bucket, &key, None).await;
        if let Err(e) = &got {
            span.fail(e.to_string());
        }
        span.end();
        Ok(got
            .map(|o| o.bytes.to_vec())
            .map_err(|e| self.bucket_error(e)))
    }

    async fn put(
        &mut self,
        bucket: String,
        key: String,
        body: Vec<u8>,
        content_type: Option<String>,
    ) -> wasmtime::Result<Result<ObjectInfo, Error>> {
        if let Err(e) = self.bucket_access(&bucket, &key, Access::Write) {
            return Ok(Err(e));
        }
        let caps = &self.capabilities;
        let mut span = caps.span(format!("put {bucket}"), SpanKind::Producer);
        let options = PutOptions {
            content_type,
            traceparent: Some(span.context.to_traceparent()),
            ..PutOptions::default()
        };
        let put = caps
            .services
            .buckets
            .put(&bucket, &key, body.into(), options)
            .await;
        if let Err(e) = &put {
            span.fail(e.to_string());
        }
        span.end();
        Ok(put.map(info).map_err(|e| self.bucket_error(e)))
    }

    async fn delete(
        &mut self,
        bucket: String,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        if let Err(e) = self.bucket_access(&bucket, &key, Access::Write) {
            return Ok(Err(e));
        }
        let caps = &self.capabilities;
        let mut span = caps.span(format!("delete {bucket}"), SpanKind::Producer);
        let traceparent = Some(span.context.to_traceparent());
        let deleted = caps
            .services
            .buckets
            .delete(&bucket, &key, traceparent)
            .await;
        if let Err(e) = &deleted {
            span.fail(e.to_string());
        }
        span.end();
        Ok(deleted.map_err(|e| self.bucket_error(e)))
    }

    async fn list_objects(
        &mut self,
        bucket: String,
        prefix: String,
        start_after: Option<String>,
    ) -> wasmtime::Result<Result<Vec<ObjectInfo>, Error>> {
        if let Err(e) = self.bucket_access(&bucket, &prefix, Access::Read) {
            return Ok(Err(e));
        }
        let caps = &self.capabilities;
        let query = ListQuery {
            prefix,
            delimiter: None,
            start_after,
            limit: LIST_LIMIT,
        };
        let listed = caps.services.buckets.list(&bucket, query).await;
        Ok(listed
            .map(|page| page.objects.into_iter().map(info).collect())
            .map_err(|e| self.bucket_error(e)))
    }
}
