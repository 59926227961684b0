//! Rebuilds the bindings when the WIT changes: `bindgen!` reads the files
//! at compile time, but cargo does not know they are inputs.

fn main() {
    println!("cargo:rerun-if-changed=wit");
}
