//! `nimbus build`: runs each function's build command in the manifest's
//! directory, each distinct command once.

use anyhow::{Context as _, bail};
use nimbus_manifest::App;
use std::os::fd::AsFd as _;
use std::path::Path;
use std::process::{Command, Stdio};

pub fn run(manifest: &Path) -> anyhow::Result<()> {
    let app = App::load(manifest)?;
    build_app(&app)?;
    app.check_components()?;
    Ok(())
}

/// Runs the build commands of `app`; the output goes to stderr so stdout
/// stays free for what `nimbus up` reports.
pub fn build_app(app: &App) -> anyhow::Result<()> {
    let mut done: Vec<&str> = Vec::new();
    for function in app.functions.values() {
        let Some(command) = function.build.as_deref() else {
            continue;
        };
        if done.contains(&command) {
            continue;
        }
        eprintln!("building function `{}`: {command}", function.name);
        let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
        let status = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&app.base_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stderr))
            .status()
            .with_context(|| {
                format!(
                    "failed to start the build command of function `{}`",
                    function.name
                )
            })?;
        if !status.success() {
            bail!(
                "the build command of function `{}` failed ({status}): {command}",
                function.name
            );
        }
        done.push(command);
    }
    Ok(())
}
