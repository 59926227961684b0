//! `/v1/tables`: put (unconditional, if absent, if the version matches),
//! get and delete items, query a partition by sort-key range or prefix,
//! scan, all in pages with continuation cursors; read a table's change
//! stream for inspection; and delete a table a deployment dropped. A
//! dropped table is kept, with its items, until it is deleted: it is
//! listed (`"declared": false`) and its items are served as a declared
//! table's are.

use super::{ApiError, ApiState, page_limit, parse_json, traceparent};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use nimbus_store::{ConditionFailed, ItemKey, PutCondition, SortRange, StoredItem};
use serde::Deserialize;
use serde_json::{Value, json};

/// Items per page when the caller does not say, and at most.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1/tables", get(list_tables))
        .route("/v1/tables/{table}", axum::routing::delete(delete_table))
        .route("/v1/tables/{table}/items", get(list_items).post(put_item))
        .route(
            "/v1/tables/{table}/items/{partition}",
            get(get_item).delete(delete_item),
        )
        .route("/v1/tables/{table}/stream", get(read_stream))
}

/// The table's settings: the served version's, else those the store kept
/// for a table a deployment dropped.
async fn config(state: &ApiState, table: &str) -> Result<nimbus_manifest::Table, ApiError> {
    if let Some(declared) = state.app().tables.get(table) {
        return Ok(declared.clone());
    }
    state
        .tables
        .tables()
        .await?
        .iter()
        .find(|t| t.name == table)
        .map(kept_table)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("table `{table}` does not exist"),
            )
        })
}

/// A table as the store keeps it, in the manifest's terms.
fn kept_table(config: &nimbus_store::TableConfig) -> nimbus_manifest::Table {
    nimbus_manifest::Table {
        name: config.name.clone(),
        partition_key: config.partition_key.clone(),
        sort_key: config.sort_key.clone(),
        stream: config.stream.map(|view| view.as_str().to_owned()),
        stream_retention_s: config.stream_retention_ms / 1000,
        max_item_bytes: config.max_item_bytes as u64,
    }
}

fn key_json(key: &ItemKey) -> Value {
    json!({ "partition": key.partition, "sort": key.sort })
}

fn item_json(item: &StoredItem) -> Value {
    let document: Value = serde_json::from_slice(&item.document)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&item.document).into_owned()));
    json!({
        "key": key_json(&item.key),
        "version": item.version,
        "updated_at": nimbus_engine::rfc3339(item.updated_at),
        "item": document,
    })
}

fn conflict(failed: ConditionFailed) -> Response {
    let message = match failed.current_version {
        Some(v) => format!("the condition failed: the item is at version {v}"),
        None => "the condition failed: the item does not exist".to_owned(),
    };
    (
        StatusCode::CONFLICT,
        axum::Json(json!({ "error": message, "current_version": failed.current_version })),
    )
        .into_response()
}

fn encode_cursor(key: &ItemKey) -> String {
    BASE64URL.encode(json!({ "p": key.partition, "s": key.sort }).to_string())
}

fn decode_cursor(cursor: &str) -> Result<ItemKey, ApiError> {
    let bad = || ApiError::bad_request("`cursor` is not one this API gave out");
    let bytes = BASE64URL.decode(cursor).map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok(ItemKey {
        partition: value["p"].as_str().ok_or_else(bad)?.to_owned(),
        sort: value["s"].as_str().map(str::to_owned),
    })
}

fn table_json(t: &nimbus_manifest::Table, declared: bool) -> Value {
    json!({
        "name": t.name,
        "partition_key": t.partition_key,
        "sort_key": t.sort_key,
        "stream": t.stream,
        "stream_retention_s": t.stream_retention_s,
        "max_item_bytes": t.max_item_bytes,
        "declared": declared,
    })
}

/// The served version's tables, then those kept from earlier versions.
async fn list_tables(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let app = state.app();
    let mut tables: Vec<Value> = app.tables.values().map(|t| table_json(t, true)).collect();
    for stored in state.tables.tables().await? {
        if !app.tables.contains_key(&stored.name) {
            tables.push(table_json(&kept_table(&stored), false));
        }
    }
    Ok(axum::Json(json!({ "tables": tables })).into_response())
}

/// `DELETE /v1/tables/{table}`: a table the version being served does not
/// declare, with its items, change records and its consumers' checkpoints.
async fn delete_table(
    State(state): State<ApiState>,
    Path(table): Path<String>,
) -> Result<Response, ApiError> {
    if state.app().tables.contains_key(&table) {
        return Err(super::declared("table", &table));
    }
    let deleted = state.tables.delete_table(&table).await?;
    tracing::info!(
        table,
        items = deleted.items,
        change_records = deleted.change_records,
        "deleted the table"
    );
    Ok(axum::Json(json!({
        "table": table,
        "items": deleted.items,
        "change_records": deleted.change_records,
        "checkpoints": deleted.checkpoints,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutIn {
    item: Value,
    #[serde(default)]
    if_absent: bool,
    if_version: Option<u64>,
}

async fn put_item(
    State(state): State<ApiState>,
    Path(table): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let config = config(&state, &table).await?;
    let put: PutIn = parse_json(&headers, &body)?;
    let key = nimbus_engine::item_key(&config, &put.item).map_err(ApiError::bad_request)?;
    let condition = match (put.if_absent, put.if_version) {
        (false, None) => PutCondition::Always,
        (true, None) => PutCondition::IfAbsent,
        (false, Some(v)) => PutCondition::IfVersion(v),
        (true, Some(_)) => {
            return Err(ApiError::bad_request(
                "give at most one of `if_absent` and `if_version`",
            ));
        }
    };
    let document = put.item.to_string().into_bytes();
    let written = state
        .tables
        .put_item(
            &table,
            key.clone(),
            document,
            condition,
            traceparent(&headers),
        )
        .await?;
    match written {
        Ok(version) => {
            Ok(axum::Json(json!({ "key": key_json(&key), "version": version })).into_response())
        }
        Err(failed) => Ok(conflict(failed)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemQuery {
    sort: Option<String>,
    if_version: Option<u64>,
}

async fn get_item(
    State(state): State<ApiState>,
    Path((table, partition)): Path<(String, String)>,
    Query(query): Query<ItemQuery>,
) -> Result<Response, ApiError> {
    config(&state, &table).await?;
    let key = ItemKey {
        partition,
        sort: query.sort,
    };
    match state.tables.get_item(&table, &key).await? {
        Some(item) => Ok(axum::Json(item_json(&item)).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no item has this key")),
    }
}

async fn delete_item(
    State(state): State<ApiState>,
    Path((table, partition)): Path<(String, String)>,
    Query(query): Query<ItemQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    config(&state, &table).await?;
    let key = ItemKey {
        partition,
        sort: query.sort,
    };
    let deleted = state
        .tables
        .delete_item(&table, &key, query.if_version, traceparent(&headers))
        .await?;
    match deleted {
        Ok(version) => Ok(
            axum::Json(json!({ "deleted": version.is_some(), "version": version })).into_response(),
        ),
        Err(failed) => Ok(conflict(failed)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    partition: Option<String>,
    sort_prefix: Option<String>,
    sort_from: Option<String>,
    sort_to: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list_items(
    State(state): State<ApiState>,
    Path(table): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    config(&state, &table).await?;
    let limit = page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let page = match &query.partition {
        Some(partition) => {
            let range = match (query.sort_prefix, query.sort_from, query.sort_to) {
                (None, None, None) => SortRange::All,
                (Some(prefix), None, None) => SortRange::Prefix(prefix),
                (None, from, to) => SortRange::Between { from, to },
                (Some(_), _, _) => {
                    return Err(ApiError::bad_request(
                        "give `sort_prefix` or a `sort_from`/`sort_to` range, not both",
                    ));
                }
            };
            state
                .tables
                .query(&table, partition, &range, after.as_ref(), limit)
                .await?
        }
        None if query.sort_prefix.is_some()
            || query.sort_from.is_some()
            || query.sort_to.is_some() =>
        {
            return Err(ApiError::bad_request(
                "a sort-key condition needs a `partition` to query",
            ));
        }
        None => state.tables.scan(&table, after.as_ref(), limit).await?,
    };
    let items: Vec<Value> = page.items.iter().map(item_json).collect();
    let cursor = page.next.as_ref().map(encode_cursor);
    Ok(axum::Json(json!({ "items": items, "cursor": cursor })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    after: Option<u64>,
    limit: Option<u32>,
}

async fn read_stream(
    State(state): State<ApiState>,
    Path(table): Path<String>,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    let config = config(&state, &table).await?;
    if config.stream.is_none() {
        return Err(ApiError::bad_request(format!(
            "table `{table}` has no change stream"
        )));
    }
    let limit = page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let records = state
        .tables
        .read_stream(&table, query.after.unwrap_or(0), limit, None)
        .await?;
    let latest = state.tables.latest_seq(&table).await?;
    let image = |bytes: &Option<Vec<u8>>| -> Value {
        bytes
            .as_ref()
            .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
            .unwrap_or(Value::Null)
    };
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "sequence": r.seq,
                "kind": r.kind.as_str(),
                "key": key_json(&r.key),
                "version": r.version,
                "time": nimbus_engine::rfc3339(r.at),
                "new_image": image(&r.new_image),
                "old_image": image(&r.old_image),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "records": records, "latest": latest })).into_response())
}
