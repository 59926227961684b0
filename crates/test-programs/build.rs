//! Builds the guest components in `tests/programs` for wasm32-wasip2 and
//! records their paths, so tests never depend on committed `.wasm` files.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Example components of the `nimbus-guest-programs` package.
const EXAMPLES: &[&str] = &[
    "hello", "echo", "params", "spin", "membomb", "trap", "slow", "stdio", "events", "recurse",
    "fetch", "counter", "tables", "hoard", "ledger",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let programs = manifest_dir
        .join("../../tests/programs")
        .canonicalize()
        .unwrap();
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("../sdk/src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("../wit/wit").display()
    );
    for watched in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "examples",
        "wstd-hello/Cargo.toml",
        "wstd-hello/src",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            programs.join(watched).display()
        );
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&programs)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--locked",
        ])
        .args(["--workspace", "--lib", "--bins", "--examples"]);
    // The outer build's flags and wrappers (clippy sets one) are for the host
    // crates, not for the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .expect("failed to run cargo for the guest programs");
    assert!(
        status.success(),
        "building tests/programs for wasm32-wasip2 failed; if the target is missing, run \
         `rustup toolchain install` in the repository (it reads rust-toolchain.toml)"
    );

    let release = programs.join("target/wasm32-wasip2/release");
    let mut out = String::new();
    for name in EXAMPLES {
        push_const(
            &mut out,
            name,
            &release.join("examples").join(format!("{name}.wasm")),
        );
    }
    push_const(&mut out, "wstd-hello", &release.join("wstd-hello.wasm"));
    let dest = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("programs.rs");
    std::fs::write(dest, out).unwrap();
}

fn push_const(out: &mut String, name: &str, path: &Path) {
    assert!(
        path.exists(),
        "guest program {name} was not built at {}",
        path.display()
    );
    let ident = name.replace('-', "_").to_uppercase();
    writeln!(out, "/// Path of the `{name}` guest component.").unwrap();
    writeln!(
        out,
        "pub const {ident}: &str = {:?};",
        path.display().to_string()
    )
    .unwrap();
}
