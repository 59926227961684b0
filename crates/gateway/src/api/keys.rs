//! `/v1/keys`: create, list and revoke the API keys that `auth = "api_key"`
//! routes accept. A key is returned once, when created.

use super::{ApiError, ApiState, parse_json};
use crate::auth::{NewKey, NewKeyError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::json;

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/{id}", delete(revoke_key))
}

async fn create_key(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new: NewKey = parse_json(&headers, &body)?;
    let (view, key) = state.keys.create(new).await.map_err(|e| match e {
        NewKeyError::Invalid(m) => ApiError::bad_request(m),
        NewKeyError::TooMany => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        NewKeyError::Store(e) => e.into(),
    })?;
    let mut body = serde_json::to_value(view).unwrap_or_default();
    body["key"] = key.into();
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

async fn list_keys(State(state): State<ApiState>) -> Response {
    axum::Json(json!({ "keys": state.keys.list() })).into_response()
}

async fn revoke_key(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = state.keys.revoke(&id).await?;
    Ok(axum::Json(view).into_response())
}
