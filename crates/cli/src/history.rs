//! `nimbus invocations`, `nimbus logs` and `nimbus trace`: the invocation
//! history, function output and traces of a running app, read through `/v1`.

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

/// Prints one trace as the history keeps it: a span per row, indented under
/// its parent (spans whose parent no record kept, such as the gateway's, at
/// the left), with its function, invocation, start after the trace's first
/// span and duration; or the API's answer with `-o json`.
pub fn run_trace(admin: &AdminArgs, trace_id: &str, format: Format) -> anyhow::Result<()> {
    let client = admin.client()?;
    let trace = client.get(&format!("/v1/traces/{}", segment(trace_id)))?;
    format.print(&trace, |trace| {
        let mut table = Table::new(&[
            "SPAN",
            "FUNCTION",
            "INVOCATION",
            "START",
            "DURATION",
            "ERROR",
        ]);
        let spans = trace["spans"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let first = spans
            .iter()
            .filter_map(|s| s["start_us"].as_u64())
            .min()
            .unwrap_or(0);
        for (depth, span) in tree(spans) {
            let start = span["start_us"].as_u64().unwrap_or(first) - first;
            table.row(vec![
                format!("{}{}", "  ".repeat(depth), text(&span["name"])),
                text(&span["function"]),
                text(&span["invocation_id"]),
                format!("+{}", micros(start)),
                span["duration_us"]
                    .as_u64()
                    .map_or_else(|| "-".to_owned(), micros),
                clipped(&text(&span["error"]), 60),
            ]);
        }
        table
    });
    if format.output == Output::Table && trace["truncated"] == true {
        eprintln!("the trace has more invocations than were read");
    }
    Ok(())
}

/// The spans in tree order (each after its parent, siblings by start, as
/// the API sorts them), with their depth. A span whose parent is not among
/// them is a root; a parent loop (only a forged `traceparent` could make
/// one) is broken where it is found.
fn tree(spans: &[Value]) -> Vec<(usize, &Value)> {
    use std::collections::{HashMap, HashSet};
    let ids: HashSet<&str> = spans.iter().filter_map(|s| s["span_id"].as_str()).collect();
    let mut children: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut roots = Vec::new();
    for span in spans {
        match span["parent_id"].as_str() {
            Some(parent) if ids.contains(parent) && span["span_id"] != parent => {
                children.entry(parent).or_default().push(span)
            }
            _ => roots.push(span),
        }
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<(usize, &Value)> = roots.into_iter().rev().map(|s| (0, s)).collect();
    while let Some((depth, span)) = stack.pop() {
        let id = span["span_id"].as_str().unwrap_or_default();
        if !seen.insert(id) {
            continue;
        }
        out.push((depth, span));
        for child in children.get(id).into_iter().flatten().rev() {
            stack.push((depth + 1, child));
        }
    }
    // Spans only reachable through a loop are still shown, at the left.
    for span in spans {
        if !seen.contains(span["span_id"].as_str().unwrap_or_default()) {
            seen.insert(span["span_id"].as_str().unwrap_or_default());
            out.push((0, span));
        }
    }
    out
}

/// Microseconds for people: `850 µs`, `12.3 ms`, `1.50 s`.
fn micros(us: u64) -> String {
    match us {
        us if us < 1_000 => format!("{us} µs"),
        us if us < 1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        us => format!("{:.2} s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spans_are_ordered_under_their_parents_and_loops_end() {
        let spans = vec![
            json!({"span_id": "a", "parent_id": "gateway", "name": "invoke f"}),
            json!({"span_id": "b", "parent_id": "a", "name": "call g"}),
            json!({"span_id": "c", "parent_id": "b", "name": "invoke g"}),
            json!({"span_id": "d", "parent_id": "a", "name": "send q"}),
            json!({"span_id": "x", "parent_id": "y", "name": "loop x"}),
            json!({"span_id": "y", "parent_id": "x", "name": "loop y"}),
        ];
        let order: Vec<(usize, &str)> = tree(&spans)
            .into_iter()
            .map(|(depth, s)| (depth, s["name"].as_str().unwrap()))
            .collect();
        assert_eq!(
            order,
            [
                (0, "invoke f"),
                (1, "call g"),
                (2, "invoke g"),
                (1, "send q"),
                (0, "loop x"),
                (0, "loop y"),
            ]
        );
        assert_eq!(micros(850), "850 µs");
        assert_eq!(micros(12_345), "12.3 ms");
        assert_eq!(micros(1_500_000), "1.50 s");
    }
}
