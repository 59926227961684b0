//! Where the password comes from when the URL has none, as libpq looks:
//! `PGPASSWORD`, then the pass file (`PGPASSFILE`, else `~/.pgpass`), whose
//! lines are `host:port:database:user:password` with `*` matching anything
//! and `\:` / `\\` escapes. A pass file others can read is ignored, as libpq
//! does, with a warning.

use std::path::{Path, PathBuf};
use tokio_postgres::config::Host;

/// Fills in `config`'s password from the environment or the pass file.
pub(crate) fn fill(config: &mut tokio_postgres::Config) {
    if config.get_password().is_some() {
        return;
    }
    if let Some(password) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
        config.password(password.as_encoded_bytes());
        return;
    }
    let Some(file) = pass_file() else {
        return;
    };
    let Ok(text) = std::fs::read_to_string(&file) else {
        return;
    };
    if readable_by_others(&file) {
        tracing::warn!(
            file = %file.display(),
            "ignoring the pass file: others can read it (chmod 0600 it)"
        );
        return;
    }
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        // libpq matches a unix socket as `localhost`.
        Some(Host::Unix(_)) | None => "localhost".to_owned(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or_default().to_owned();
    let database = config.get_dbname().unwrap_or(&user).to_owned();
    if let Some(password) = lookup(&text, [&host, &port, &database, &user]) {
        config.password(password);
    }
}

fn pass_file() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("PGPASSFILE").filter(|f| !f.is_empty()) {
        return Some(PathBuf::from(file));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".pgpass"))
}

fn readable_by_others(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(file).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

/// The password of the first line whose four fields match `wanted`.
fn lookup(text: &str, wanted: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split(line);
            if fields.len() != 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want);
            matches.then(|| fields[4].clone())
        })
}

/// Splits a pass file line at unescaped colons, undoing the escapes.
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().unwrap().push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    db.example:5432:other:ann:nope\n\
                    db.example:*:nimbus:ann:pa\\:ss\\\\word\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            lookup(text, ["db.example", "5433", "nimbus", "ann"]).as_deref(),
            Some("pa:ss\\word")
        );
        assert_eq!(
            lookup(text, ["elsewhere", "5432", "x", "bob"]).as_deref(),
            Some("fallback")
        );
        assert_eq!(lookup("a:b:c:d\n", ["a", "b", "c", "d"]), None);
    }
}
