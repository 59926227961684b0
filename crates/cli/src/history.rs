//! `nimbus invocations` and `nimbus logs`: the invocation history and
//! function output of a running app, read through `/v1`.

use crate::client::segment;
use crate::output::{Format, Output, Table, clipped, duration_ms, text, time_text};
use crate::queue::AdminArgs;
use serde_json::Value;

/// Lists invocation records, newest first: a table, or the API's page
/// (`invocations` and the `next` cursor) with `-o json`.
pub fn run_invocations(
    admin: &AdminArgs,
    function: Option<&str>,
    failed: bool,
    limit: Option<u32>,
    format: Format,
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
    let page = client.get(&format!("/v1/invocations?{}", query.join("&")))?;
    format.print(&page, |page| {
        Table::new(&[
            "INVOCATION",
            "FUNCTION",
            "TRIGGER",
            "SOURCE",
            "OUTCOME",
            "ATTEMPT",
            "DURATION",
            "STARTED",
            "ERROR",
        ])
        .rows(&page["invocations"], |i| {
            vec![
                text(&i["id"]),
                text(&i["function"]),
                text(&i["trigger"]),
                text(&i["source"]),
                text(&i["outcome"]),
                text(&i["attempt"]),
                duration_ms(&i["duration_ms"]),
                time_text(&i["started_at"]),
                clipped(&text(&i["error"]), 60),
            ]
        })
    });
    if format.output == Output::Table && !page["next"].is_null() {
        eprintln!("older invocations follow: raise --limit (up to 1000) or add filters");
    }
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
