//! `nimbus dev`: `nimbus up --build` plus a watcher. When a file under the
//! app's directory changes (sources, the manifest), it runs the build
//! commands and deploys the result into the running server, as `nimbus
//! deploy` would: a failed build or a refused version is shown and the
//! running version keeps serving. Files are compared by size and
//! modification time, polled, so it needs nothing from the platform.

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
    // What the server itself writes is not an edit, wherever it lies.
    let mut written: Vec<PathBuf> = Vec::new();
    if let Some(path) = up.store.as_deref().and_then(|s| s.strip_prefix("sqlite:")) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            written.push(absolute(&PathBuf::from(format!("{path}{suffix}"))));
        }
    }
    if let Some(path) = up.objects.as_deref().and_then(|s| s.strip_prefix("file:")) {
        written.push(absolute(Path::new(path)));
    }
    crate::up::run_with(
        up,
        Some(Box::new(move |server, serving, stopped| {
            written.push(absolute(&server.data_dir));
            tokio::spawn(watch_and_deploy(serving, manifest, written, stopped));
        })),
    )
}

/// `path` made absolute (and canonical when it exists), to compare with
/// the paths the watcher walks.
fn absolute(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|dir| dir.join(path))
            .unwrap_or_else(|_| path.to_owned())
    })
}

/// Size and modification time of each file under a directory.
type Snapshot = BTreeMap<PathBuf, (u64, SystemTime)>;

async fn watch_and_deploy(
    serving: Arc<Serving>,
    manifest: PathBuf,
    written: Vec<PathBuf>,
    mut stopped: watch::Receiver<bool>,
) {
    let dir = absolute(&manifest)
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let written = Arc::new(written);
    let look = {
        let dir = dir.clone();
        move || {
            let (dir, written) = (dir.clone(), written.clone());
            async move {
                tokio::task::spawn_blocking(move || snapshot(&dir, &written))
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
        let outputs = rebuild_and_deploy(&serving, &manifest).await;
        // The components the build wrote are not edits; anything else that
        // changed meanwhile (an edit saved during the build) is, and is
        // built next.
        let after = look().await;
        seen = now;
        for output in outputs {
            let output = absolute(&output);
            match after.get(&output) {
                Some(state) => seen.insert(output, *state),
                None => seen.remove(&output),
            };
        }
    }
}

/// Builds the app and deploys it, saying what happened either way; returns
/// the component files the manifest names (what the build writes).
async fn rebuild_and_deploy(serving: &Arc<Serving>, manifest: &Path) -> Vec<PathBuf> {
    let started = Instant::now();
    // Read once: what is built, checked and recorded is one text.
    let loaded = std::fs::read_to_string(manifest)
        .map_err(|e| format!("failed to read {}: {e}", manifest.display()))
        .and_then(|text| {
            App::parse(manifest, &text)
                .map(|app| (text, app))
                .map_err(|e| e.to_string())
        });
    let (text, app) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}\nstill serving the running version");
            return Vec::new();
        }
    };
    let outputs: Vec<PathBuf> = app
        .functions
        .values()
        .map(|f| f.component.clone())
        .collect();
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
            return outputs;
        }
        Err(e) => {
            eprintln!("build failed: {e}\nstill serving the running version");
            return outputs;
        }
    }
    let staged = match crate::up::stage(serving.store().as_ref(), &app, text).await {
        Ok(staged) => staged,
        Err(e) => {
            eprintln!("{e:#}\nstill serving the running version");
            return outputs;
        }
    };
    match serving
        .clone()
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
    outputs
}

/// Every file under `dir` but those in skipped directories and those the
/// server writes (`written`: files, or directories with all under them).
fn snapshot(dir: &Path, written: &[PathBuf]) -> Snapshot {
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
                if !skipped && !written.contains(&path) {
                    pending.push(path);
                }
            } else if written.contains(&path) {
                continue;
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
