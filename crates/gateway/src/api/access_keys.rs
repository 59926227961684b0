//! `/v1/access-keys`: create, list and revoke the access keys the S3 and
//! SQS endpoints accept. The secret is returned once, when created.

use super::{ApiError, ApiState, parse_json};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use nimbus_access::AccessError;
use serde_json::json;

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1/access-keys", get(list).post(create))
        .route("/v1/access-keys/{id}", delete(revoke))
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Invalid(m) => ApiError::bad_request(m),
            AccessError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            AccessError::Vault(e) => e.into(),
            AccessError::Random(_) | AccessError::Corrupt(..) => {
                tracing::error!("access keys: {e}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the access keys could not be read; see the server log",
                )
            }
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccessKey {
    name: String,
    grants: Vec<String>,
}

async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new: NewAccessKey = parse_json(&headers, &body)?;
    let key = state.access_keys.create(&new.name, &new.grants).await?;
    let body = json!({
        "id": key.id,
        "name": key.name,
        "secret": key.secret,
        "grants": key.grants.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let keys = state.access_keys.list().await?;
    Ok(axum::Json(json!({ "access_keys": keys })).into_response())
}

async fn revoke(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.access_keys.revoke(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
