//! `nimbus usage`: each function's metered use per hour (invocations,
//! billed time, GB-seconds, outbound bytes) from `/v1/usage`, as a table, as
//! CSV for spreadsheets, or as the API's JSON.

use crate::client::segment;
use crate::output::{Format, Output, Table, duration_ms, size, text, time_text};
use crate::queue::AdminArgs;
use clap::Args;
use serde_json::Value;

#[derive(Args)]
pub struct UsageArgs {
    /// Only this function's use.
    #[arg(long)]
    function: Option<String>,
    /// Hours from this time on (RFC 3339, e.g. 2026-12-01T00:00:00Z)
    /// [default: a day before --to].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    from: Option<i64>,
    /// Hours before this time [default: now].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    to: Option<i64>,
    /// Comma-separated values, one hour and function per line, with a header.
    #[arg(long, conflicts_with = "output")]
    csv: bool,
    #[command(flatten)]
    format: Format,
}

fn parse_time(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("not an RFC 3339 time such as 2026-12-01T00:00:00Z: {e}"))
}

pub fn run(admin: &AdminArgs, args: UsageArgs) -> anyhow::Result<()> {
    let client = admin.client()?;
    let mut query = Vec::new();
    if let Some(function) = &args.function {
        query.push(format!("function={}", segment(function)));
    }
    for (name, value) in [("from_ms", args.from), ("to_ms", args.to)] {
        if let Some(value) = value {
            anyhow::ensure!(value >= 0, "times before 1970 have no usage");
            query.push(format!("{name}={value}"));
        }
    }
    let answer = client.get(&format!("/v1/usage?{}", query.join("&")))?;
    if args.csv {
        print!("{}", csv(&answer));
        return Ok(());
    }
    args.format.print(&answer, table);
    if args.format.output == Output::Table {
        eprintln!(
            "from {} to {}",
            crate::output::time_ms(&answer["from_ms"]),
            crate::output::time_ms(&answer["to_ms"])
        );
    }
    Ok(())
}

fn table(answer: &Value) -> Table {
    let headers = [
        "HOUR",
        "FUNCTION",
        "INVOCATIONS",
        "BILLED",
        "GB-SECONDS",
        "OUTBOUND",
    ];
    let cells = |hour: String, function: String, row: &Value| {
        vec![
            hour,
            function,
            text(&row["invocations"]),
            duration_ms(&row["billed_ms"]),
            gb_seconds(&row["mb_ms"]),
            size(&row["outbound_bytes"]),
        ]
    };
    let mut table = Table::new(&headers).rows(&answer["usage"], |row| {
        cells(time_text(&row["hour"]), text(&row["function"]), row)
    });
    table.row(cells("total".to_owned(), String::new(), &answer["total"]));
    table
}

/// GB-seconds to six places, from the exact megabyte-milliseconds.
fn gb_seconds(mb_ms: &Value) -> String {
    mb_ms
        .as_u64()
        .map_or_else(|| text(mb_ms), |v| format!("{:.6}", v as f64 / 1_024_000.0))
}

fn csv(answer: &Value) -> String {
    let mut out =
        String::from("hour,function,invocations,billed_ms,mb_ms,gb_seconds,outbound_bytes\n");
    for row in answer["usage"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            text(&row["hour"]),
            csv_field(&text(&row["function"])),
            text(&row["invocations"]),
            text(&row["billed_ms"]),
            text(&row["mb_ms"]),
            gb_seconds(&row["mb_ms"]),
            text(&row["outbound_bytes"]),
        ));
    }
    out
}

/// A field quoted when it holds a comma or a quote (function names never
/// do; the rule keeps the file valid whatever they become).
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}
