//! `nimbus table ...`: items and change streams of a running app's tables
//! from a terminal. Listings print as tables (`-o json` for the API's
//! JSON); item writes and reads print the API's JSON.

use crate::client::segment;
use crate::output::{Format, Table, text, time_text};
use crate::queue::{AdminArgs, counted, print};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum TableCommand {
    /// List the app's tables.
    Ls {
        #[command(flatten)]
        format: Format,
    },
    /// Write an item (a JSON object holding the table's key attributes);
    /// prints its keys and new version.
    Put {
        table: String,
        /// The item, e.g. '{"id": "o-1", "total": 5}'.
        item: String,
        /// Only if no item has this key.
        #[arg(long, conflicts_with = "if_version")]
        if_absent: bool,
        /// Only if the item is at this version.
        #[arg(long, value_name = "VERSION")]
        if_version: Option<u64>,
    },
    /// Print an item.
    Get {
        table: String,
        partition: String,
        /// The sort key, for tables that have one.
        sort: Option<String>,
    },
    /// Delete an item.
    Rm {
        table: String,
        partition: String,
        sort: Option<String>,
        #[arg(long, value_name = "VERSION")]
        if_version: Option<u64>,
    },
    /// Print the items of one partition in sort-key order, or of the whole
    /// table (a scan) without a partition; follows cursors up to `--limit`.
    Query {
        table: String,
        partition: Option<String>,
        /// Only sort keys starting with this.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        prefix: Option<String>,
        /// Only sort keys from this one on.
        #[arg(long)]
        from: Option<String>,
        /// Only sort keys up to this one.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        format: Format,
    },
    /// Print a table's change records after a sequence number.
    Stream {
        table: String,
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Delete a table the running version no longer declares, with its
    /// items, change records and stream checkpoints (a table a deployment
    /// dropped is kept until then).
    Delete { table: String },
}

/// `key=value` pairs as a query string, values percent-encoded.
fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", segment(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub fn run(admin: &AdminArgs, command: TableCommand) -> anyhow::Result<()> {
    let client = admin.client()?;
    match command {
        TableCommand::Ls { format } => format.print(&client.get("/v1/tables")?, |all| {
            Table::new(&["TABLE", "PARTITION KEY", "SORT KEY", "STREAM", "DECLARED"]).rows(
                &all["tables"],
                |t| {
                    vec![
                        text(&t["name"]),
                        text(&t["partition_key"]),
                        text(&t["sort_key"]),
                        text(&t["stream"]),
                        text(&t["declared"]),
                    ]
                },
            )
        }),
        TableCommand::Put {
            table,
            item,
            if_absent,
            if_version,
        } => {
            let item: Value = serde_json::from_str(&item)
                .map_err(|e| anyhow::anyhow!("the item is not JSON: {e}"))?;
            let mut body = json!({ "item": item });
            if if_absent {
                body["if_absent"] = json!(true);
            }
            if let Some(v) = if_version {
                body["if_version"] = json!(v);
            }
            print(&client.post(&format!("/v1/tables/{}/items", segment(&table)), body)?);
        }
        TableCommand::Get {
            table,
            partition,
            sort,
        } => print(&client.get(&format!(
            "/v1/tables/{}/items/{}{}",
            segment(&table),
            segment(&partition),
            query_string(&[("sort", sort)])
        ))?),
        TableCommand::Rm {
            table,
            partition,
            sort,
            if_version,
        } => print(&client.delete(&format!(
            "/v1/tables/{}/items/{}{}",
            segment(&table),
            segment(&partition),
            query_string(&[
                ("sort", sort),
                ("if_version", if_version.map(|v| v.to_string()))
            ])
        ))?),
        TableCommand::Query {
            table,
            partition,
            prefix,
            from,
            to,
            limit,
            format,
        } => {
            let mut items = Vec::new();
            let mut cursor: Option<String> = None;
            while (items.len() as u32) < limit {
                let page_size = (limit - items.len() as u32).min(1000);
                let path = format!(
                    "/v1/tables/{}/items{}",
                    segment(&table),
                    query_string(&[
                        ("partition", partition.clone()),
                        ("sort_prefix", prefix.clone()),
                        ("sort_from", from.clone()),
                        ("sort_to", to.clone()),
                        ("limit", Some(page_size.to_string())),
                        ("cursor", cursor.clone()),
                    ])
                );
                let page = client.get(&path)?;
                items.extend(page["items"].as_array().cloned().unwrap_or_default());
                match page["cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            format.print(&json!({ "items": items }), |all| {
                Table::new(&["PARTITION", "SORT", "VERSION", "UPDATED", "ITEM"]).rows(
                    &all["items"],
                    |i| {
                        vec![
                            text(&i["key"]["partition"]),
                            text(&i["key"]["sort"]),
                            text(&i["version"]),
                            time_text(&i["updated_at"]),
                            i["item"].to_string(),
                        ]
                    },
                )
            });
        }
        TableCommand::Stream {
            table,
            after,
            limit,
        } => print(&client.get(&format!(
            "/v1/tables/{}/stream?after={after}&limit={limit}",
            segment(&table)
        ))?),
        TableCommand::Delete { table } => {
            let deleted = client.delete(&format!("/v1/tables/{}", segment(&table)))?;
            println!(
                "deleted table `{table}` ({}, {})",
                counted(&deleted["items"], "item"),
                counted(&deleted["change_records"], "change record")
            );
        }
    }
    Ok(())
}
