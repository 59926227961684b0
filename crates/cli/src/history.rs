//! `nimbus invocations` and `nimbus logs`: the invocation history and
//! function output of a running app, read through `/v1`.

use crate::client::segment;
use crate::queue::{AdminArgs, print};
use serde_json::Value;

/// Lists invocation records, newest first, as JSON (the API's page:
/// `invocations` and the `next` cursor).
pub fn run_invocations(
    admin: &AdminArgs,
    function: Option<&str>,
    failed: bool,
    limit: Option<u32>,
) -> anyhow::Result<()> {
    let client = admin.client()?;
    let mut query = Vec::new();
    if let Some(function) = function {
        query.push(format!("function={}", segment(function)));
    }
    if failed {
        query.push("outcome=error,timeout".to_owned());
    }
    if let Some(limit) = limit {
        query.push(format!("limit={limit}"));
    }
    print(&client.get(&format!("/v1/invocations?{}", query.join("&")))?);
    Ok(())
}

/// Prints a function's output, one line each: `INVOCATION_ID STREAM TEXT`.
/// Without `follow`, the lines of its recent records; with it, lines as they
/// are written, until interrupted. Notices go to stderr.
pub fn run_logs(admin: &AdminArgs, function: &str, follow: bool) -> anyhow::Result<()> {
    let client = admin.client()?;
    let path = format!(
        "/v1/functions/{}/logs{}",
        segment(function),
        if follow { "?follow=true" } else { "" }
    );
    client.get_lines(&path, |line| {
        let Ok(json) = serde_json::from_str::<Value>(line) else {
            return;
        };
        let id = json["invocation_id"].as_str().unwrap_or("-");
        match json["notice"].as_str() {
            Some(notice) => eprintln!("{id} {notice}"),
            None => println!(
                "{id} {} {}",
                json["stream"].as_str().unwrap_or("-"),
                json["text"].as_str().unwrap_or_default()
            ),
        }
    })
}
