//! `nimbus cluster status`: the nodes sharing a running app's store, their
//! heartbeats, versions, work in flight and leases, through the admin API.

use crate::queue::AdminArgs;
use clap::Subcommand;
use serde_json::Value;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// List the nodes: live or not, version, last heartbeat, invocations in
    /// flight and the leases each holds (stream lanes, schedules, sweepers).
    Status {
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(admin: &AdminArgs, command: ClusterCommand) -> anyhow::Result<()> {
    let client = admin.client()?;
    match command {
        ClusterCommand::Status { json } => {
            let status = client.get("/v1/cluster")?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                );
            } else {
                print!("{}", render(&status));
            }
        }
    }
    Ok(())
}

/// An aligned table of nodes, then each node's leases indented under a
/// line naming it.
fn render(status: &Value) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "-".to_owned(),
    };
    let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
    let mut rows = vec![[
        "NODE".to_owned(),
        "STATUS".to_owned(),
        "VERSION".to_owned(),
        "LAST HEARTBEAT".to_owned(),
        "IN FLIGHT".to_owned(),
        "LEASES".to_owned(),
    ]];
    for n in &nodes {
        let mut id = text(&n["id"]);
        if n["id"] == status["node"] {
            id.push_str(" (this)");
        }
        rows.push([
            id,
            if n["live"] == Value::Bool(true) {
                "live"
            } else {
                "gone"
            }
            .to_owned(),
            text(&n["version"]),
            text(&n["last_heartbeat"]),
            text(&n["in_flight"]),
            n["leases"].as_array().map_or(0, Vec::len).to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for n in &nodes {
        let leases = n["leases"].as_array().cloned().unwrap_or_default();
        if leases.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{} holds:\n", text(&n["id"])));
        for l in &leases {
            out.push_str(&format!(
                "  {}  fence {}  until {}\n",
                text(&l["name"]),
                text(&l["fence"]),
                text(&l["expires_at"])
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_render_as_a_table_then_their_leases() {
        let status = serde_json::json!({
            "node": "a",
            "nodes": [
                {"id": "a", "live": true, "version": "0.1.0",
                 "last_heartbeat": "2026-12-01T10:00:00.000Z", "in_flight": 2,
                 "leases": [{"name": "schedule:tick", "fence": 4, "expires_at": "2026-12-01T10:00:15.000Z"}]},
                {"id": "node-b", "live": false, "version": null,
                 "last_heartbeat": null, "in_flight": null, "leases": []},
            ],
        });
        assert_eq!(
            render(&status),
            "NODE      STATUS  VERSION  LAST HEARTBEAT            IN FLIGHT  LEASES\n\
             a (this)  live    0.1.0    2026-12-01T10:00:00.000Z  2          1\n\
             node-b    gone    -        -                         -          0\n\
             \n\
             a holds:\n  schedule:tick  fence 4  until 2026-12-01T10:00:15.000Z\n"
        );
    }
}
