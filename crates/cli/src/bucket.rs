//! `nimbus bucket ...`: list buckets and objects, put, get, head and
//! remove objects of a running app, and delete a bucket a deployment
//! dropped, through the admin API.

use crate::client::segment;
use crate::output::{Format, Output, Table, size, text, time_text};
use crate::queue::{AdminArgs, counted};
use anyhow::Context as _;
use clap::Subcommand;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BucketCommand {
    /// List the buckets, or the objects of one.
    Ls {
        bucket: Option<String>,
        #[command(flatten)]
        format: Format,
        #[arg(long, default_value = "")]
        prefix: String,
        /// Group keys by this separator after the prefix (e.g. `/`).
        #[arg(long)]
        delimiter: Option<String>,
        /// List after this key (the `next_start_after` of a page).
        #[arg(long)]
        start_after: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Upload an object from a file, or from stdin with `-`.
    Put {
        bucket: String,
        key: String,
        /// The file to upload; `-` reads stdin.
        file: PathBuf,
        #[arg(long)]
        content_type: Option<String>,
        /// User metadata, `NAME=VALUE` (repeatable).
        #[arg(long = "meta", value_name = "NAME=VALUE")]
        meta: Vec<String>,
    },
    /// Write an object's bytes to stdout, or to a file with `--output`.
    Get {
        bucket: String,
        key: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// A byte range, e.g. `0-99`, `100-` or `-10` (the last ten bytes).
        #[arg(long, allow_hyphen_values = true)]
        range: Option<String>,
    },
    /// Print an object's metadata as JSON.
    Head { bucket: String, key: String },
    /// Remove an object.
    Rm { bucket: String, key: String },
    /// Delete a bucket the running version no longer declares, with its
    /// objects and their bytes (a bucket a deployment dropped is kept until
    /// then).
    Delete { bucket: String },
}

/// Keys keep their `/`s in the path; every other byte that needs it is
/// percent-encoded.
fn key_path(bucket: &str, key: &str) -> String {
    let key: Vec<String> = key.split('/').map(segment).collect();
    format!("/v1/buckets/{}/objects/{}", segment(bucket), key.join("/"))
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", segment(v))))
        .collect();
    parts.join("&")
}

pub fn run(admin: &AdminArgs, command: BucketCommand) -> anyhow::Result<()> {
    let client = admin.client()?;
    let mut out = std::io::stdout().lock();
    match command {
        BucketCommand::Ls {
            bucket: None,
            format,
            ..
        } => format.print(&client.get("/v1/buckets")?, |all| {
            Table::new(&["BUCKET", "MAX OBJECT SIZE", "DECLARED"]).rows(&all["buckets"], |b| {
                vec![
                    text(&b["name"]),
                    size(&b["max_object_bytes"]),
                    text(&b["declared"]),
                ]
            })
        }),
        BucketCommand::Ls {
            bucket: Some(bucket),
            format,
            prefix,
            delimiter,
            start_after,
            limit,
        } => {
            let q = query(&[
                ("prefix", Some(prefix)),
                ("delimiter", delimiter),
                ("start_after", start_after),
                ("limit", Some(limit.to_string())),
            ]);
            let path = format!("/v1/buckets/{}/objects?{q}", segment(&bucket));
            let page = client.get(&path)?;
            format.print(&page, |page| {
                let mut table = Table::new(&["KEY", "SIZE", "CONTENT TYPE", "LAST MODIFIED"]);
                // Keys grouped by the delimiter, as `aws s3 ls` shows them.
                for prefix in page["common_prefixes"].as_array().into_iter().flatten() {
                    table.row(vec![
                        text(prefix),
                        "(prefix)".into(),
                        "-".into(),
                        "-".into(),
                    ]);
                }
                table.rows(&page["objects"], |o| {
                    vec![
                        text(&o["key"]),
                        size(&o["size"]),
                        text(&o["content_type"]),
                        time_text(&o["last_modified"]),
                    ]
                })
            });
            if let (Output::Table, Some(after)) = (format.output, page["next_start_after"].as_str())
            {
                eprintln!("more objects follow: --start-after {after:?}");
            }
        }
        BucketCommand::Put {
            bucket,
            key,
            file,
            content_type,
            meta,
        } => {
            let body = if file.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::stdin().read_to_end(&mut bytes)?;
                bytes
            } else {
                std::fs::read(&file)
                    .with_context(|| format!("failed to read {}", file.display()))?
            };
            let mut headers: Vec<(String, String)> = Vec::new();
            if let Some(ct) = content_type {
                headers.push(("content-type".to_owned(), ct));
            }
            for pair in meta {
                let (name, value) = pair.split_once('=').context("--meta takes NAME=VALUE")?;
                headers.push((format!("x-nimbus-meta-{name}"), value.to_owned()));
            }
            let headers: Vec<(&str, String)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.clone()))
                .collect();
            let answer = client.raw(
                reqwest::Method::PUT,
                &key_path(&bucket, &key),
                &headers,
                Some(body),
            )?;
            let json: serde_json::Value = serde_json::from_slice(&answer.body)?;
            writeln!(out, "{json:#}")?;
        }
        BucketCommand::Get {
            bucket,
            key,
            output,
            range,
        } => {
            let headers: Vec<(&str, String)> = range
                .map(|r| ("range", format!("bytes={r}")))
                .into_iter()
                .collect();
            let answer = client.raw(
                reqwest::Method::GET,
                &key_path(&bucket, &key),
                &headers,
                None,
            )?;
            match output {
                Some(path) => std::fs::write(&path, &answer.body)
                    .with_context(|| format!("failed to write {}", path.display()))?,
                None => out.write_all(&answer.body)?,
            }
        }
        BucketCommand::Head { bucket, key } => {
            let answer = client.raw(reqwest::Method::HEAD, &key_path(&bucket, &key), &[], None)?;
            let headers: serde_json::Map<String, serde_json::Value> = answer
                .headers
                .iter()
                .filter(|(n, _)| {
                    let n = n.as_str();
                    n.starts_with("x-nimbus-meta-")
                        || ["content-type", "content-length", "etag", "last-modified"].contains(&n)
                })
                .map(|(n, v)| {
                    let v = v.to_str().unwrap_or_default().to_owned();
                    (n.as_str().to_owned(), serde_json::Value::String(v))
                })
                .collect();
            writeln!(out, "{:#}", serde_json::Value::Object(headers))?;
        }
        BucketCommand::Rm { bucket, key } => {
            client.raw(reqwest::Method::DELETE, &key_path(&bucket, &key), &[], None)?;
            writeln!(out, "removed {bucket}/{key}")?;
        }
        BucketCommand::Delete { bucket } => {
            let deleted = client.delete(&format!("/v1/buckets/{}", segment(&bucket)))?;
            writeln!(
                out,
                "deleted bucket `{bucket}` ({}, {})",
                counted(&deleted["objects"], "object"),
                counted(&deleted["bytes"], "byte")
            )?;
        }
    }
    Ok(())
}
