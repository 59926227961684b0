//! The `nimbus:function` WIT package (`wit/nimbus.wit`) and the host
//! bindings wasmtime generates for it. Guests use the same WIT through
//! `nimbus-sdk`.

#![allow(missing_docs, unused_qualifications)]

wasmtime::component::bindgen!({
    path: "wit",
    world: "event-function",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use exports::nimbus::function::handler;
pub use nimbus::function::{buckets, functions, log, queue, secrets, tables, types};
