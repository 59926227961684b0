//! `nimbus deploy`, `nimbus deployments` and `nimbus rollback`: app
//! versions sent to a running server through its admin API. A deploy
//! validates the app here first (as `nimbus validate` does), uploads only
//! the components the server lacks (content-addressed by SHA-256), then
//! asks the server to put the version live; the server checks and compiles
//! it again and refuses it, with the reason, if it cannot serve it.

use crate::client::AdminClient;
use crate::queue::AdminArgs;
use anyhow::Context as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// Sends the app of `manifest` to the server and prints what went live.
pub fn deploy(admin: &AdminArgs, manifest: &Path, build: bool) -> anyhow::Result<()> {
    let app = nimbus_manifest::App::load(manifest)?;
    if build {
        crate::build::build_app(&app)?;
    }
    crate::validate(manifest).map(|_| ())?;
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("failed to read {}", manifest.display()))?;
    let mut components = BTreeMap::new();
    let mut bytes = BTreeMap::new();
    for function in app.functions.values() {
        let component = std::fs::read(&function.component).with_context(|| {
            format!("failed to read component {}", function.component.display())
        })?;
        let digest = nimbus_store::deployment::component_digest(&component);
        components.insert(function.name.clone(), digest.clone());
        bytes.insert(digest, component);
    }
    let client = admin.client()?;
    let digests: Vec<&String> = bytes.keys().collect();
    let missing = client.post("/v1/components/missing", json!({ "digests": digests }))?;
    let missing: Vec<String> = missing["missing"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|d| d.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut uploaded = 0;
    for digest in &missing {
        let component = bytes
            .remove(digest)
            .with_context(|| format!("the server asked for an unknown component {digest}"))?;
        uploaded += component.len();
        client.put_bytes(&format!("/v1/components/{digest}"), component)?;
    }
    let deployed = client.post(
        "/v1/deployments",
        json!({ "manifest": text, "components": components }),
    )?;
    println!(
        "uploaded {} of {} components ({})",
        missing.len(),
        components.len(),
        size(uploaded)
    );
    println!("{}", describe(&deployed));
    Ok(())
}

/// Lists the deployments, newest first.
pub fn list(admin: &AdminArgs, json: bool) -> anyhow::Result<()> {
    let listing = admin.client()?.get("/v1/deployments")?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&listing).unwrap_or_default()
        );
        return Ok(());
    }
    print!("{}", render(&listing));
    Ok(())
}

/// Serves deployment `id` again, or by default the one made before the
/// active one.
pub fn rollback(admin: &AdminArgs, id: Option<u64>) -> anyhow::Result<()> {
    let client = admin.client()?;
    let id = match id {
        Some(id) => id,
        None => previous(&client)?,
    };
    let deployed = client.post(&format!("/v1/deployments/{id}/activate"), json!({}))?;
    println!("{}", describe(&deployed));
    Ok(())
}

/// The deployment made just before the active one.
fn previous(client: &AdminClient) -> anyhow::Result<u64> {
    let listing = client.get("/v1/deployments")?;
    let deployments = listing["deployments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let active = deployments
        .iter()
        .find(|d| d["active"] == true)
        .and_then(|d| d["id"].as_u64())
        .context("no deployment is active")?;
    deployments
        .iter()
        .filter_map(|d| d["id"].as_u64())
        .filter(|id| *id < active)
        .max()
        .with_context(|| {
            format!("deployment {active} is the oldest kept; name one with `nimbus rollback ID`")
        })
}

fn describe(deployed: &Value) -> String {
    let id = &deployed["id"];
    let took = deployed["took_ms"].as_u64().unwrap_or(0);
    let digest = deployed["digest"].as_str().unwrap_or("");
    let short = &digest[..digest.len().min(12)];
    if deployed["existed"] == true {
        format!("deployment {id} ({short}) live in {took} ms (an existing version)")
    } else {
        format!("deployment {id} ({short}) live in {took} ms")
    }
}

/// An aligned table: id, created, digest, functions, active.
fn render(listing: &Value) -> String {
    let mut rows = vec![[
        "ID".to_owned(),
        "CREATED".to_owned(),
        "DIGEST".to_owned(),
        "FUNCTIONS".to_owned(),
        "ACTIVE".to_owned(),
    ]];
    for d in listing["deployments"].as_array().into_iter().flatten() {
        let digest = d["digest"].as_str().unwrap_or("");
        let functions: Vec<&str> = d["functions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        rows.push([
            d["id"].to_string(),
            d["created"].as_str().unwrap_or("-").to_owned(),
            digest[..digest.len().min(12)].to_owned(),
            functions.join(","),
            if d["active"] == true { "*" } else { "" }.to_owned(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A byte count for people.
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / f64::from(1 << 10)),
        b => format!("{b} bytes"),
    }
}
