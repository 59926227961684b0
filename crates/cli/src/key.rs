//! `nimbus key ...`: create, list and revoke the API keys that
//! `auth = "api_key"` routes accept.

use crate::client::segment;
use crate::output::{Format, Table, duration_ms, text, time_ms};
use crate::queue::{AdminArgs, print};
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a key. The key is printed once and cannot be shown again.
    Create {
        /// What the key is for (shown in listings and to the function).
        name: String,
        /// Sustained requests per second (unlimited when absent).
        #[arg(long, value_name = "N")]
        rate: Option<f64>,
        /// Requests allowed at once above the rate (default: one second's worth).
        #[arg(long, value_name = "N", requires = "rate")]
        burst: Option<u32>,
        /// Requests allowed per quota period (unlimited when absent).
        #[arg(long, value_name = "N")]
        quota: Option<u64>,
        /// The quota's window, aligned to UTC.
        #[arg(long, value_parser = ["minute", "hour", "day"], requires = "quota")]
        quota_period: Option<String>,
    },
    /// List keys (never the keys themselves), revoked ones included.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Revoke a key by id: it is refused from then on.
    Revoke { id: String },
}

pub fn run(admin: &AdminArgs, command: KeyCommand) -> anyhow::Result<()> {
    let client = admin.client()?;
    match command {
        KeyCommand::Create {
            name,
            rate,
            burst,
            quota,
            quota_period,
        } => {
            let mut request = json!({ "name": name });
            for (field, value) in [
                ("rate_per_s", rate.map(serde_json::Value::from)),
                ("burst", burst.map(Into::into)),
                ("quota", quota.map(Into::into)),
                ("quota_period", quota_period.map(Into::into)),
            ] {
                if let Some(value) = value {
                    request[field] = value;
                }
            }
            print(&client.post("/v1/keys", request)?);
        }
        KeyCommand::List { format } => format.print(&client.get("/v1/keys")?, |all| {
            Table::new(&["ID", "NAME", "CREATED", "REVOKED", "RATE", "QUOTA", "USED"]).rows(
                &all["keys"],
                |k| {
                    let rate = match (k["rate_per_s"].as_f64(), k["burst"].as_u64()) {
                        (Some(rate), Some(burst)) => format!("{rate}/s (burst {burst})"),
                        (Some(rate), None) => format!("{rate}/s"),
                        _ => "-".to_owned(),
                    };
                    let quota = match (k["quota"].as_u64(), k["quota_period_s"].as_u64()) {
                        (Some(quota), Some(period)) => {
                            format!("{quota} per {}", duration_ms(&(period * 1000).into()))
                        }
                        _ => "-".to_owned(),
                    };
                    vec![
                        text(&k["id"]),
                        text(&k["name"]),
                        time_ms(&k["created_at_ms"]),
                        time_ms(&k["revoked_at_ms"]),
                        rate,
                        quota,
                        text(&k["quota_used"]),
                    ]
                },
            )
        }),
        KeyCommand::Revoke { id } => print(&client.delete(&format!("/v1/keys/{}", segment(&id)))?),
    }
    Ok(())
}
