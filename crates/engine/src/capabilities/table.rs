//! `nimbus:function/tables`: items of a table the function is granted
//! (`table:NAME:read` for get and query, `table:NAME:write` for put and
//! delete). Writes carry the invocation's trace context onto the table's
//! change stream, so the stream's consumer continues the trace.

use crate::state::InvocationState;
use nimbus_manifest::Table;
use nimbus_store::{ConditionFailed, ItemKey, PutCondition, SortRange, StoreError, StoredItem};
use nimbus_trace::SpanKind;
use nimbus_wit::tables::{Host, Item, PutCondition as WitCondition};
use nimbus_wit::types::Error;

/// Most items one query returns.
pub const MAX_QUERY_LIMIT: u32 = 1000;

/// Reads an item's keys from its JSON document: the table's key attributes
/// must be non-empty strings or integers (kept as their decimal text).
pub fn item_key(table: &Table, document: &serde_json::Value) -> Result<ItemKey, String> {
    let object = document
        .as_object()
        .ok_or("an item must be a JSON object")?;
    let attribute = |name: &str| -> Result<String, String> {
        match object.get(name) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
            Some(_) => Err(format!(
                "key attribute `{name}` must be a non-empty string or an integer"
            )),
            None => Err(format!("the item has no key attribute `{name}`")),
        }
    };
    Ok(ItemKey {
        partition: attribute(&table.partition_key)?,
        sort: table.sort_key.as_deref().map(attribute).transpose()?,
    })
}

fn item(stored: StoredItem) -> Item {
    Item {
        partition: stored.key.partition,
        sort: stored.key.sort,
        document: String::from_utf8_lossy(&stored.document).into_owned(),
        version: stored.version,
    }
}

fn conflict(failed: ConditionFailed) -> Error {
    Error::Conflict(match failed.current_version {
        Some(v) => format!("the item is at version {v}"),
        None => "the item does not exist".to_owned(),
    })
}

impl InvocationState {
    /// The table if the function holds `table:NAME:ACTION`, else the
    /// guest-visible denial (audited).
    fn granted_table(&self, table: &str, write: bool) -> Result<Table, Error> {
        let caps = &self.capabilities;
        let (set, action) = if write {
            (&caps.grants.table_write, "write")
        } else {
            (&caps.grants.table_read, "read")
        };
        if !set.contains(table) {
            return Err(caps.deny(format!("table:{table}:{action}")));
        }
        caps.services
            .table_configs
            .get(table)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("table `{table}`")))
    }

    fn store_error(&self, what: &str, e: StoreError) -> Error {
        match e {
            StoreError::TableNotFound(t) => Error::NotFound(format!("table `{t}`")),
            e @ (StoreError::ItemTooLarge { .. } | StoreError::InvalidItem(_)) => {
                Error::Invalid(e.to_string())
            }
            e => {
                let caps = &self.capabilities;
                tracing::error!(function = %caps.function, invocation_id = %caps.invocation_id, "table {what} failed: {e}");
                Error::Unavailable(e.to_string())
            }
        }
    }
}

impl Host for InvocationState {
    async fn put(
        &mut self,
        table: String,
        document: String,
        condition: WitCondition,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let config = match self.granted_table(&table, true) {
            Ok(config) => config,
            Err(e) => return Ok(Err(e)),
        };
        let parsed: serde_json::Value = match serde_json::from_str(&document) {
            Ok(v) => v,
            Err(e) => return Ok(Err(Error::Invalid(format!("the item is not JSON: {e}")))),
        };
        let key = match item_key(&config, &parsed) {
            Ok(key) => key,
            Err(e) => return Ok(Err(Error::Invalid(e))),
        };
        let condition = match condition {
            WitCondition::Always => PutCondition::Always,
            WitCondition::IfAbsent => PutCondition::IfAbsent,
            WitCondition::IfVersion(v) => PutCondition::IfVersion(v),
        };
        let caps = &self.capabilities;
        let mut span = caps.span(format!("put {table}"), SpanKind::Client);
        span.set("db.collection.name", table.as_str());
        let traceparent = Some(span.context.to_traceparent());
        let written = caps
            .services
            .tables
            .put_item(&table, key, document.into_bytes(), condition, traceparent)
            .await;
        if let Err(e) = &written {
            span.fail(e.to_string());
        }
        span.end();
        Ok(match written {
            Ok(Ok(version)) => Ok(version),
            Ok(Err(failed)) => Err(conflict(failed)),
            Err(e) => Err(self.store_error("put", e)),
        })
    }

    async fn get(
        &mut self,
        table: String,
        partition: String,
        sort: Option<String>,
    ) -> wasmtime::Result<Result<Option<Item>, Error>> {
        if let Err(e) = self.granted_table(&table, false) {
            return Ok(Err(e));
        }
        let key = ItemKey { partition, sort };
        let read = self
            .capabilities
            .services
            .tables
            .get_item(&table, &key)
            .await;
        Ok(read
            .map(|found| found.map(item))
            .map_err(|e| self.store_error("get", e)))
    }

    async fn delete(
        &mut self,
        table: String,
        partition: String,
        sort: Option<String>,
    ) -> wasmtime::Result<Result<bool, Error>> {
        if let Err(e) = self.granted_table(&table, true) {
            return Ok(Err(e));
        }
        let caps = &self.capabilities;
        let mut span = caps.span(format!("delete {table}"), SpanKind::Client);
        span.set("db.collection.name", table.as_str());
        let traceparent = Some(span.context.to_traceparent());
        let key = ItemKey { partition, sort };
        let deleted = caps
            .services
            .tables
            .delete_item(&table, &key, None, traceparent)
            .await;
        if let Err(e) = &deleted {
            span.fail(e.to_string());
        }
        span.end();
        Ok(match deleted {
            Ok(Ok(version)) => Ok(version.is_some()),
            Ok(Err(failed)) => Err(conflict(failed)),
            Err(e) => Err(self.store_error("delete", e)),
        })
    }

    async fn query(
        &mut self,
        table: String,
        partition: String,
        sort_prefix: Option<String>,
        after: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<Item>, Error>> {
        if let Err(e) = self.granted_table(&table, false) {
            return Ok(Err(e));
        }
        let range = sort_prefix.map_or(SortRange::All, SortRange::Prefix);
        let after = after.map(|sort| ItemKey {
            partition: partition.clone(),
            sort: Some(sort),
        });
        let limit = limit.clamp(1, MAX_QUERY_LIMIT);
        let page = self
            .capabilities
            .services
            .tables
            .query(&table, &partition, &range, after.as_ref(), limit)
            .await;
        Ok(page
            .map(|p| p.items.into_iter().map(item).collect())
            .map_err(|e| self.store_error("query", e)))
    }
}
