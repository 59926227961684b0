//! `nimbus new NAME --template T`: writes a ready project from a template
//! carried in this binary, so it needs no network: the manifest (with a
//! `build` command per function, for `nimbus build` and `nimbus up --build`),
//! the source, and what the language needs to build it.
//!
//! Templates live in `templates/` at the repository root. What a project
//! needs from Nimbus itself is embedded from where Nimbus keeps it, never
//! from a copy: the Rust SDK (`crates/sdk`, a path dependency of the
//! project, since it is not published) with the WIT it is generated from
//! (`crates/wit`), and the Python module (`sdk/python/nimbus.py`). WASI's WIT,
//! which Python and JavaScript HTTP functions are built against, is vendored
//! in `templates/wasi-wit` with its licence.

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};

/// A file of the repository, embedded when the binary is built.
macro_rules! embed {
    ($path:expr) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../", $path))
    };
}

/// A file of a template, written at the same path in the project.
macro_rules! template_file {
    ($template:literal, $path:literal) => {
        (
            $path,
            Source::Template(embed!(concat!("templates/", $template, "/", $path))),
        )
    };
}

/// A file of WASI's WIT, written at the same path under `wit/deps`.
macro_rules! wasi_wit {
    ($path:literal) => {
        ($path, embed!(concat!("templates/wasi-wit/", $path)))
    };
}

/// `nimbus new`'s arguments.
#[derive(clap::Args)]
pub struct NewArgs {
    /// The app's name (`[app] name`), also the directory's unless --dir is
    /// given.
    name: String,
    /// What to start from.
    #[arg(long, short, value_parser = template_names())]
    template: String,
    /// Where to write the project (default: `./NAME`); it must not exist or
    /// be empty.
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
}

/// Where a file of a project comes from.
#[derive(Clone, Copy)]
enum Source {
    /// A template file: `{{name}}` becomes the app's name, and
    /// `{{nimbus_wit_version}}` and `{{wasi_wit_version}}` the versions of
    /// the WIT packages written alongside.
    Template(&'static str),
    /// A file of Nimbus itself (the SDK, the WIT), written as it is.
    Verbatim(&'static str),
    /// The Rust SDK's `Cargo.toml`, made to stand outside Nimbus's workspace.
    SdkManifest,
}

struct Template {
    name: &'static str,
    about: &'static str,
    files: &'static [(&'static str, Source)],
    /// Whether `wit/deps` gets WASI's WIT (for wasi:http worlds).
    wasi_wit: bool,
    /// What the build needs besides the project, said after it is written.
    needs: &'static str,
}

const NIMBUS_WIT: &str = embed!("crates/wit/wit/nimbus.wit");
const PYTHON_MODULE: &str = embed!("sdk/python/nimbus.py");

const TEMPLATES: &[Template] = &[
    Template {
        name: "rust-http",
        about: "an HTTP function in Rust (wasi:http with the wstd crate)",
        files: &[
            template_file!("rust-http", "nimbus.toml"),
            template_file!("rust-http", "Cargo.toml"),
            template_file!("rust-http", "Cargo.lock"),
            template_file!("rust-http", ".gitignore"),
            template_file!("rust-http", "src/main.rs"),
        ],
        wasi_wit: false,
        needs: "Rust's wasm32-wasip2 target (`rustup target add wasm32-wasip2`)",
    },
    Template {
        name: "rust-event",
        about: "an event function in Rust on a queue trigger, writing to a table (the Nimbus SDK)",
        files: &[
            template_file!("rust-event", "nimbus.toml"),
            template_file!("rust-event", "Cargo.toml"),
            template_file!("rust-event", "Cargo.lock"),
            template_file!("rust-event", ".gitignore"),
            template_file!("rust-event", "src/lib.rs"),
            // The SDK finds its WIT at `../wit/wit`, as in the repository.
            ("nimbus/sdk/Cargo.toml", Source::SdkManifest),
            (
                "nimbus/sdk/src/lib.rs",
                Source::Verbatim(embed!("crates/sdk/src/lib.rs")),
            ),
            ("nimbus/wit/wit/nimbus.wit", Source::Verbatim(NIMBUS_WIT)),
        ],
        wasi_wit: false,
        needs: "Rust's wasm32-wasip2 target (`rustup target add wasm32-wasip2`)",
    },
    Template {
        name: "python-http",
        about: "an HTTP function in Python (wasi:http, componentize-py)",
        files: &[
            template_file!("python-http", "nimbus.toml"),
            template_file!("python-http", ".gitignore"),
            template_file!("python-http", "app.py"),
            ("nimbus.py", Source::Verbatim(PYTHON_MODULE)),
            template_file!("python-http", "wit/world.wit"),
            ("wit/deps/nimbus.wit", Source::Verbatim(NIMBUS_WIT)),
        ],
        wasi_wit: true,
        needs: "componentize-py (`pip install componentize-py==0.25.1`)",
    },
    Template {
        name: "python-event",
        about: "an event function in Python on a queue trigger, writing to a table (componentize-py)",
        files: &[
            template_file!("python-event", "nimbus.toml"),
            template_file!("python-event", ".gitignore"),
            template_file!("python-event", "app.py"),
            ("nimbus.py", Source::Verbatim(PYTHON_MODULE)),
            ("wit/nimbus.wit", Source::Verbatim(NIMBUS_WIT)),
        ],
        wasi_wit: false,
        needs: "componentize-py (`pip install componentize-py==0.25.1`)",
    },
    Template {
        name: "js-http",
        about: "an HTTP function in JavaScript (a fetch event handler, ComponentizeJS)",
        files: &[
            template_file!("js-http", "nimbus.toml"),
            template_file!("js-http", "package.json"),
            template_file!("js-http", "package-lock.json"),
            template_file!("js-http", ".gitignore"),
            template_file!("js-http", "app.js"),
            template_file!("js-http", "wit/world.wit"),
            ("wit/deps/nimbus.wit", Source::Verbatim(NIMBUS_WIT)),
        ],
        wasi_wit: true,
        needs: "Node.js and npm (`npm install` fetches ComponentizeJS, pinned in package.json)",
    },
];

/// WASI 0.2 as of its v0.2.10 tag, one directory per package (what
/// wasi:http's proxy world needs to resolve), with its licence.
const WASI_WIT: &[(&str, &str)] = &[
    wasi_wit!("LICENSE.md"),
    wasi_wit!("cli/command.wit"),
    wasi_wit!("cli/environment.wit"),
    wasi_wit!("cli/exit.wit"),
    wasi_wit!("cli/imports.wit"),
    wasi_wit!("cli/run.wit"),
    wasi_wit!("cli/stdio.wit"),
    wasi_wit!("cli/terminal.wit"),
    wasi_wit!("clocks/monotonic-clock.wit"),
    wasi_wit!("clocks/timezone.wit"),
    wasi_wit!("clocks/wall-clock.wit"),
    wasi_wit!("clocks/world.wit"),
    wasi_wit!("filesystem/preopens.wit"),
    wasi_wit!("filesystem/types.wit"),
    wasi_wit!("filesystem/world.wit"),
    wasi_wit!("http/handler.wit"),
    wasi_wit!("http/proxy.wit"),
    wasi_wit!("http/types.wit"),
    wasi_wit!("io/error.wit"),
    wasi_wit!("io/poll.wit"),
    wasi_wit!("io/streams.wit"),
    wasi_wit!("io/world.wit"),
    wasi_wit!("random/insecure-seed.wit"),
    wasi_wit!("random/insecure.wit"),
    wasi_wit!("random/random.wit"),
    wasi_wit!("random/world.wit"),
    wasi_wit!("sockets/instance-network.wit"),
    wasi_wit!("sockets/ip-name-lookup.wit"),
    wasi_wit!("sockets/network.wit"),
    wasi_wit!("sockets/tcp-create-socket.wit"),
    wasi_wit!("sockets/tcp.wit"),
    wasi_wit!("sockets/udp-create-socket.wit"),
    wasi_wit!("sockets/udp.wit"),
    wasi_wit!("sockets/world.wit"),
];

/// The template names for `--template`, each with what it makes (shown by
/// `--help`; an unknown name is refused with the list).
fn template_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        TEMPLATES
            .iter()
            .map(|t| clap::builder::PossibleValue::new(t.name).help(t.about)),
    )
}

pub fn run(args: &NewArgs) -> anyhow::Result<()> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let template = create(&args.name, &args.template, &dir)?;
    println!(
        "created app `{}` from template `{}` in {}",
        args.name,
        template.name,
        dir.display()
    );
    println!("building it needs {}; then:", template.needs);
    println!("  cd {} && nimbus up --build", dir.display());
    Ok(())
}

/// Writes the project of `template` for app `name` into `dir`.
fn create(name: &str, template: &str, dir: &Path) -> anyhow::Result<&'static Template> {
    let Some(template) = TEMPLATES.iter().find(|t| t.name == template) else {
        let known: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
        bail!(
            "unknown template `{template}`; the templates are: {}",
            known.join(", ")
        );
    };
    if !nimbus_manifest::valid_app_name(name) {
        bail!(
            "app name `{name}` is not valid: use {}",
            nimbus_manifest::APP_NAME_RULE
        );
    }
    check_target(dir)?;
    for (path, contents) in files(template, name) {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create {}", parent.display()))?;
        }
        std::fs::write(&path, contents)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(template)
}

/// Refuses a target that holds anything: a project is never written over
/// files someone has.
fn check_target(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} already exists and is not empty; name another directory with --dir",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if dir.exists() => bail!(
            "{} already exists and is not a directory we can write into",
            dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("failed to read {}", dir.display())),
    }
}

/// The project's files: relative paths and contents.
fn files(template: &Template, name: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = template
        .files
        .iter()
        .map(|&(path, source)| {
            let contents = match source {
                Source::Template(text) => fill(text, name),
                Source::Verbatim(text) => text.to_owned(),
                Source::SdkManifest => sdk_manifest(),
            };
            (path.to_owned(), contents)
        })
        .collect();
    if template.wasi_wit {
        files.extend(
            WASI_WIT
                .iter()
                .map(|&(path, text)| (format!("wit/deps/{path}"), text.to_owned())),
        );
    }
    files
}

fn fill(text: &str, name: &str) -> String {
    text.replace("{{name}}", name)
        .replace("{{nimbus_wit_version}}", package_version(NIMBUS_WIT))
        .replace(
            "{{wasi_wit_version}}",
            package_version(embed!("templates/wasi-wit/http/proxy.wit")),
        )
}

/// The version of the WIT package `wit` declares (`package ns:name@VERSION;`).
fn package_version(wit: &str) -> &str {
    wit.lines()
        .find_map(|line| line.trim().strip_prefix("package "))
        .and_then(|package| package.trim_end_matches(';').split_once('@'))
        .map(|(_, version)| version.trim())
        .expect("embedded WIT declares a versioned package")
}

/// The SDK's `Cargo.toml` with the keys it inherits from Nimbus's workspace
/// written out (`version.workspace = true` becomes the workspace's
/// `version = ...`), and the workspace's lints left out: in a project the
/// SDK is a path dependency inside the project's own workspace.
fn sdk_manifest() -> String {
    let workspace = embed!("Cargo.toml");
    let mut out = String::new();
    let mut section = String::new();
    for line in embed!("crates/sdk/Cargo.toml").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_owned();
        }
        if section == "[lints]" {
            continue;
        }
        if let Some(key) = trimmed.strip_suffix(".workspace = true") {
            let from = match section.as_str() {
                "[package]" => "[workspace.package]",
                _ => "[workspace.dependencies]",
            };
            let value = toml_value(workspace, from, key).unwrap_or_else(|| {
                panic!("Nimbus's Cargo.toml has no `{key}` in {from} for the SDK")
            });
            out.push_str(&format!("{key} = {value}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.trim_end().to_owned() + "\n"
}

/// The value (as written) of `key = VALUE` in `section` of a TOML file.
fn toml_value<'a>(toml: &'a str, section: &str, key: &str) -> Option<&'a str> {
    let mut inside = false;
    for line in toml.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == section;
        } else if inside
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_manifest_stands_outside_the_workspace() {
        let manifest = sdk_manifest();
        assert!(!manifest.contains("workspace"), "{manifest}");
        assert!(manifest.contains("name = \"nimbus-sdk\""), "{manifest}");
        assert!(
            manifest.contains(&format!("version = \"{}\"", env!("CARGO_PKG_VERSION"))),
            "{manifest}"
        );
        assert!(manifest.contains("edition = \"2024\""), "{manifest}");
        assert!(manifest.contains("wit-bindgen = "), "{manifest}");
    }

    #[test]
    fn templates_fill_in_the_name_and_wit_versions() {
        for template in TEMPLATES {
            for (path, contents) in files(template, "my-app") {
                assert!(
                    !contents.contains("{{"),
                    "{}: {path} has a placeholder left",
                    template.name
                );
            }
        }
        assert_eq!(package_version(NIMBUS_WIT), "0.1.0");
        let python_http = TEMPLATES.iter().find(|t| t.name == "python-http").unwrap();
        let world = files(python_http, "x")
            .into_iter()
            .find(|(path, _)| path == "wit/world.wit")
            .unwrap()
            .1;
        assert!(world.contains("include wasi:http/proxy@0.2.10;"), "{world}");
        assert!(
            world.contains("include nimbus:function/imports@0.1.0;"),
            "{world}"
        );
    }

    /// A file added to `templates/` but not to the tables here would never
    /// reach a project.
    #[test]
    fn every_file_under_templates_is_embedded() {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, found);
                } else {
                    found.push(path);
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
        let mut found = Vec::new();
        walk(&root, &mut found);
        for path in found {
            let relative = path.strip_prefix(&root).unwrap().to_str().unwrap();
            let (dir, file) = relative.split_once('/').unwrap();
            let embedded = if dir == "wasi-wit" {
                file == "README.md" || WASI_WIT.iter().any(|&(p, _)| p == file)
            } else {
                TEMPLATES
                    .iter()
                    .find(|t| t.name == dir)
                    .is_some_and(|t| t.files.iter().any(|&(p, _)| p == file))
            };
            assert!(embedded, "templates/{relative} is not embedded");
        }
    }

    #[test]
    fn every_template_manifest_is_valid() {
        for template in TEMPLATES {
            let (_, manifest) = files(template, "my-app")
                .into_iter()
                .find(|(path, _)| path == "nimbus.toml")
                .unwrap();
            let app = nimbus_manifest::App::parse(Path::new("nimbus.toml"), &manifest)
                .unwrap_or_else(|e| panic!("{}: {e}", template.name));
            assert_eq!(app.name, "my-app");
            for function in app.functions.values() {
                assert!(function.build.is_some(), "{}", template.name);
            }
        }
    }

    #[test]
    fn a_bad_name_an_unknown_template_and_a_full_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("app");
        let Err(e) = create("My_App", "rust-http", &target) else {
            panic!("accepted");
        };
        assert!(
            e.to_string().contains("app name `My_App` is not valid"),
            "{e}"
        );
        let Err(e) = create("app", "cobol-http", &target) else {
            panic!("accepted");
        };
        assert!(
            e.to_string().contains("unknown template `cobol-http`; the templates are: rust-http, rust-event, python-http, python-event, js-http"),
            "{e}"
        );
        assert!(!target.exists());

        std::fs::create_dir(&target).unwrap();
        create("app", "python-event", &target).unwrap();
        assert!(target.join("wit/nimbus.wit").is_file());
        let Err(e) = create("app", "python-event", &target) else {
            panic!("accepted");
        };
        assert!(
            e.to_string().contains("already exists and is not empty"),
            "{e}"
        );
    }
}
