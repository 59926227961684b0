//! `/v1/secrets`: set (the value is the raw request body), list (names and
//! times only) and delete. No endpoint returns a value, and no error
//! message carries one: values leave the vault only for granted functions.

use super::{ApiError, ApiState};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use nimbus_vault::{MAX_SECRET_VALUE_BYTES, PutOutcome, VaultError};
use serde_json::json;

pub(super) fn router() -> Router<ApiState> {
    Router::new().route("/v1/secrets", get(list)).route(
        "/v1/secrets/{name}",
        put(set)
            .delete(delete)
            // A value over the limit is refused while it is read, not after.
            .layer(DefaultBodyLimit::max(MAX_SECRET_VALUE_BYTES)),
    )
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Name(_) | VaultError::Empty => ApiError::bad_request(e.to_string()),
            VaultError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            VaultError::Store(e) => e.into(),
            VaultError::WrongKey
            | VaultError::Corrupt(_)
            | VaultError::Random(_)
            | VaultError::KeyMissing(_)
            | VaultError::KeyFile(_) => {
                tracing::error!("secret vault failure behind /v1: {e}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the secret vault failed; see the server log",
                )
            }
        }
    }
}

async fn set(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    // Check the name first, so a bad name is a 400 whatever the body.
    nimbus_vault::check_secret_name(&name).map_err(VaultError::from)?;
    let value = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the secret value is over the limit of {MAX_SECRET_VALUE_BYTES} bytes"),
            )
        } else {
            ApiError::new(rejection.status(), "failed to read the secret value")
        }
    })?;
    Ok(match state.secrets.set(&name, &value).await? {
        PutOutcome::Created => StatusCode::CREATED,
        PutOutcome::Replaced => StatusCode::NO_CONTENT,
    })
}

async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let secrets: Vec<_> = state
        .secrets
        .list()
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "name": s.name,
                "created_at_ms": s.created_at,
                "updated_at_ms": s.updated_at,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "secrets": secrets })).into_response())
}

async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.secrets.delete(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("secret `{name}` is not set"),
        ))
    }
}
