//! `LeaseStore` on PostgreSQL: one row per lease. Taking a lease is one
//! conditional upsert (free, lapsed, already the caller's, or an earlier
//! incarnation's of the caller's node: the `/` in the SQL is
//! `INCARNATION_SEPARATOR`), so two nodes
//! racing for it cannot both win; a fenced write locks the lease row
//! (`FOR SHARE`) for its transaction, so the lease cannot change hands
//! between the check and the commit.

use crate::{PgStore, Tx, in_tx, int8, later};
use nimbus_store::lease::{Fence, Lease, LeaseStore};
use nimbus_store::{StoreError, StoreResult};
use tokio_postgres::Row;

fn lease_from_row(row: &Row) -> Lease {
    Lease {
        name: row.get(0),
        owner: row.get(1),
        fence: row.get::<_, i64>(2) as u64,
        expires_at: row.get::<_, i64>(3) as u64,
    }
}

/// Fails with `Fenced` unless `fence`'s lease is still at its token, and
/// holds the lease row until the transaction ends.
pub(crate) async fn check_fence(tx: &Tx<'_>, fence: &Fence) -> StoreResult<()> {
    let current = tx
        .query_opt(
            "SELECT fence FROM leases WHERE name = $1 FOR SHARE",
            &[&fence.lease],
        )
        .await?
        .map(|row| row.get::<_, i64>(0));
    if current != Some(int8(fence.token)) {
        return Err(StoreError::Fenced {
            lease: fence.lease.clone(),
            token: fence.token,
        });
    }
    Ok(())
}

#[async_trait::async_trait]
impl LeaseStore for PgStore {
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: u64,
    ) -> StoreResult<Option<Lease>> {
        in_tx!(self, |tx| {
            let row = tx
                .query_opt(
                    "INSERT INTO leases AS l (name, owner, fence, expires_at) VALUES ($1, $2, 1, $3)
                     ON CONFLICT (name) DO UPDATE SET
                        fence = CASE WHEN l.owner = excluded.owner AND l.expires_at > $4
                                     THEN l.fence ELSE l.fence + 1 END,
                        owner = excluded.owner,
                        expires_at = excluded.expires_at
                     WHERE l.owner = excluded.owner OR l.expires_at <= $4
                        OR split_part(l.owner, '/', 1) = split_part(excluded.owner, '/', 1)
                     RETURNING name, owner, fence, expires_at",
                    &[&name, &owner, &later(tx.now, ttl_ms), &tx.now],
                )
                .await?;
            Ok(row.as_ref().map(lease_from_row))
        })
    }

    async fn renew_leases(
        &self,
        owner: &str,
        names: &[String],
        ttl_ms: u64,
    ) -> StoreResult<Vec<Lease>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        in_tx!(self, |tx| {
            let rows = tx
                .query(
                    "UPDATE leases SET expires_at = $3
                     WHERE name = ANY($1) AND owner = $2 AND expires_at > $4
                     RETURNING name, owner, fence, expires_at",
                    &[&names, &owner, &later(tx.now, ttl_ms), &tx.now],
                )
                .await?;
            let mut leases: Vec<Lease> = rows.iter().map(lease_from_row).collect();
            leases.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(leases)
        })
    }

    async fn release_lease(&self, name: &str, owner: &str, fence: u64) -> StoreResult<()> {
        in_tx!(self, |tx| {
            tx.execute(
                "UPDATE leases SET expires_at = $4
                 WHERE name = $1 AND owner = $2 AND fence = $3 AND expires_at > $4",
                &[&name, &owner, &int8(fence), &tx.now],
            )
            .await
            .map(drop)
        })
    }

    async fn leases(&self, prefix: &str) -> StoreResult<Vec<Lease>> {
        in_tx!(self, |tx| {
            let rows = tx
                .query(
                    "SELECT name, owner, fence, expires_at FROM leases
                     WHERE starts_with(name, $1) AND expires_at > $2 ORDER BY name",
                    &[&prefix, &tx.now],
                )
                .await?;
            Ok(rows.iter().map(lease_from_row).collect())
        })
    }
}
