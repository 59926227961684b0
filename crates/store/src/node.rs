//! Node reports: what each node sharing a store says of itself on every
//! heartbeat (its version, when it started, the invocations it is running),
//! kept in the store so any node can show the whole cluster. Who is alive
//! is the node leases' business ([`crate::lease`]); a report only describes.

use crate::{StoreResult, Timestamp};

/// One node's last word about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    pub node: String,
    /// The nimbus version the node runs (two differ during a rolling upgrade).
    pub version: String,
    /// When the node started, by the store's clock.
    pub started_at: Timestamp,
    /// When the store took this report, by its own clock (set by the store;
    /// ignored when reporting).
    pub reported_at: Timestamp,
    /// Invocations running on the node when it reported.
    pub in_flight: u64,
}

#[async_trait::async_trait]
pub trait NodeStore: Send + Sync {
    /// Keeps `report` as its node's last one, stamped with the store's time.
    async fn report_node(&self, report: &NodeReport) -> StoreResult<()>;

    /// Every node's last report, by node id.
    async fn node_reports(&self) -> StoreResult<Vec<NodeReport>>;

    /// Forgets the nodes whose last report is more than `silent_ms` old
    /// (nodes gone for good); returns how many.
    async fn forget_nodes(&self, silent_ms: u64) -> StoreResult<u64>;
}
