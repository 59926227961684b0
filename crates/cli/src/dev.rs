//! `nimbus dev`: `nimbus up --build` plus a watcher. When a file under the
//! app's directory changes (sources, the manifest), it runs the build
//! commands and deploys the result into the running server, as `nimbus
//! deploy` would: a failed build or a refused version is shown and the
//! running version keeps serving. Files are compared by size and
//! modification time, polled, so it needs nothing from the platform.

use crate::server::Server;
use crate::serving::Serving;
use crate::up::UpArgs;
use clap::Args;
use nimbus_manifest::App;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// How often the app's files are looked at.
const POLL: Duration = Duration::from_millis(250);
/// Directories never watched: build output and tools' caches, which
/// change because of a build, not an edit.
const SKIPPED_DIRS: &[&str] = &["target", ".git", "node_modules", "__pycache__", ".venv"];
/// Most files looked at, so a huge tree does not make each poll slow.
const MAX_FILES: usize = 20_000;

#[derive(Args)]
pub struct DevArgs {
    #[command(flatten)]
    up: UpArgs,
}

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    let mut up = args.up;
    up.build = true;
    let manifest = up.manifest.clone();
    crate::up::run_with(
        up,
        Some(Box::new(move |server, serving, stopped| {
            tokio::spawn(watch_and_deploy(server.clone(), serving, manifest, stopped));
        })),
    )
}

/// Size and modification time of each file under a directory.
type Snapshot = BTreeMap<PathBuf, (u64, SystemTime)>;

async fn watch_and_deploy(
    server: Arc<Server>,
    serving: Arc<Serving>,
    manifest: PathBuf,
    mut stopped: watch::Receiver<bool>,
) {
    let dir = manifest
        .canonicalize()
        .ok()
        .and_then(|m| m.parent().map(Path::to_owned))
        .unwrap_or_else(|| PathBuf::from("."));
    let data_dir = server
        .data_dir
        .canonicalize()
        .unwrap_or(server.data_dir.clone());
    let look = {
        let (dir, data_dir) = (dir.clone(), data_dir.clone());
        move || {
            let (dir, data_dir) = (dir.clone(), data_dir.clone());
            async move {
                tokio::task::spawn_blocking(move || snapshot(&dir, &data_dir))
                    .await
                    .unwrap_or_default()
            }
        }
    };
    let mut seen = look().await;
    println!("watching {} for changes", dir.display());
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stopped.changed() => return,
        }
        let now = look().await;
        if now == seen {
            continue;
        }
        rebuild_and_deploy(&server, &serving, &manifest).await;
        // What the build wrote (components, caches) is not an edit.
        seen = look().await;
    }
}

/// Builds the app and deploys it; says what happened either way.
async fn rebuild_and_deploy(server: &Server, serving: &Serving, manifest: &Path) {
    let started = Instant::now();
    let app = match App::load(manifest) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{e}\nstill serving the running version");
            return;
        }
    };
    let built = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || {
            crate::build::build_app(&app)?;
            app.check_components()?;
            anyhow::Ok(())
        })
        .await
    };
    match built {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("build failed: {e:#}\nstill serving the running version");
            return;
        }
        Err(e) => {
            eprintln!("build failed: {e}\nstill serving the running version");
            return;
        }
    }
    let staged = match crate::up::stage(server.store.as_ref(), &app).await {
        Ok(staged) => staged,
        Err(e) => {
            eprintln!("{e:#}\nstill serving the running version");
            return;
        }
    };
    match serving
        .deploy_app(app, staged.manifest, staged.components, started)
        .await
    {
        Ok(deployed) => println!(
            "deployment {} live in {} ms (build included)",
            deployed.id, deployed.took_ms
        ),
        Err(e) => eprintln!(
            "deploy refused: {}\nstill serving the running version",
            crate::serving::reason(&e)
        ),
    }
}

/// Every file under `dir` but those in skipped directories and the data
/// directory.
fn snapshot(dir: &Path, data_dir: &Path) -> Snapshot {
    let mut files = Snapshot::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                let skipped = entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| SKIPPED_DIRS.contains(&name));
                if !skipped && path != data_dir {
                    pending.push(path);
                }
            } else if let Ok(meta) = entry.metadata() {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                files.insert(path, (meta.len(), modified));
                if files.len() >= MAX_FILES {
                    return files;
                }
            }
        }
    }
    files
}
