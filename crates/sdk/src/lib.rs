//! The guest side of Nimbus for Rust: write an event handler, use queues,
//! secrets, buckets and the log, as far as the function's grants allow.
//!
//! ```text
//! struct Worker;
//!
//! impl nimbus_sdk::Handler for Worker {
//!     fn handle(events: Vec<nimbus_sdk::Event>) -> Result<Vec<String>, String> {
//!         for event in &events {
//!             nimbus_sdk::log::info(&format!("got {}", event.id));
//!             nimbus_sdk::queue::send("results", &event.data).map_err(|e| format!("{e:?}"))?;
//!         }
//!         Ok(vec![]) // ids of events that failed
//!     }
//! }
//!
//! nimbus_sdk::export_handler!(Worker);
//! ```
//!
//! HTTP functions are ordinary `wasi:http` components (for example with
//! `#[wstd::http_server]`); they call `nimbus_sdk::queue`,
//! `nimbus_sdk::secrets` and `nimbus_sdk::log` the same way (see
//! `examples/orders/api`).

#![allow(unsafe_code, missing_docs, unused_qualifications)]

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/wit",
        world: "nimbus:function/event-function",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "nimbus_sdk::bindings",
        generate_all,
    });
}

pub use bindings::exports::nimbus::function::handler::Guest as Handler;
pub use bindings::nimbus::function::types::{Error, Event};

/// Exports `$handler` (a type implementing [`Handler`]) as the component's
/// `nimbus:function/handler`.
#[macro_export]
macro_rules! export_handler {
    ($handler:ident) => {
        $crate::bindings::export_bindings!($handler with_types_in $crate::bindings);
    };
}

/// Durable queues (`allow = ["queue:NAME:send"]`).
pub mod queue {
    use super::Error;

    /// Sends `body` to `queue`; the id comes back once the message is durable.
    pub fn send(queue: &str, body: &[u8]) -> Result<String, Error> {
        crate::bindings::nimbus::function::queue::send(queue, body)
    }
}

/// Secrets set with `nimbus secret set` (`allow = ["secret:NAME:read"]`).
/// Values are read at each call, so a secret set while the app runs is seen
/// by the next read.
pub mod secrets {
    use super::Error;

    /// The secret's value as stored (bytes exactly as given to
    /// `nimbus secret set`): `Error::NotFound` if it is not set,
    /// `Error::AccessDenied` if the function is not granted it.
    pub fn get(name: &str) -> Result<Vec<u8>, Error> {
        crate::bindings::nimbus::function::secrets::get(name)
    }

    /// [`get`] for a text value: `Error::Invalid` if it is not UTF-8.
    pub fn get_text(name: &str) -> Result<String, Error> {
        String::from_utf8(get(name)?)
            .map_err(|_| Error::Invalid(format!("secret `{name}` is not UTF-8 text")))
    }
}

/// The app's other event functions (`allow = ["function:NAME:invoke"]`).
pub mod functions {
    use super::Error;

    /// Runs `function` with one event carrying `data` and waits for it.
    pub fn invoke(function: &str, data: &[u8]) -> Result<(), Error> {
        crate::bindings::nimbus::function::functions::invoke(function, data)
    }

    /// Queues one event for `function`; its id comes back once durable.
    pub fn invoke_async(function: &str, data: &[u8]) -> Result<String, Error> {
        crate::bindings::nimbus::function::functions::invoke_async(function, data)
    }
}

/// Tables (`allow = ["table:NAME:read", "table:NAME:write"]`): JSON
/// documents keyed by the table's partition (and sort) key attributes.
pub mod tables {
    use super::Error;
    use crate::bindings::nimbus::function::tables as host;
    pub use crate::bindings::nimbus::function::tables::{Item, PutCondition};

    /// Writes a JSON object (its keys are read from it); returns the new
    /// version once durable. A false condition is `Error::Conflict`.
    pub fn put(table: &str, document: &str, condition: PutCondition) -> Result<u64, Error> {
        host::put(table, document, condition)
    }

    pub fn get(table: &str, partition: &str, sort: Option<&str>) -> Result<Option<Item>, Error> {
        host::get(table, partition, sort)
    }

    /// Deletes the item; true if there was one.
    pub fn delete(table: &str, partition: &str, sort: Option<&str>) -> Result<bool, Error> {
        host::delete(table, partition, sort)
    }

    /// Up to `limit` items of `partition` in sort-key order, optionally only
    /// sort keys starting with `sort_prefix`, after the sort key `after`.
    pub fn query(
        table: &str,
        partition: &str,
        sort_prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Item>, Error> {
        host::query(table, partition, sort_prefix, after, limit)
    }
}

/// Object buckets (`allow = ["bucket:NAME:read"]`, `"bucket:NAME:write"`,
/// or `"bucket:NAME/PREFIX:..."` for keys starting with PREFIX).
pub mod buckets {
    use super::Error;
    use crate::bindings::nimbus::function::buckets as host;
    pub use crate::bindings::nimbus::function::buckets::ObjectInfo;

    /// The object's bytes: `Error::NotFound` if there is none.
    pub fn get(bucket: &str, key: &str) -> Result<Vec<u8>, Error> {
        host::get(bucket, key)
    }

    /// Stores an object; returns once it (and its events) are durable.
    pub fn put(
        bucket: &str,
        key: &str,
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<ObjectInfo, Error> {
        host::put(bucket, key, body, content_type)
    }

    /// Removes an object; false if there was none.
    pub fn delete(bucket: &str, key: &str) -> Result<bool, Error> {
        host::delete(bucket, key)
    }

    /// Up to 1000 objects whose keys start with `prefix`, after
    /// `start_after`, in key order.
    pub fn list(
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<ObjectInfo>, Error> {
        host::list_objects(bucket, prefix, start_after)
    }
}

/// Log lines tagged by the host with the function and invocation id.
pub mod log {
    use crate::bindings::nimbus::function::log::{Level, log};

    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }

    pub fn info(message: &str) {
        log(Level::Info, message);
    }

    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }

    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}
