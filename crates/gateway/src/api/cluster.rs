//! `/v1/cluster`: the nodes sharing this store, each with its last
//! heartbeat, version, invocations in flight and the leases it holds, as
//! the store sees them (so any node gives the same answer).

use super::{ApiError, ApiState};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use nimbus_dispatch::ownership::NODE_PREFIX;
use nimbus_engine::rfc3339;
use nimbus_store::lease::owner_node;
use nimbus_store::{Lease, NodeReport};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(super) fn router() -> Router<ApiState> {
    Router::new().route("/v1/cluster", get(cluster))
}

async fn cluster(State(state): State<ApiState>) -> Result<axum::Json<Value>, ApiError> {
    let leases = state.store.leases("").await?;
    let reports = state.store.node_reports().await?;
    let now = state.store.now_ms().await?;
    Ok(axum::Json(json!({
        "node": state.history.node(),
        "now": rfc3339(now),
        "nodes": nodes(reports, leases),
    })))
}

/// One entry per node that reported or holds a lease, by id: live while its
/// own lease is; a node that stopped reporting (killed, or gone for good)
/// stays listed, not live, until the store forgets it.
fn nodes(reports: Vec<NodeReport>, leases: Vec<Lease>) -> Vec<Value> {
    let mut held: BTreeMap<String, Vec<Lease>> = BTreeMap::new();
    for lease in leases {
        // The owner is `NODE/INCARNATION`: one entry per node.
        held.entry(owner_node(&lease.owner).to_owned())
            .or_default()
            .push(lease);
    }
    let mut reports: BTreeMap<String, NodeReport> =
        reports.into_iter().map(|r| (r.node.clone(), r)).collect();
    let ids: std::collections::BTreeSet<String> =
        held.keys().chain(reports.keys()).cloned().collect();
    ids.into_iter()
        .map(|id| {
            let leases = held.remove(&id).unwrap_or_default();
            let report = reports.remove(&id);
            let own = format!("{NODE_PREFIX}{id}");
            let live = leases.iter().any(|l| l.name == own);
            let work: Vec<Value> = leases
                .iter()
                .filter(|l| l.name != own)
                .map(|l| {
                    json!({
                        "name": l.name,
                        "fence": l.fence,
                        "expires_at": rfc3339(l.expires_at),
                    })
                })
                .collect();
            json!({
                "id": id,
                "live": live,
                // A node of a version before reports shows only its leases.
                "version": report.as_ref().map(|r| r.version.clone()),
                "started_at": report.as_ref().map(|r| rfc3339(r.started_at)),
                "last_heartbeat": report.as_ref().map(|r| rfc3339(r.reported_at)),
                "in_flight": report.as_ref().map(|r| r.in_flight),
                "leases": work,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(name: &str, owner: &str) -> Lease {
        Lease {
            name: name.into(),
            owner: owner.into(),
            fence: 2,
            expires_at: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_node_is_live_while_it_holds_its_own_lease_and_lists_the_rest() {
        let reports = vec![
            NodeReport {
                node: "a".into(),
                version: "0.2.0".into(),
                started_at: 1_700_000_000_000,
                reported_at: 1_700_000_000_000,
                in_flight: 3,
            },
            NodeReport {
                node: "gone".into(),
                version: "0.2.0".into(),
                started_at: 1_700_000_000_000,
                reported_at: 1_700_000_000_000,
                in_flight: 1,
            },
        ];
        let leases = vec![
            lease("node:a", "a/1f2e"),
            lease("stream:t:f:0/2", "a/1f2e"),
            lease("node:old", "old"),
        ];
        let nodes = nodes(reports, leases);
        let summary: Vec<(&str, bool, usize)> = nodes
            .iter()
            .map(|n| {
                (
                    n["id"].as_str().unwrap(),
                    n["live"].as_bool().unwrap(),
                    n["leases"].as_array().unwrap().len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [("a", true, 1), ("gone", false, 0), ("old", true, 0)]
        );
        assert_eq!(nodes[0]["leases"][0]["name"], "stream:t:f:0/2");
        assert_eq!(nodes[0]["in_flight"], 3);
        assert_eq!(
            nodes[2]["version"],
            Value::Null,
            "a node that never reported"
        );
    }
}
