//! What kind of function a component is, by the interface it exports: read
//! from the component's own export section, without compiling it, so
//! `nimbus validate` runs the same trigger checks as `nimbus up` in
//! milliseconds.

use anyhow::Context as _;

/// Which interface a function's component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    /// `wasi:http/incoming-handler`: called through routes.
    Http,
    /// `nimbus:function/handler`: called with batches of events.
    Event,
}

const HTTP_EXPORT: &str = "wasi:http/incoming-handler";
const EVENT_EXPORT: &str = "nimbus:function/handler";

/// The kind of the component `bytes` by its top-level exports; `None` when
/// it exports neither interface. Fails when the bytes are not a component.
pub fn component_kind(bytes: &[u8]) -> anyhow::Result<Option<FunctionKind>> {
    use wasmparser::{Encoding, Parser, Payload};
    let mut depth = 0usize;
    let mut kind = None;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.context("not a valid WebAssembly binary")? {
            Payload::Version { encoding, .. } if depth == 0 && encoding != Encoding::Component => {
                anyhow::bail!(
                    "a core WebAssembly module, not a component (build for wasm32-wasip2, \
                     or wrap it with `wasm-tools component new`)"
                );
            }
            // Nested modules and components end with an `End` of their own.
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(exports) if depth == 0 => {
                for export in exports {
                    let name = export.context("malformed export section")?.name.name;
                    // Exports may carry a version: `...@0.2.0`.
                    let interface = name.split_once('@').map_or(name, |(i, _)| i);
                    if interface == HTTP_EXPORT {
                        kind = Some(FunctionKind::Http);
                    } else if interface == EVENT_EXPORT && kind.is_none() {
                        kind = Some(FunctionKind::Event);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_exports() {
        let http = std::fs::read(nimbus_test_programs::HELLO).unwrap();
        let event = std::fs::read(nimbus_test_programs::EVENTS).unwrap();
        assert_eq!(component_kind(&http).unwrap(), Some(FunctionKind::Http));
        assert_eq!(component_kind(&event).unwrap(), Some(FunctionKind::Event));
    }

    #[test]
    fn a_core_module_or_garbage_is_refused_with_the_reason() {
        // The smallest core module: magic and version 1.
        let module = b"\0asm\x01\0\0\0";
        let err = component_kind(module).unwrap_err().to_string();
        assert!(err.contains("core WebAssembly module"), "{err}");
        let err = component_kind(b"not wasm").unwrap_err().to_string();
        assert!(err.contains("not a valid WebAssembly binary"), "{err}");
    }
}
