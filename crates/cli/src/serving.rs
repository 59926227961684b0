//! What this node serves, and how that changes. The deployment live now
//! has its routes behind the public listener, its view behind `/v1` and its
//! triggers' workers running; it is swapped for the store's active
//! deployment whenever that changes: by a deploy or rollback through this
//! node's `/v1` (checked and compiled here before anything is recorded), or
//! through another node's (heard as the store's deployment signal, or seen
//! by a poll every second). Requests in flight finish on the version they
//! started on; the old triggers finish their batches in flight and stop,
//! then the new ones start, so acknowledged messages wait in their queues
//! and none is lost. A version that fails to prepare is refused and the
//! running one keeps serving. Changes run one at a time, each to its end
//! even if the client that asked goes away, and none once the node stops.

use crate::deployment::Deployment;
use crate::server::Server;
use nimbus_gateway::api::AppView;
use nimbus_gateway::api::deployments::{DeployError, Deployed, Deployer, Deploying};
use nimbus_gateway::{Live, PublicGateway};
use nimbus_manifest::{App, JwtKeys};
use nimbus_store::deployment::{DEPLOYMENT_SIGNAL, NewDeployment};
use nimbus_store::{Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How often a node checks the store's active deployment when no signal
/// came (a signal lost while the store's listener reconnected, say).
const FOLLOW_POLL: Duration = Duration::from_secs(1);
/// Deployments kept in the store (besides the active one).
const KEEP_DEPLOYMENTS: u32 = 50;

/// The app as this node's `nimbus up` was given it: its manifest path makes
/// relative paths in it (`jwks_file`) mean what they meant there.
pub struct LocalApp {
    pub app: App,
    pub digest: String,
}

/// The deployment this node serves and the means to change it.
pub struct Serving {
    server: Arc<Server>,
    local: Option<LocalApp>,
    gateway: Arc<Live<PublicGateway>>,
    view: Arc<Live<AppView>>,
    running: tokio::sync::Mutex<Running>,
}

/// The live deployment and its triggers' workers.
struct Running {
    deployment: Arc<Deployment>,
    stop: watch::Sender<bool>,
    triggers: JoinSet<()>,
    /// The last active id this node could not prepare (for a reason that
    /// will not pass by itself), so it is not tried again each poll.
    refused: Option<u64>,
    /// Set once the node stops: no version changes after that.
    closing: bool,
}

impl Serving {
    /// Serves `first` now: its routes, its view and its triggers.
    pub fn start(server: Arc<Server>, local: Option<LocalApp>, first: Deployment) -> Arc<Self> {
        let first = Arc::new(first);
        server.metrics.deployment.with(&[]).set(first.id as i64);
        let (stop, stopped) = watch::channel(false);
        let triggers = first.start(&server, server.started_ms, stopped);
        Arc::new(Serving {
            gateway: Arc::new(Live::new(first.gateway.clone())),
            view: Arc::new(Live::new(first.view.clone())),
            running: tokio::sync::Mutex::new(Running {
                deployment: first,
                stop,
                triggers,
                refused: None,
                closing: false,
            }),
            server,
            local,
        })
    }

    pub fn gateway(&self) -> Arc<Live<PublicGateway>> {
        self.gateway.clone()
    }

    pub fn view(&self) -> Arc<Live<AppView>> {
        self.view.clone()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.server.store
    }

    /// Puts `next` live: new requests reach it at once, the old triggers
    /// finish their work in flight (within the shutdown grace) and stop,
    /// then `next`'s start.
    async fn switch(&self, running: &mut Running, next: Deployment) {
        let next = Arc::new(next);
        self.gateway.replace(next.gateway.clone());
        self.view.replace(next.view.clone());
        let _ = running.stop.send(true);
        let grace = self.server.limits.shutdown_grace;
        let old = std::mem::take(&mut running.triggers);
        drain(old, grace).await;
        let (stop, stopped) = watch::channel(false);
        running.triggers = next.start(&self.server, self.server.clock.now_ms(), stopped);
        running.stop = stop;
        tracing::info!(
            deployment = next.id,
            replaced = running.deployment.id,
            "deployment live"
        );
        let metrics = &self.server.metrics;
        metrics.deployment.with(&[]).set(next.id as i64);
        metrics.deploys.with(&["live"]).inc();
        running.deployment = next;
        running.refused = None;
    }

    /// The manifest parsed, if it is this server's app and names a
    /// component for each function, and only for them.
    fn admit(
        &self,
        running: &Running,
        manifest: &str,
        components: &BTreeMap<String, String>,
    ) -> Result<App, DeployError> {
        // Parsed under a name of its own: a relative path in it meant
        // something only on the machine it came from.
        let app = parse(0, manifest)?;
        same_app(running, &app)?;
        for function in app.functions.keys() {
            if !components.contains_key(function) {
                return Err(DeployError::Refused(format!(
                    "no component given for function `{function}`"
                )));
            }
        }
        if let Some(extra) = components.keys().find(|f| !app.functions.contains_key(*f)) {
            return Err(DeployError::Refused(format!(
                "a component is given for `{extra}`, which the manifest does not declare"
            )));
        }
        Ok(app)
    }

    /// Counts a version this node could not prepare.
    fn refused(&self) {
        self.server.metrics.deploys.with(&["refused"]).inc();
    }

    /// Stops the triggers (at shutdown) and waits up to `grace` for their
    /// work in flight; no version changes after this.
    pub async fn stop(&self, grace: Duration) {
        let mut running = self.running.lock().await;
        running.closing = true;
        let _ = running.stop.send(true);
        let triggers = std::mem::take(&mut running.triggers);
        drain(triggers, grace).await;
    }

    /// Follows the store's active deployment until `shutdown`.
    pub async fn follow(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let signal = self.server.store.signals().get(DEPLOYMENT_SIGNAL);
        loop {
            tokio::select! {
                () = signal.notified() => {}
                () = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            // To its end: a change cut off halfway would leave no triggers.
            let this = self.clone();
            if let Ok(Err(e)) = tokio::spawn(async move { this.catch_up().await }).await {
                tracing::warn!("could not follow the store's active deployment: {e}");
            }
        }
    }

    /// Serves the store's active deployment if it is not served already.
    async fn catch_up(&self) -> Result<(), StoreError> {
        let mut running = self.running.lock().await;
        if running.closing {
            return Ok(());
        }
        // Read under the lock: a deploy that held it has activated its own
        // version, which this must not undo with what it read before.
        let Some(active) = self.server.store.active_deployment_id().await? else {
            return Ok(());
        };
        if running.deployment.id == active || running.refused == Some(active) {
            return Ok(());
        }
        match self.prepare_stored(active).await {
            Ok(next) => self.switch(&mut running, next).await,
            Err(DeployError::Failed(reason)) => {
                // Passes by itself (the store was unreachable): next poll.
                return Err(StoreError::Unavailable(reason));
            }
            Err(e) => {
                self.refused();
                tracing::error!(
                    deployment = active,
                    "the store's active deployment cannot be served here; still serving deployment {}: {}",
                    running.deployment.id,
                    reason(&e)
                );
                running.refused = Some(active);
            }
        }
        Ok(())
    }

    /// Prepares the stored deployment `id`.
    async fn prepare_stored(&self, id: u64) -> Result<Deployment, DeployError> {
        prepare_stored(&self.server, self.local.as_ref(), id).await
    }

    /// Checks, records and serves `app` (parsed from `manifest`) with these
    /// components: refused, with nothing recorded, unless it prepares.
    pub async fn deploy_app(
        self: Arc<Self>,
        app: App,
        manifest: String,
        components: BTreeMap<String, String>,
        started: Instant,
    ) -> Result<Deployed, DeployError> {
        // To its end even if the caller goes away: a change cut off halfway
        // would leave no triggers running.
        tokio::spawn(async move {
            let mut running = self.running.lock().await;
            same_app(&running, &app)?;
            self.record_and_serve(&mut running, app, manifest, components, started)
                .await
        })
        .await
        .unwrap_or_else(|e| Err(DeployError::Failed(format!("the deploy task failed: {e}"))))
    }

    async fn record_and_serve(
        &self,
        running: &mut Running,
        app: App,
        manifest: String,
        components: BTreeMap<String, String>,
        started: Instant,
    ) -> Result<Deployed, DeployError> {
        let result = self
            .try_record_and_serve(running, app, manifest, components, started)
            .await;
        if let Err(DeployError::Refused(_)) = &result {
            self.refused();
        }
        result
    }

    async fn try_record_and_serve(
        &self,
        running: &mut Running,
        app: App,
        manifest: String,
        components: BTreeMap<String, String>,
        started: Instant,
    ) -> Result<Deployed, DeployError> {
        if running.closing {
            return Err(stopping());
        }
        let store = &self.server.store;
        let new = NewDeployment {
            manifest,
            components,
            digest: String::new(),
        };
        let new = NewDeployment {
            digest: deployment_digest(&new.manifest, &new.components),
            ..new
        };
        // The store's own bounds, before anything is declared.
        nimbus_store::deployment::check_deployment(&new).map_err(failed)?;
        let bytes = fetch(store.as_ref(), &new.components).await?;
        let mut next = Deployment::prepare(&self.server, 0, app, &bytes)
            .await
            .map_err(prepare_failed)?;
        let known = store.deployments(1).await.map_err(failed)?;
        let record = store.create_deployment(new).await.map_err(failed)?;
        let existed = known.first().is_some_and(|newest| newest.id >= record.id);
        store.activate(record.id).await.map_err(failed)?;
        next.id = record.id;
        if running.deployment.id != record.id {
            self.switch(running, next).await;
        }
        prune(store.as_ref()).await;
        Ok(Deployed {
            id: record.id,
            digest: record.digest,
            created_ms: record.created_ms,
            existed,
            took_ms: started.elapsed().as_millis() as u64,
        })
    }

    async fn activate_stored(&self, id: u64) -> Result<Deployed, DeployError> {
        let started = Instant::now();
        let store = &self.server.store;
        let mut running = self.running.lock().await;
        if running.closing {
            return Err(stopping());
        }
        let record = store
            .deployment(id)
            .await
            .map_err(failed)?
            .ok_or(DeployError::NotFound(id))?;
        if running.deployment.id != id {
            let next = self.prepare_stored(id).await.inspect_err(|e| {
                if matches!(e, DeployError::Refused(_)) {
                    self.refused();
                }
            })?;
            store.activate(id).await.map_err(failed)?;
            self.switch(&mut running, next).await;
        } else {
            store.activate(id).await.map_err(failed)?;
        }
        Ok(Deployed {
            id,
            digest: record.digest,
            created_ms: record.created_ms,
            existed: true,
            took_ms: started.elapsed().as_millis() as u64,
        })
    }
}

impl Deployer for Serving {
    fn deploy(
        self: Arc<Self>,
        manifest: String,
        components: BTreeMap<String, String>,
    ) -> Deploying {
        Box::pin(async move {
            let started = Instant::now();
            let this = self.clone();
            tokio::spawn(async move {
                let mut running = this.running.lock().await;
                let app = match this.admit(&running, &manifest, &components) {
                    Ok(app) => app,
                    Err(e) => {
                        this.refused();
                        return Err(e);
                    }
                };
                this.record_and_serve(&mut running, app, manifest, components, started)
                    .await
            })
            .await
            .unwrap_or_else(|e| Err(DeployError::Failed(format!("the deploy task failed: {e}"))))
        })
    }

    fn activate(self: Arc<Self>, id: u64) -> Deploying {
        Box::pin(async move {
            tokio::spawn(async move { self.activate_stored(id).await })
                .await
                .unwrap_or_else(|e| {
                    Err(DeployError::Failed(format!(
                        "the rollback task failed: {e}"
                    )))
                })
        })
    }
}

/// Prepares the stored deployment `id` on `server`; `local` is the app this
/// node was started with, used as it is when it is that version.
pub(crate) async fn prepare_stored(
    server: &Server,
    local: Option<&LocalApp>,
    id: u64,
) -> Result<Deployment, DeployError> {
    let store = &server.store;
    let record = store
        .deployment(id)
        .await
        .map_err(failed)?
        .ok_or(DeployError::NotFound(id))?;
    let app = match local {
        Some(local) if local.digest == record.digest => local.app.clone(),
        _ => parse(id, &record.manifest)?,
    };
    let components = fetch(store.as_ref(), &record.components).await?;
    Deployment::prepare(server, id, app, &components)
        .await
        .map_err(prepare_failed)
}

/// The digest of a version: its manifest and, by function, its components.
pub fn deployment_digest(manifest: &str, components: &BTreeMap<String, String>) -> String {
    let mut text = String::with_capacity(manifest.len() + 80 * components.len());
    text.push_str(manifest);
    text.push('\0');
    for (function, digest) in components {
        text.push_str(function);
        text.push('=');
        text.push_str(digest);
        text.push('\n');
    }
    nimbus_store::deployment::component_digest(text.as_bytes())
}

/// A deployed manifest, parsed as if it lay in a directory of its own that
/// exists nowhere. It may not name a file of the server's (`jwks_file`):
/// whoever deploys must not make the server read its files.
fn parse(id: u64, manifest: &str) -> Result<App, DeployError> {
    let path = PathBuf::from(format!("/nimbus/deployments/{id}/nimbus.toml"));
    let app = App::parse(&path, manifest).map_err(|e| DeployError::Refused(e.to_string()))?;
    if let Some(jwt) = &app.jwt
        && matches!(jwt.keys, JwtKeys::JwksFile(_))
    {
        return Err(DeployError::Refused(
            "[auth.jwt] `jwks_file` names a file on the server, which a deployed app may not read; \
             give `jwks_url` (or start the server with this manifest: `nimbus up` may)"
                .to_owned(),
        ));
    }
    Ok(app)
}

/// Refuses a version of another app than the one served.
fn same_app(running: &Running, app: &App) -> Result<(), DeployError> {
    let current = &running.deployment.app.name;
    if &app.name != current {
        return Err(DeployError::Refused(format!(
            "this server runs app `{current}`, not `{}`",
            app.name
        )));
    }
    Ok(())
}

/// The bytes of each function's component.
async fn fetch(
    store: &dyn Store,
    components: &BTreeMap<String, String>,
) -> Result<HashMap<String, Arc<Vec<u8>>>, DeployError> {
    let mut bytes: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
    let mut by_digest: HashMap<&str, Arc<Vec<u8>>> = HashMap::new();
    for (function, digest) in components {
        let component = match by_digest.get(digest.as_str()) {
            Some(component) => component.clone(),
            None => {
                let component =
                    store
                        .component(digest)
                        .await
                        .map_err(failed)?
                        .ok_or_else(|| {
                            DeployError::Refused(format!(
                                "component {digest} of function `{function}` was not uploaded"
                            ))
                        })?;
                let component = Arc::new(component);
                by_digest.insert(digest, component.clone());
                component
            }
        };
        bytes.insert(function.clone(), component);
    }
    Ok(bytes)
}

/// Waits up to `grace` for `tasks`, then cuts off what is left.
async fn drain(mut tasks: JoinSet<()>, grace: Duration) {
    let _ = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
}

async fn prune(store: &dyn Store) {
    match store.prune_deployments(KEEP_DEPLOYMENTS).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} old deployments"),
        Err(e) => tracing::warn!("failed to remove old deployments: {e}"),
    }
}

/// A store error: the deployer's fault when the store refused what it
/// sent, else the server's.
fn failed(e: StoreError) -> DeployError {
    match e {
        StoreError::InvalidDeployment(_)
        | StoreError::InvalidComponent(_)
        | StoreError::ComponentMissing { .. } => DeployError::Refused(e.to_string()),
        StoreError::DeploymentNotFound(id) => DeployError::NotFound(id),
        e => DeployError::Failed(e.to_string()),
    }
}

/// Why a version did not prepare: a store failure passes by itself (and is
/// the server's), anything else is the version's.
fn prepare_failed(e: anyhow::Error) -> DeployError {
    match e.chain().find_map(|c| c.downcast_ref::<StoreError>()) {
        Some(store) => failed(store.clone()),
        None => DeployError::Refused(format!("{e:#}")),
    }
}

fn stopping() -> DeployError {
    DeployError::Failed("the server is stopping".to_owned())
}

pub(crate) fn reason(e: &DeployError) -> String {
    match e {
        DeployError::Refused(reason) | DeployError::Failed(reason) => reason.clone(),
        DeployError::NotFound(id) => format!("deployment {id} does not exist"),
    }
}
