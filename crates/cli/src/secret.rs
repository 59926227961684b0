//! `nimbus secret ...`: set, list and delete a running app's secrets through
//! the admin API. A value is never a command-line argument (it would land
//! in shell history and `ps`): it comes from stdin or a file, and nothing
//! here prints it. Also where `nimbus up` finds the secret key and opens
//! the vault.

use crate::client::segment;
use crate::output::{Format, Table, text, time_ms};
use crate::queue::AdminArgs;
use anyhow::Context as _;
use clap::Subcommand;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Set a secret from stdin (or --file), sealed at rest. The bytes are
    /// stored exactly, a trailing newline included (`printf %s` avoids one).
    Set {
        name: String,
        /// Read the value from this file instead of stdin.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// List secrets: names and times, never values.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Delete a secret.
    Delete { name: String },
}

pub fn run(admin: &AdminArgs, command: SecretCommand) -> anyhow::Result<()> {
    let client = admin.client()?;
    match command {
        SecretCommand::Set { name, file } => {
            let value = match file {
                Some(path) => std::fs::read(&path)
                    .with_context(|| format!("failed to read {}", path.display()))?,
                None => {
                    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                        eprintln!("reading the value of `{name}` from stdin; end it with Ctrl-D");
                    }
                    let mut value = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut value)
                        .context("failed to read the value from stdin")?;
                    value
                }
            };
            client.put_bytes(&format!("/v1/secrets/{}", segment(&name)), value)?;
            eprintln!("secret `{name}` set");
        }
        SecretCommand::List { format } => format.print(&client.get("/v1/secrets")?, |all| {
            Table::new(&["NAME", "CREATED", "UPDATED"]).rows(&all["secrets"], |s| {
                vec![
                    text(&s["name"]),
                    time_ms(&s["created_at_ms"]),
                    time_ms(&s["updated_at_ms"]),
                ]
            })
        }),
        SecretCommand::Delete { name } => {
            client.delete(&format!("/v1/secrets/{}", segment(&name)))?;
            eprintln!("secret `{name}` deleted");
        }
    }
    Ok(())
}

/// Opens the vault over `store` with the key file (created only when the
/// first secret is set), failing now if the key is not the one the stored
/// secrets were sealed with, or is missing while secrets are stored.
pub async fn open_vault(
    key_file: Option<&Path>,
    app: &str,
    store: Arc<dyn nimbus_store::SecretStore>,
    store_location: &str,
) -> anyhow::Result<Arc<nimbus_vault::Vault>> {
    let path = match key_file {
        Some(path) => path.to_owned(),
        None => default_key_file(app)?,
    };
    // The key file is read if it exists; otherwise it is created when the
    // first secret is set, so an app without secrets leaves none behind.
    match nimbus_vault::Vault::open_with_key_file(store, &path).await {
        Ok(vault) => Ok(Arc::new(vault)),
        Err(nimbus_vault::VaultError::WrongKey) => anyhow::bail!(
            "the secret key in {} does not open the secrets in {}: they were sealed with another key. \
             Start with the key file they were sealed with (--secret-key-file or NIMBUS_SECRET_KEY_FILE)",
            path.display(),
            store_location
        ),
        Err(nimbus_vault::VaultError::KeyMissing(_)) => anyhow::bail!(
            "the secret key file {} does not exist, but {} holds secrets sealed with a key. \
             Start with the key file they were sealed with (--secret-key-file or NIMBUS_SECRET_KEY_FILE)",
            path.display(),
            store_location
        ),
        Err(e) => Err(e).context("failed to open the secrets"),
    }
}

/// `$XDG_CONFIG_HOME/nimbus/APP/secrets.key`, else under `~/.config`: per
/// user and apart from the data directory, so the database and the key do
/// not travel together.
fn default_key_file(app: &str) -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .context("neither XDG_CONFIG_HOME nor HOME is set; pass --secret-key-file")?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(base.join("nimbus").join(app).join("secrets.key"))
}
