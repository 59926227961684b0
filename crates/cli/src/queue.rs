//! `nimbus queue ...` and `nimbus dlq ...`: the queue API from a terminal.
//! Answers print as JSON, so scripts can read them.

use crate::client::{AdminClient, segment};
use crate::output::{Format, Output, Table, clipped, duration_ms, size, text, time_ms};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;

/// Where the admin API of a running `nimbus up` listens.
#[derive(Args)]
pub struct AdminArgs {
    /// Base URL of the admin listener.
    #[arg(
        long,
        env = "NIMBUS_ADMIN",
        default_value = "http://127.0.0.1:3001",
        global = true
    )]
    admin: String,
    /// The admin token (`nimbus up` stores a generated one in DATA_DIR/admin-token).
    #[arg(
        long,
        env = "NIMBUS_ADMIN_TOKEN",
        hide_env_values = true,
        global = true,
        value_name = "TOKEN"
    )]
    admin_token: Option<String>,
}

impl AdminArgs {
    /// A client for the admin API these arguments name.
    pub(crate) fn client(&self) -> anyhow::Result<AdminClient> {
        AdminClient::new(&self.admin, self.admin_token.as_deref())
    }

    /// The admin listener's base URL.
    pub(crate) fn url(&self) -> &str {
        &self.admin
    }
}

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Send a message (printed: its id).
    Send {
        queue: String,
        /// The message body as text.
        #[arg(long, conflicts_with = "file")]
        data: Option<String>,
        /// Read the body from a file (`-` for stdin).
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long, value_name = "MS")]
        delay_ms: Option<u64>,
        /// A repeated id within the queue's dedup window is stored once.
        #[arg(long)]
        dedup_id: Option<String>,
    },
    /// Lease messages and print them (one JSON object per line).
    Receive {
        queue: String,
        #[arg(long, default_value_t = 1)]
        max: u32,
        /// Wait up to this long for messages to arrive.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        wait_ms: u64,
        #[arg(long, value_name = "MS")]
        visibility_timeout_ms: Option<u64>,
        /// Delete each message after printing it.
        #[arg(long)]
        delete: bool,
    },
    /// Show a queue's statistics and settings, or every queue's counts.
    Stats {
        queue: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// Delete every message in a queue.
    Purge { queue: String },
    /// Delete a queue the running version no longer declares, with its
    /// messages (a queue a deployment dropped is kept until then).
    Delete { queue: String },
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// List dead-letter queues, their source queues and depth.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Print the messages in a dead-letter queue without leasing them.
    Show {
        queue: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        format: Format,
    },
    /// Move messages back to the queue each came from, or to `--to`.
    Redrive {
        queue: String,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
}

/// `n` of a thing, named in the singular: `1 message`, `12 messages`.
pub(crate) fn counted(n: &Value, thing: &str) -> String {
    let n = n.as_u64().unwrap_or_default();
    let plural = if n == 1 { "" } else { "s" };
    format!("{n} {thing}{plural}")
}

/// One queue's counts and settings, a row each.
fn queue_settings(q: &Value) -> Table {
    let mut table = Table::new(&["SETTING", "VALUE"]);
    for (name, value) in [
        ("queue", text(&q["name"])),
        ("visible", text(&q["visible"])),
        ("in flight", text(&q["in_flight"])),
        ("delayed", text(&q["delayed"])),
        ("oldest message", duration_ms(&q["oldest_age_ms"])),
        (
            "visibility timeout",
            duration_ms(&q["visibility_timeout_ms"]),
        ),
        ("retention", duration_ms(&q["retention_ms"])),
        ("delay", duration_ms(&q["delay_ms"])),
        ("max message size", size(&q["max_message_bytes"])),
        ("dedup window", duration_ms(&q["dedup_window_ms"])),
        ("max receive count", text(&q["max_receive_count"])),
        ("dead-letter queue", text(&q["dead_letter_queue"])),
    ] {
        table.row(vec![name.to_owned(), value]);
    }
    table
}

pub(crate) fn print(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// The bytes given with `--data TEXT` or `--file PATH` (`-`: stdin).
fn body_from(data: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Vec<u8>> {
    Ok(match (data, file) {
        (Some(text), _) => text.into_bytes(),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)?;
            bytes
        }
        (None, Some(path)) => {
            std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?
        }
        (None, None) => anyhow::bail!("give the body with --data TEXT or --file PATH"),
    })
}

pub fn run_invoke(
    admin: &AdminArgs,
    function: &str,
    data: Option<String>,
    file: Option<PathBuf>,
    asynchronous: bool,
) -> anyhow::Result<()> {
    let client = AdminClient::new(&admin.admin, admin.admin_token.as_deref())?;
    let body = body_from(data, file)?;
    let endpoint = if asynchronous {
        "invoke-async"
    } else {
        "invoke"
    };
    let outcome = client.post_bytes(
        &format!("/v1/functions/{}/{endpoint}", segment(function)),
        body,
    )?;
    print(&outcome);
    if outcome["failed"] == true {
        anyhow::bail!("the function reported the event as failed");
    }
    Ok(())
}

pub fn run_queue(admin: &AdminArgs, command: QueueCommand) -> anyhow::Result<()> {
    let client = AdminClient::new(&admin.admin, admin.admin_token.as_deref())?;
    match command {
        QueueCommand::Send {
            queue,
            data,
            file,
            delay_ms,
            dedup_id,
        } => {
            let body = match (data, file) {
                (Some(text), _) => text.into_bytes(),
                (None, Some(path)) if path.as_os_str() == "-" => {
                    let mut bytes = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)?;
                    bytes
                }
                (None, Some(path)) => std::fs::read(&path)
                    .with_context(|| format!("failed to read {}", path.display()))?,
                (None, None) => anyhow::bail!("give the body with --data TEXT or --file PATH"),
            };
            let mut message = match String::from_utf8(body) {
                Ok(text) => json!({ "body": text }),
                Err(e) => {
                    use base64::Engine as _;
                    json!({ "body_base64": base64::engine::general_purpose::STANDARD.encode(e.into_bytes()) })
                }
            };
            if let Some(delay) = delay_ms {
                message["delay_ms"] = delay.into();
            }
            if let Some(id) = dedup_id {
                message["dedup_id"] = id.into();
            }
            let result =
                client.post(&format!("/v1/queues/{}/messages", segment(&queue)), message)?;
            print(&result);
        }
        QueueCommand::Receive {
            queue,
            max,
            wait_ms,
            visibility_timeout_ms,
            delete,
        } => {
            let mut request = json!({ "max_messages": max, "wait_ms": wait_ms });
            if let Some(timeout) = visibility_timeout_ms {
                request["visibility_timeout_ms"] = timeout.into();
            }
            let result =
                client.post(&format!("/v1/queues/{}/receive", segment(&queue)), request)?;
            for message in result["messages"].as_array().into_iter().flatten() {
                println!("{message}");
                if delete {
                    let receipt = message["receipt_handle"].as_str().unwrap_or_default();
                    client.delete(&format!(
                        "/v1/queues/{}/receipts/{}",
                        segment(&queue),
                        segment(receipt)
                    ))?;
                }
            }
        }
        QueueCommand::Stats {
            queue: Some(queue),
            format,
        } => format.print(
            &client.get(&format!("/v1/queues/{}", segment(&queue)))?,
            queue_settings,
        ),
        QueueCommand::Stats {
            queue: None,
            format,
        } => format.print(&client.get("/v1/queues")?, |all| {
            Table::new(&[
                "QUEUE",
                "VISIBLE",
                "IN FLIGHT",
                "DELAYED",
                "OLDEST",
                "DEAD-LETTER QUEUE",
            ])
            .rows(&all["queues"], |q| {
                vec![
                    text(&q["name"]),
                    text(&q["visible"]),
                    text(&q["in_flight"]),
                    text(&q["delayed"]),
                    duration_ms(&q["oldest_age_ms"]),
                    text(&q["dead_letter_queue"]),
                ]
            })
        }),
        QueueCommand::Purge { queue } => {
            print(&client.post(&format!("/v1/queues/{}/purge", segment(&queue)), json!({}))?)
        }
        QueueCommand::Delete { queue } => {
            let deleted = client.delete(&format!("/v1/queues/{}", segment(&queue)))?;
            println!(
                "deleted queue `{queue}` ({})",
                counted(&deleted["messages"], "message")
            );
        }
    }
    Ok(())
}

pub fn run_dlq(admin: &AdminArgs, command: DlqCommand) -> anyhow::Result<()> {
    let client = AdminClient::new(&admin.admin, admin.admin_token.as_deref())?;
    match command {
        DlqCommand::List { format } => {
            format.print(&client.get("/v1/dead-letter-queues")?, |all| {
                Table::new(&["DEAD-LETTER QUEUE", "FROM", "DEPTH", "OLDEST"]).rows(
                    &all["dead_letter_queues"],
                    |q| {
                        let from: Vec<String> = q["source_queues"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(text)
                            .collect();
                        vec![
                            text(&q["name"]),
                            from.join(", "),
                            text(&q["depth"]),
                            duration_ms(&q["oldest_age_ms"]),
                        ]
                    },
                )
            })
        }
        DlqCommand::Show {
            queue,
            limit,
            format,
        } => {
            let page = client.get(&format!(
                "/v1/queues/{}/messages?limit={limit}",
                segment(&queue)
            ))?;
            if format.output == Output::Table && !page["next"].is_null() {
                eprintln!("more messages follow: raise --limit");
            }
            format.print(&page, |page| {
                Table::new(&[
                    "MESSAGE ID",
                    "SENT",
                    "RECEIVES",
                    "FROM",
                    "LAST ERROR",
                    "BODY",
                ])
                .rows(&page["messages"], |m| {
                    let body = m["body"]
                        .as_str()
                        .map_or_else(|| "(binary)".to_owned(), |b| clipped(b, 40));
                    vec![
                        text(&m["message_id"]),
                        time_ms(&m["sent_at_ms"]),
                        text(&m["receive_count"]),
                        text(&m["source_queue"]),
                        clipped(&text(&m["last_error"]), 40),
                        body,
                    ]
                })
            });
        }
        DlqCommand::Redrive { queue, to, limit } => {
            let mut request = json!({ "limit": limit });
            if let Some(to) = to {
                request["to"] = to.into();
            }
            print(&client.post(&format!("/v1/queues/{}/redrive", segment(&queue)), request)?)
        }
    }
    Ok(())
}
