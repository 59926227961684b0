//! `nimbus access-key ...`: create, list and revoke the access keys the S3
//! and SQS endpoints accept.

use crate::client::segment;
use crate::output::{Format, Table, text, time_ms};
use crate::queue::{AdminArgs, print};
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub enum AccessKeyCommand {
    /// Create a key. Its secret is printed once and cannot be shown again.
    Create {
        /// What the key is for (shown in listings).
        name: String,
        /// What the key may do, one grant per flag: `queue:NAME:send`,
        /// `queue:NAME:receive` (receive, delete, change visibility),
        /// `queue:NAME:purge`, `bucket:NAME[/PREFIX]:read`,
        /// `bucket:NAME[/PREFIX]:write`. Nothing else is reachable.
        #[arg(long = "allow", value_name = "GRANT", required = true)]
        grants: Vec<String>,
    },
    /// List keys with their grants (never their secrets).
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Revoke a key by id: requests signed with it are refused from then on.
    Revoke { id: String },
}

pub fn run(admin: &AdminArgs, command: AccessKeyCommand) -> anyhow::Result<()> {
    let client = admin.client()?;
    match command {
        AccessKeyCommand::Create { name, grants } => {
            print(&client.post("/v1/access-keys", json!({ "name": name, "grants": grants }))?)
        }
        AccessKeyCommand::List { format } => format.print(&client.get("/v1/access-keys")?, |all| {
            Table::new(&["ID", "NAME", "CREATED", "GRANTS"]).rows(&all["access_keys"], |k| {
                let grants: Vec<String> = k["grants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect();
                vec![
                    text(&k["id"]),
                    text(&k["name"]),
                    time_ms(&k["created_at"]),
                    grants.join(" "),
                ]
            })
        }),
        AccessKeyCommand::Revoke { id } => {
            client.delete(&format!("/v1/access-keys/{}", segment(&id)))?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
