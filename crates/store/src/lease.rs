//! Leases: which node owns a piece of work that one node at a time may do
//! (a stream lane, a schedule, a sweeper), for how long by the store's
//! clock, and a fencing token that grows each time the work changes hands,
//! so the store can refuse a write from an owner that lost it.

use crate::{StoreResult, Timestamp};

/// Separates a node from its process in an owner name, `NODE/INCARNATION`:
/// a node restarted under its id is a new incarnation of the same node.
pub const INCARNATION_SEPARATOR: char = '/';

/// The node part of an owner name (all of it when it names no incarnation).
pub fn owner_node(owner: &str) -> &str {
    owner
        .split_once(INCARNATION_SEPARATOR)
        .map_or(owner, |(node, _)| node)
}

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub owner: String,
    /// Grows each time the lease is taken by an owner that did not hold it
    /// live: writes carrying an older one are refused.
    pub fence: u64,
    /// When it lapses unless renewed, by the store's clock.
    pub expires_at: Timestamp,
}

impl Lease {
    /// The proof writes made under this lease carry.
    pub fn fence(&self) -> Fence {
        Fence {
            lease: self.name.clone(),
            token: self.fence,
        }
    }
}

/// A write's claim to be made under lease `lease` at fencing token `token`;
/// the store refuses the write with [`crate::StoreError::Fenced`] if the
/// lease has changed hands since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub token: u64,
}

#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes `name` for `owner` for `ttl_ms` if it is free or has lapsed
    /// (the fence grows), or extends it if `owner` holds it live (the fence
    /// stays). An owner `NODE/INCARNATION` also takes it at once from
    /// another live incarnation of the same node (a restarted process: the
    /// earlier one is gone or must stop), and the fence grows, so the
    /// earlier process can neither renew it nor write under it. `None` if
    /// another node holds it live.
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: u64,
    ) -> StoreResult<Option<Lease>>;

    /// Extends, by `ttl_ms` from now, each of `names` that `owner` holds
    /// live, in one request; returns those. A name missing from the answer
    /// is lost: its work must stop.
    async fn renew_leases(
        &self,
        owner: &str,
        names: &[String],
        ttl_ms: u64,
    ) -> StoreResult<Vec<Lease>>;

    /// Ends `name` now if `owner` holds it at `fence`, so another owner can
    /// take it without waiting for it to lapse (its fence still grows).
    async fn release_lease(&self, name: &str, owner: &str, fence: u64) -> StoreResult<()>;

    /// Every live lease whose name starts with `prefix`, by name.
    async fn leases(&self, prefix: &str) -> StoreResult<Vec<Lease>>;
}
