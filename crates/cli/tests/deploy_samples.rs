//! The sample deployments in `deploy/` stay valid as the binary changes: the
//! systemd unit passes `systemd-analyze verify` (with its `ExecStart` pointed
//! at this build), the Kubernetes manifest passes `kubernetes-validate
//! --strict` (the Kubernetes API's own schemas, offline), and every flag and
//! `NIMBUS_` variable either uses is one `nimbus up` knows. Neither is run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy_dir().join(path)).unwrap()
}

/// Runs `program`, failing with the package that brings it when missing.
fn run(program: &str, package: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}): install {package}"))
}

/// `--flag` names in `text` (an `=value` or punctuation cut off).
fn flags(text: &str) -> BTreeSet<String> {
    text.split(|c: char| c.is_whitespace() || c == '"')
        .filter(|word| {
            word.strip_prefix("--")
                .is_some_and(|name| name.starts_with(|c: char| c.is_ascii_lowercase()))
        })
        .map(|word| {
            word.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect()
        })
        .collect()
}

/// `NIMBUS_...` names in `text`.
fn nimbus_variables(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("NIMBUS_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        rest = &rest[start + name.len()..];
        names.insert(name);
    }
    names
}

/// `nimbus up --help`: what the samples may use.
fn up_help() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_nimbus"))
        .args(["up", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

fn assert_flags_known(sample: &str, text: &str) {
    let help = up_help();
    let flags = flags(text);
    assert!(!flags.is_empty(), "{sample} passes flags");
    for flag in &flags {
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "{sample} uses `{flag}`, which `nimbus up` does not know"
        );
    }
}

fn assert_variables_known(sample: &str, text: &str) {
    let help = up_help();
    let names = nimbus_variables(text);
    assert!(!names.is_empty(), "{sample} sets variables");
    for name in names {
        assert!(
            help.contains(&format!("[env: {name}]")) || help.contains(&format!("[env: {name}=")),
            "{sample} sets `{name}`, which `nimbus up` does not read"
        );
    }
}

#[test]
fn the_systemd_unit_verifies_and_uses_only_what_nimbus_up_knows() {
    let unit = read("systemd/nimbus.service");
    let env = read("systemd/nimbus.env");
    assert_flags_known("nimbus.service", &unit);
    assert_variables_known("nimbus.env", &env);

    // Verified as installed, but with this build's binary (systemd checks
    // that the command exists) and without the env file, which lives on
    // the target machine.
    let dir = tempfile::tempdir().unwrap();
    let local = unit
        .replace("/usr/local/bin/nimbus", env!("CARGO_BIN_EXE_nimbus"))
        .replace("EnvironmentFile=/", "EnvironmentFile=-/");
    let path = dir.path().join("nimbus.service");
    std::fs::write(&path, local).unwrap();
    let output = run(
        "systemd-analyze",
        "systemd",
        &["verify", path.to_str().unwrap()],
    );
    let complaints = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );
}

#[test]
fn the_kubernetes_manifest_validates_against_the_api_schemas() {
    let manifest = read("kubernetes/nimbus.yaml");
    assert_flags_known("nimbus.yaml", &manifest);
    assert_variables_known("nimbus.yaml", &manifest);

    let path = deploy_dir().join("kubernetes/nimbus.yaml");
    let output = run(
        "kubernetes-validate",
        "kubernetes-validate from PyPI (pip install kubernetes-validate==1.37.0)",
        &[
            "--strict",
            "--quiet",
            "--kubernetes-version",
            "1.32",
            path.to_str().unwrap(),
        ],
    );
    assert!(
        output.status.success(),
        "kubernetes-validate: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
