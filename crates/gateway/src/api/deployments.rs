//! `/v1/components` and `/v1/deployments`: app versions sent to a running
//! server. Components are uploaded by digest (only those the store lacks),
//! then a deployment names the manifest and each function's component; the
//! server checks and compiles it before it goes live, so a bad one is
//! refused with the reason while the current version keeps serving.
//! Activating an older deployment is a rollback.

use super::{ApiError, ApiState, parse_json};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use nimbus_engine::rfc3339;
use nimbus_store::deployment::MAX_COMPONENT_BYTES;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Deployments listed at most.
const MAX_LISTED: u32 = 100;

/// How a deployment went live on this node.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub id: u64,
    pub digest: String,
    pub created_ms: u64,
    /// Whether the store already had this version (same digest).
    pub existed: bool,
    /// From the request to serving it, in milliseconds (checks and
    /// compilation included).
    pub took_ms: u64,
}

/// Why a deployment did not go live.
#[derive(Debug, Clone)]
pub enum DeployError {
    /// The version is wrong (manifest, component, a change that cannot be
    /// applied live): the reason, for the deployer to fix.
    Refused(String),
    /// No deployment has this id.
    NotFound(u64),
    /// The server could not do it now (the store failed).
    Failed(String),
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::Refused(reason) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason),
            DeployError::NotFound(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                format!("deployment {id} does not exist"),
            ),
            DeployError::Failed(reason) => {
                tracing::error!("deployment failed: {reason}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the deployment could not be made now; see the server log",
                )
            }
        }
    }
}

/// A future a [`Deployer`] returns.
pub type Deploying = Pin<Box<dyn Future<Output = Result<Deployed, DeployError>> + Send>>;

/// What puts versions live: the server, which checks and compiles them. A
/// change runs to its end even if the request that asked for it goes away.
pub trait Deployer: Send + Sync {
    /// Checks, records and serves the version with `manifest` and these
    /// components (function name to digest, each already uploaded).
    fn deploy(self: Arc<Self>, manifest: String, components: BTreeMap<String, String>)
    -> Deploying;
    /// Serves the recorded deployment `id` again.
    fn activate(self: Arc<Self>, id: u64) -> Deploying;
}

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route(
            "/v1/components/{digest}",
            put(put_component).layer(axum::extract::DefaultBodyLimit::max(MAX_COMPONENT_BYTES)),
        )
        .route("/v1/components/missing", post(missing_components))
        .route("/v1/deployments", get(list).post(create))
        .route("/v1/deployments/{id}", get(show))
        .route("/v1/deployments/{id}/activate", post(activate))
}

/// Component uploads read at once: each holds its whole body (up to
/// [`MAX_COMPONENT_BYTES`]) in memory until stored.
const CONCURRENT_UPLOADS: usize = 2;
static UPLOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_UPLOADS);

/// `PUT /v1/components/{digest}`: the raw component bytes, kept if they
/// hash to `digest`. The body is read only once an upload slot is free.
async fn put_component(
    State(state): State<ApiState>,
    Path(digest): Path<String>,
    body: axum::body::Body,
) -> Result<StatusCode, ApiError> {
    let _slot = UPLOADS
        .acquire()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "uploads are closed"))?;
    let bytes = axum::body::to_bytes(body, MAX_COMPONENT_BYTES)
        .await
        .map_err(|e| {
            if e.into_inner().is::<http_body_util::LengthLimitError>() {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("a component is at most {MAX_COMPONENT_BYTES} bytes"),
                )
            } else {
                ApiError::bad_request("the component's body was cut off")
            }
        })?;
    state.store.put_component(&digest, Vec::from(bytes)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/components/missing` `{"digests": [...]}`: which of them the
/// server lacks, so a deploy uploads only those.
async fn missing_components(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ask {
        digests: Vec<String>,
    }
    let ask: Ask = parse_json(&headers, &body)?;
    let missing = state.store.missing_components(&ask.digests).await?;
    Ok(axum::Json(json!({ "missing": missing })))
}

/// `POST /v1/deployments` `{"manifest": "...", "components": {"fn": "digest"}}`.
async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Create {
        manifest: String,
        components: BTreeMap<String, String>,
    }
    let request: Create = parse_json(&headers, &body)?;
    let deployer = deployer(&state)?;
    let deployed = deployer
        .deploy(request.manifest, request.components)
        .await?;
    let status = if deployed.existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(deployed_json(&deployed))))
}

/// `POST /v1/deployments/{id}/activate`: serve that version again.
async fn activate(
    State(state): State<ApiState>,
    Path(id): Path<u64>,
) -> Result<axum::Json<Value>, ApiError> {
    let deployed = deployer(&state)?.activate(id).await?;
    Ok(axum::Json(deployed_json(&deployed)))
}

async fn list(State(state): State<ApiState>) -> Result<axum::Json<Value>, ApiError> {
    let deployments: Vec<Value> = state
        .store
        .deployments(MAX_LISTED)
        .await?
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id,
                "created": rfc3339(d.created_ms),
                "digest": d.digest,
                "functions": d.functions,
                "activated": d.activated_ms.map(rfc3339),
                "active": d.active,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "deployments": deployments })))
}

async fn show(
    State(state): State<ApiState>,
    Path(id): Path<u64>,
) -> Result<axum::Json<Value>, ApiError> {
    let d = state
        .store
        .deployment(id)
        .await?
        .ok_or_else(|| ApiError::from(DeployError::NotFound(id)))?;
    let active = state.store.active_deployment_id().await? == Some(id);
    Ok(axum::Json(json!({
        "id": d.id,
        "created": rfc3339(d.created_ms),
        "digest": d.digest,
        "components": d.components,
        "manifest": d.manifest,
        "active": active,
    })))
}

fn deployer(state: &ApiState) -> Result<Arc<dyn Deployer>, ApiError> {
    state.deployer.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this server does not take deployments",
        )
    })
}

fn deployed_json(d: &Deployed) -> Value {
    json!({
        "id": d.id,
        "digest": d.digest,
        "created": rfc3339(d.created_ms),
        "existed": d.existed,
        "took_ms": d.took_ms,
    })
}
