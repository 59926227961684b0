//! Buckets, object triggers and bucket grants: the object-key rule that the
//! manifest, the API and the bucket capability share, and the resolution of
//! `[bucket.NAME]`, `[[trigger.object]]` and `bucket:NAME[/PREFIX]:read|write`.

use crate::diagnostic::Diagnostics;
use crate::raw::{RawBucket, RawObjectTrigger};
use crate::{Bucket, Function, Grant, ObjectEventKind, ObjectTrigger, Queue};
use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;

/// Longest object key, in bytes (as S3).
pub const MAX_KEY_BYTES: usize = 1024;

/// Checks an object key: 1 to 1024 bytes, no NUL or other control
/// character, no backslash, no leading `/`, and no `.` or `..` segment, so
/// no key can name anything outside its bucket on any backend.
pub fn check_object_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the object key is empty".to_owned());
    }
    check_key_prefix(key)
}

/// [`check_object_key`] for a prefix, which may be empty.
pub fn check_key_prefix(key: &str) -> Result<(), String> {
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "the object key is {} bytes, over the limit of {MAX_KEY_BYTES}",
            key.len()
        ));
    }
    if key.contains('\0') {
        return Err("the object key contains a NUL byte".to_owned());
    }
    if key.chars().any(char::is_control) {
        return Err("the object key contains a control character".to_owned());
    }
    if key.contains('\\') {
        return Err("the object key contains a backslash; use `/` to separate segments".to_owned());
    }
    if key.starts_with('/') {
        return Err("the object key starts with `/`; keys are relative to their bucket".to_owned());
    }
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("the object key has a `.` or `..` segment".to_owned());
    }
    Ok(())
}

/// Whether `name` may name a bucket: 1 to 63 lowercase letters, digits,
/// `-` and `_`, starting with a letter.
pub fn is_bucket_name(name: &str) -> bool {
    crate::resolve::valid_name(name, 63, true)
}

pub(crate) fn resolve_buckets(
    d: &mut Diagnostics,
    raw: &BTreeMap<Spanned<String>, Spanned<RawBucket>>,
) -> BTreeMap<String, Bucket> {
    let mut buckets = BTreeMap::new();
    for (name, spanned) in raw {
        if !is_bucket_name(name.get_ref()) {
            d.error(
                name.span(),
                format!("bucket name `{}` is not valid", name.get_ref()),
                "use 1 to 63 lowercase letters, digits, `-` and `_`, starting with a letter",
            );
        }
        let b = spanned.get_ref();
        buckets.insert(
            name.get_ref().clone(),
            Bucket {
                name: name.get_ref().clone(),
                max_object_bytes: crate::resolve::limit(
                    d,
                    &b.max_object_bytes,
                    crate::limits::MAX_OBJECT_BYTES,
                ),
            },
        );
    }
    buckets
}

/// `bucket:NAME:read|write` or `bucket:NAME/PREFIX:read|write` (the text
/// after `bucket:`), or `None` with a diagnostic.
pub(crate) fn resolve_bucket_grant(
    d: &mut Diagnostics,
    buckets: &BTreeMap<String, Bucket>,
    entry: &Spanned<String>,
    rest: &str,
) -> Option<Grant> {
    let text = entry.get_ref();
    let Some((target, action)) = rest.rsplit_once(':') else {
        d.error(
            entry.span(),
            format!("`{text}` is not a bucket grant"),
            "bucket grants look like `bucket:NAME:read`, `bucket:NAME:write` or `bucket:NAME/PREFIX:read`",
        );
        return None;
    };
    let (bucket, prefix) = target.split_once('/').unwrap_or((target, ""));
    if !buckets.contains_key(bucket) {
        d.error(
            entry.span(),
            format!("grant `{text}` names bucket `{bucket}`, which is not declared"),
            format!("declare it with a [bucket.{bucket}] table, or fix the name"),
        );
        return None;
    }
    if let Err(e) = check_key_prefix(prefix) {
        d.error(
            entry.span(),
            format!("grant `{text}` has an invalid key prefix: {e}"),
            "give a prefix that valid object keys can start with, e.g. `bucket:NAME/uploads/:write`",
        );
        return None;
    }
    let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
    match action {
        "read" => Some(Grant::BucketRead { bucket, prefix }),
        "write" => Some(Grant::BucketWrite { bucket, prefix }),
        _ => {
            d.error(
                entry.span(),
                format!("buckets have no `{action}` permission"),
                "functions may be allowed `bucket:NAME:read` or `bucket:NAME:write` (optionally `bucket:NAME/PREFIX:...`)",
            );
            None
        }
    }
}

/// Resolves one `[[trigger.object]]`; `ids` holds the (function, id) pairs
/// taken so far, since a trigger's internal queue is named by them.
pub(crate) fn resolve_object_trigger(
    d: &mut Diagnostics,
    ids: &mut BTreeSet<(String, String)>,
    functions: &BTreeMap<String, Function>,
    buckets: &BTreeMap<String, Bucket>,
    queues: &BTreeMap<String, Queue>,
    raw: &Spanned<RawObjectTrigger>,
) -> Option<ObjectTrigger> {
    let t = raw.get_ref();
    let delivery = crate::delivery::resolve(d, t.delivery());
    let function_names: Vec<String> = functions.keys().cloned().collect();
    let policy = crate::delivery::resolve_retry_policy(d, t.retry(), queues, &function_names);
    let bucket = match &t.bucket {
        None => {
            d.error(
                raw.span(),
                "[[trigger.object]] has no `bucket`",
                "add `bucket = \"NAME\"` naming a [bucket.NAME] table",
            );
            None
        }
        Some(b) if !buckets.contains_key(b.get_ref()) => {
            d.error(
                b.span(),
                format!("bucket `{}` is not declared", b.get_ref()),
                format!("declare it with a [bucket.{}] table", b.get_ref()),
            );
            None
        }
        Some(b) => Some(b.get_ref().clone()),
    };
    let function =
        crate::resolve::trigger_function(d, functions, raw.span(), "object", &t.function);
    let events = match &t.events {
        None => vec![ObjectEventKind::Created, ObjectEventKind::Removed],
        Some(list) => {
            if list.get_ref().is_empty() {
                d.error(
                    list.span(),
                    "`events` is empty, so the trigger would never fire",
                    "list `created`, `removed` or both, or remove `events` for both",
                );
            }
            let mut kinds = Vec::new();
            for e in list.get_ref() {
                let kind = match e.get_ref().as_str() {
                    "created" => ObjectEventKind::Created,
                    "removed" => ObjectEventKind::Removed,
                    other => {
                        d.error(
                            e.span(),
                            format!("unknown object event `{other}`"),
                            "use `created` or `removed`",
                        );
                        continue;
                    }
                };
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            kinds
        }
    };
    let mut affix = |value: &Option<Spanned<String>>, what: &str| {
        let value = value.as_ref()?;
        if let Err(e) = check_key_prefix(value.get_ref()) {
            d.error(
                value.span(),
                format!("`{what}` cannot match any valid key: {e}"),
                format!("give a `{what}` that object keys can have"),
            );
        }
        Some(value.get_ref().clone())
    };
    let prefix = affix(&t.prefix, "prefix").unwrap_or_default();
    let suffix = affix(&t.suffix, "suffix").unwrap_or_default();
    let (bucket, function) = (bucket?, function?);
    let id = match &t.id {
        Some(id) if !crate::resolve::valid_name(id.get_ref(), 64, true) => {
            d.error(
                id.span(),
                format!("object trigger id `{}` is not valid", id.get_ref()),
                "use a lowercase letter, then lowercase letters, digits, `-` or `_` (at most 64)",
            );
            return None;
        }
        Some(id) => id.get_ref().clone(),
        None => bucket.clone(),
    };
    if !ids.insert((function.clone(), id.clone())) {
        let span = t.id.as_ref().map_or(raw.span(), |id| id.span());
        d.error(
            span,
            format!("function `{function}` has two object triggers with the id `{id}`"),
            "give each [[trigger.object]] of a function on one bucket its own `id = \"NAME\"` \
             (an id defaults to the bucket's name)",
        );
        return None;
    }
    Some(ObjectTrigger {
        queue: format!("_object.{function}.{id}"),
        id,
        bucket,
        function,
        events,
        prefix,
        suffix,
        delivery,
        policy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_escape_the_bucket_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "./a",
            "a/.",
            "a\\b",
            "a\0b",
            "a\nb",
        ] {
            assert!(check_object_key(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_object_key(&"k".repeat(1025)).is_err());
        for good in ["a", "a/b/c.txt", "a..b", ".hidden", "dir/", "ünïcode 1"] {
            assert!(check_object_key(good).is_ok(), "{good:?} was refused");
        }
        assert!(check_key_prefix("").is_ok());
    }
}
