//! `DeploymentStore` on PostgreSQL: components as one `bytea` row each
//! (checked against their digest before any round trip), deployments with
//! the components they name in a table of their own (indexed by digest, for
//! pruning), and one state row holding the last id handed out and the
//! active deployment. Creates, activations and prunes lock that row first,
//! so they run one at a time across every process (they are rare): ids have
//! no gaps, one digest makes one deployment, and a prune never takes the
//! active deployment or a component a create has just found. Puts and
//! `missing_components` only insert or touch components, and a prune's
//! delete skips a component touched within its grace, so a deploy's
//! uploads survive until its create.

use crate::{PgStore, Tx, in_tx, int8};
use nimbus_store::deployment::{
    self, COMPONENT_GRACE_MS, DEPLOYMENT_SIGNAL, Deployment, DeploymentStore, DeploymentSummary,
    NewDeployment,
};
use nimbus_store::{StoreError, StoreResult};
use std::collections::{BTreeMap, BTreeSet};

/// Locks the state row (the order every deployment change takes) and
/// returns the active deployment's id.
async fn lock_state(tx: &Tx<'_>) -> StoreResult<Option<i64>> {
    let row = tx
        .query_one(
            "SELECT active FROM deployment_state WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Function name to digest, for each of `ids`.
async fn components_of(
    tx: &Tx<'_>,
    ids: &[i64],
) -> StoreResult<BTreeMap<i64, BTreeMap<String, String>>> {
    let rows = tx
        .query(
            "SELECT deployment, function, digest FROM deployment_components
             WHERE deployment = ANY($1)",
            &[&ids],
        )
        .await?;
    let mut by_id: BTreeMap<i64, BTreeMap<String, String>> = BTreeMap::new();
    for row in rows {
        by_id
            .entry(row.get(0))
            .or_default()
            .insert(row.get(1), row.get(2));
    }
    Ok(by_id)
}

async fn get(tx: &Tx<'_>, id: i64) -> StoreResult<Option<Deployment>> {
    let Some(row) = tx
        .query_opt(
            "SELECT digest, manifest, created_at FROM deployments WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Deployment {
        id: id as u64,
        created_ms: row.get::<_, i64>(2) as u64,
        digest: row.get(0),
        manifest: row.get(1),
        components: components_of(tx, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default(),
    }))
}

async fn create(tx: &Tx<'_>, new: &NewDeployment) -> StoreResult<Deployment> {
    lock_state(tx).await?;
    if let Some(row) = tx
        .query_opt(
            "SELECT id FROM deployments WHERE digest = $1",
            &[&new.digest],
        )
        .await?
    {
        let id: i64 = row.get(0);
        return get(tx, id)
            .await?
            .ok_or_else(|| StoreError::Backend(format!("deployment {id} vanished")));
    }
    let digests: Vec<&str> = new.components.values().map(String::as_str).collect();
    let kept: BTreeSet<String> = tx
        .query(
            "SELECT digest FROM components WHERE digest = ANY($1)",
            &[&digests],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if let Some((function, digest)) = new.components.iter().find(|(_, d)| !kept.contains(*d)) {
        return Err(StoreError::ComponentMissing {
            function: function.clone(),
            digest: digest.clone(),
        });
    }
    let id: i64 = tx
        .query_one(
            "UPDATE deployment_state SET last_id = last_id + 1 WHERE id = 1 RETURNING last_id",
            &[],
        )
        .await?
        .get(0);
    tx.execute(
        "INSERT INTO deployments (id, digest, manifest, created_at) VALUES ($1, $2, $3, $4)",
        &[&id, &new.digest, &new.manifest, &tx.now],
    )
    .await?;
    let functions: Vec<&str> = new.components.keys().map(String::as_str).collect();
    tx.execute(
        "INSERT INTO deployment_components (deployment, function, digest)
         SELECT $1, function, digest FROM unnest($2::text[], $3::text[]) AS c (function, digest)",
        &[&id, &functions, &digests],
    )
    .await?;
    Ok(Deployment {
        id: id as u64,
        created_ms: tx.now as u64,
        digest: new.digest.clone(),
        manifest: new.manifest.clone(),
        components: new.components.clone(),
    })
}

#[async_trait::async_trait]
impl DeploymentStore for PgStore {
    async fn put_component(&self, digest: &str, bytes: Vec<u8>) -> StoreResult<()> {
        let bytes = deployment::check_component(digest, bytes).await?;
        in_tx!(self, |tx| {
            tx.execute(
                "INSERT INTO components (digest, put_at, bytes) VALUES ($1, $2, $3)
                 ON CONFLICT (digest) DO UPDATE
                    SET put_at = greatest(components.put_at, excluded.put_at)",
                &[&digest, &tx.now, &bytes],
            )
            .await
            .map(drop)
        })
    }

    async fn missing_components(&self, digests: &[String]) -> StoreResult<Vec<String>> {
        deployment::check_digest_count(digests)?;
        let kept: BTreeSet<String> = in_tx!(self, |tx| {
            // Present ones are about to be named: a new grace.
            let rows = tx
                .query(
                    "UPDATE components SET put_at = greatest(put_at, $2) WHERE digest = ANY($1)
                     RETURNING digest",
                    &[&digests, &tx.now],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })?;
        let mut seen = BTreeSet::new();
        Ok(digests
            .iter()
            .filter(|d| !kept.contains(*d) && seen.insert(*d))
            .cloned()
            .collect())
    }

    async fn component(&self, digest: &str) -> StoreResult<Option<Vec<u8>>> {
        in_tx!(self, |tx| {
            let row = tx
                .query_opt("SELECT bytes FROM components WHERE digest = $1", &[&digest])
                .await?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    async fn create_deployment(&self, new: NewDeployment) -> StoreResult<Deployment> {
        deployment::check_deployment(&new)?;
        in_tx!(self, |tx| create(tx, &new).await)
    }

    async fn activate(&self, id: u64) -> StoreResult<()> {
        let Ok(key) = i64::try_from(id) else {
            return Err(StoreError::DeploymentNotFound(id));
        };
        in_tx!(self, |tx| {
            lock_state(tx).await?;
            let found = tx
                .execute(
                    "UPDATE deployments SET activated_at = $2 WHERE id = $1",
                    &[&key, &tx.now],
                )
                .await?;
            if found == 0 {
                return Err(StoreError::DeploymentNotFound(id));
            }
            tx.execute(
                "UPDATE deployment_state SET active = $1 WHERE id = 1",
                &[&key],
            )
            .await?;
            tx.signal(DEPLOYMENT_SIGNAL);
            Ok(())
        })
    }

    /// One statement, one round trip: every node polls it.
    async fn active_deployment_id(&self) -> StoreResult<Option<u64>> {
        let rows = self
            .db
            .statement(
                "SELECT active FROM deployment_state WHERE id = 1",
                &[],
                None,
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|row| row.get::<_, Option<i64>>(0))
            .map(|id| id as u64))
    }

    async fn deployment(&self, id: u64) -> StoreResult<Option<Deployment>> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        in_tx!(self, |tx| get(tx, id).await)
    }

    async fn deployments(&self, limit: u32) -> StoreResult<Vec<DeploymentSummary>> {
        in_tx!(self, |tx| {
            let active: Option<i64> = tx
                .query_one("SELECT active FROM deployment_state WHERE id = 1", &[])
                .await?
                .get(0);
            let rows = tx
                .query(
                    "SELECT id, created_at, digest, activated_at FROM deployments
                     ORDER BY id DESC LIMIT $1",
                    &[&i64::from(limit)],
                )
                .await?;
            let ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
            let mut components = components_of(tx, &ids).await?;
            Ok(rows
                .iter()
                .map(|row| {
                    let id: i64 = row.get(0);
                    DeploymentSummary {
                        id: id as u64,
                        created_ms: row.get::<_, i64>(1) as u64,
                        digest: row.get(2),
                        functions: components
                            .remove(&id)
                            .unwrap_or_default()
                            .into_keys()
                            .collect(),
                        activated_ms: row.get::<_, Option<i64>>(3).map(|at| at as u64),
                        active: active == Some(id),
                    }
                })
                .collect())
        })
    }

    async fn prune_deployments(&self, keep: u32) -> StoreResult<u64> {
        in_tx!(self, |tx| {
            let active = lock_state(tx).await?.unwrap_or(-1);
            let gone: Vec<i64> = tx
                .query(
                    "DELETE FROM deployments WHERE id <> $2
                        AND id NOT IN (SELECT id FROM deployments ORDER BY id DESC LIMIT $1)
                     RETURNING id",
                    &[&i64::from(keep), &active],
                )
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            tx.execute(
                "DELETE FROM deployment_components WHERE deployment = ANY($1)",
                &[&gone],
            )
            .await?;
            // Past its grace and named by no deployment left.
            tx.execute(
                "DELETE FROM components c WHERE put_at <= $1
                    AND NOT EXISTS (SELECT 1 FROM deployment_components d
                                    WHERE d.digest = c.digest)",
                &[&tx.now.saturating_sub(int8(COMPONENT_GRACE_MS))],
            )
            .await?;
            Ok(gone.len() as u64)
        })
    }
}
