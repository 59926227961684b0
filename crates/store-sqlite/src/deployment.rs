//! `DeploymentStore` on SQLite: components as one BLOB row each (checked
//! against their digest before they reach the writer), deployments with
//! the components they name in a table of their own (indexed by digest, for
//! pruning), and one state row holding the last id handed out and the
//! active deployment. Every change runs in the writer, so creates,
//! activations and prunes never interleave.

use crate::writer::Tx;
use crate::{SqliteStore, backend};
use nimbus_store::deployment::{
    self, COMPONENT_GRACE_MS, DEPLOYMENT_SIGNAL, Deployment, DeploymentStore, DeploymentSummary,
    NewDeployment,
};
use nimbus_store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeMap, BTreeSet};

/// Schema version 4: components, deployments, and the deployment state.
/// A component's `put_at` comes before its bytes, so reading it does not
/// walk the bytes' overflow pages.
pub(crate) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS components (
            digest TEXT PRIMARY KEY,
            put_at INTEGER NOT NULL,
            bytes BLOB NOT NULL
        );
        CREATE TABLE IF NOT EXISTS deployments (
            id INTEGER PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE,
            manifest TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            activated_at INTEGER
        );
        CREATE TABLE IF NOT EXISTS deployment_components (
            deployment INTEGER NOT NULL,
            function TEXT NOT NULL,
            digest TEXT NOT NULL,
            PRIMARY KEY (deployment, function)
        );
        CREATE INDEX IF NOT EXISTS deployment_components_digest
            ON deployment_components (digest);
        CREATE TABLE IF NOT EXISTS deployment_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last_id INTEGER NOT NULL,
            active INTEGER
        );
        INSERT OR IGNORE INTO deployment_state (id, last_id, active) VALUES (1, 0, NULL);",
    )
    .map_err(backend)
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn active(tx: &Tx<'_>) -> StoreResult<Option<u64>> {
    tx.query_row(
        "SELECT active FROM deployment_state WHERE id = 1",
        [],
        |row| row.get::<_, Option<i64>>(0),
    )
    .map(|id| id.map(|id| id as u64))
    .map_err(backend)
}

fn components_of(tx: &Tx<'_>, id: i64) -> StoreResult<BTreeMap<String, String>> {
    tx.conn
        .prepare_cached(
            "SELECT function, digest FROM deployment_components WHERE deployment = ?1
             ORDER BY function",
        )
        .map_err(backend)?
        .query_map(params![id], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)
}

fn get(tx: &Tx<'_>, id: u64) -> StoreResult<Option<Deployment>> {
    let Ok(id) = i64::try_from(id) else {
        return Ok(None);
    };
    let row = tx
        .query_row(
            "SELECT digest, manifest, created_at FROM deployments WHERE id = ?1",
            params![id],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            },
        )
        .optional()
        .map_err(backend)?;
    let Some((digest, manifest, created_at)) = row else {
        return Ok(None);
    };
    Ok(Some(Deployment {
        id: id as u64,
        created_ms: created_at as u64,
        digest,
        manifest,
        components: components_of(tx, id)?,
    }))
}

fn create(tx: &Tx<'_>, new: NewDeployment) -> StoreResult<Deployment> {
    let existing: Option<i64> = tx
        .query_row(
            "SELECT id FROM deployments WHERE digest = ?1",
            params![new.digest],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?;
    if let Some(id) = existing {
        return get(tx, id as u64)?
            .ok_or_else(|| StoreError::Backend(format!("deployment {id} vanished")));
    }
    for (function, digest) in &new.components {
        let kept: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM components WHERE digest = ?1)",
                params![digest],
                |row| row.get(0),
            )
            .map_err(backend)?;
        if !kept {
            return Err(StoreError::ComponentMissing {
                function: function.clone(),
                digest: digest.clone(),
            });
        }
    }
    let id: i64 = tx
        .query_row(
            "UPDATE deployment_state SET last_id = last_id + 1 WHERE id = 1 RETURNING last_id",
            [],
            |row| row.get(0),
        )
        .map_err(backend)?;
    tx.execute(
        "INSERT INTO deployments (id, digest, manifest, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, new.digest, new.manifest, int(tx.now)],
    )
    .map_err(backend)?;
    for (function, digest) in &new.components {
        tx.execute(
            "INSERT INTO deployment_components (deployment, function, digest) VALUES (?1, ?2, ?3)",
            params![id, function, digest],
        )
        .map_err(backend)?;
    }
    Ok(Deployment {
        id: id as u64,
        created_ms: tx.now,
        digest: new.digest,
        manifest: new.manifest,
        components: new.components,
    })
}

fn activate(tx: &Tx<'_>, id: u64) -> StoreResult<()> {
    let found = match i64::try_from(id) {
        Ok(key) => tx
            .execute(
                "UPDATE deployments SET activated_at = ?2 WHERE id = ?1",
                params![key, int(tx.now)],
            )
            .map_err(backend)?,
        Err(_) => 0,
    };
    if found == 0 {
        return Err(StoreError::DeploymentNotFound(id));
    }
    tx.execute(
        "UPDATE deployment_state SET active = ?1 WHERE id = 1",
        params![int(id)],
    )
    .map_err(backend)?;
    tx.signal(DEPLOYMENT_SIGNAL);
    Ok(())
}

fn list(tx: &Tx<'_>, limit: u32) -> StoreResult<Vec<DeploymentSummary>> {
    let active = active(tx)?;
    let rows: Vec<(i64, i64, String, Option<i64>)> = tx
        .conn
        .prepare_cached(
            "SELECT id, created_at, digest, activated_at FROM deployments
             ORDER BY id DESC LIMIT +?1",
        )
        .map_err(backend)?
        .query_map(params![limit], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    rows.into_iter()
        .map(|(id, created_at, digest, activated_at)| {
            Ok(DeploymentSummary {
                id: id as u64,
                created_ms: created_at as u64,
                digest,
                functions: components_of(tx, id)?.into_keys().collect(),
                activated_ms: activated_at.map(|at| at as u64),
                active: active == Some(id as u64),
            })
        })
        .collect()
}

fn prune(tx: &Tx<'_>, keep: u32) -> StoreResult<u64> {
    let active = active(tx)?.map_or(-1, int);
    let gone: Vec<i64> = tx
        .conn
        .prepare_cached(
            "SELECT id FROM deployments WHERE id <> ?2
                AND id NOT IN (SELECT id FROM deployments ORDER BY id DESC LIMIT +?1)",
        )
        .map_err(backend)?
        .query_map(params![keep, active], |row| row.get(0))
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    for id in &gone {
        tx.execute(
            "DELETE FROM deployment_components WHERE deployment = ?1",
            params![id],
        )
        .map_err(backend)?;
        tx.execute("DELETE FROM deployments WHERE id = ?1", params![id])
            .map_err(backend)?;
    }
    // Past its grace and named by no deployment left.
    let cutoff = int(tx.now).saturating_sub(int(COMPONENT_GRACE_MS));
    tx.execute(
        "DELETE FROM components WHERE put_at <= ?1
            AND NOT EXISTS (SELECT 1 FROM deployment_components d
                            WHERE d.digest = components.digest)",
        params![cutoff],
    )
    .map_err(backend)?;
    Ok(gone.len() as u64)
}

#[async_trait::async_trait]
impl DeploymentStore for SqliteStore {
    async fn put_component(&self, digest: &str, bytes: Vec<u8>) -> StoreResult<()> {
        let bytes = deployment::check_component(digest, bytes).await?;
        let digest = digest.to_owned();
        self.writer
            .run(move |tx| {
                tx.execute(
                    "INSERT INTO components (digest, put_at, bytes) VALUES (?1, ?2, ?3)
                     ON CONFLICT (digest) DO UPDATE SET put_at = max(put_at, excluded.put_at)",
                    params![digest, int(tx.now), bytes],
                )
                .map(drop)
                .map_err(backend)
            })
            .await
    }

    async fn missing_components(&self, digests: &[String]) -> StoreResult<Vec<String>> {
        deployment::check_digest_count(digests)?;
        let digests = digests.to_vec();
        self.writer
            .run(move |tx| {
                let mut seen = BTreeSet::new();
                let mut missing = Vec::new();
                for digest in digests {
                    if !seen.insert(digest.clone()) {
                        continue;
                    }
                    // Present ones are about to be named: a new grace.
                    let kept = tx
                        .execute(
                            "UPDATE components SET put_at = max(put_at, ?2) WHERE digest = ?1",
                            params![digest, int(tx.now)],
                        )
                        .map_err(backend)?;
                    if kept == 0 {
                        missing.push(digest);
                    }
                }
                Ok(missing)
            })
            .await
    }

    async fn component(&self, digest: &str) -> StoreResult<Option<Vec<u8>>> {
        let digest = digest.to_owned();
        self.writer
            .run(move |tx| {
                tx.query_row(
                    "SELECT bytes FROM components WHERE digest = ?1",
                    params![digest],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)
            })
            .await
    }

    async fn create_deployment(&self, new: NewDeployment) -> StoreResult<Deployment> {
        deployment::check_deployment(&new)?;
        self.writer.run(move |tx| create(tx, new)).await
    }

    async fn activate(&self, id: u64) -> StoreResult<()> {
        self.writer.run(move |tx| activate(tx, id)).await
    }

    async fn active_deployment_id(&self) -> StoreResult<Option<u64>> {
        self.writer.run(active).await
    }

    async fn deployment(&self, id: u64) -> StoreResult<Option<Deployment>> {
        self.writer.run(move |tx| get(tx, id)).await
    }

    async fn deployments(&self, limit: u32) -> StoreResult<Vec<DeploymentSummary>> {
        self.writer.run(move |tx| list(tx, limit)).await
    }

    async fn prune_deployments(&self, keep: u32) -> StoreResult<u64> {
        self.writer.run(move |tx| prune(tx, keep)).await
    }
}
