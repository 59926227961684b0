//! Manifest errors that point at a file, line and column and say how to fix it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A position in the manifest, 1-based, columns counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The location of byte offset `offset` in `source`.
    pub fn of(source: &str, offset: usize) -> Self {
        let offset = offset.min(source.len());
        let before = &source[..floor_char_boundary(source, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location { line, column }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One problem found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
    /// The manifest line the location points into, for display.
    pub source_line: String,
}

/// Everything wrong with one manifest, or the reason it could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("failed to read manifest {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(path, diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

impl ManifestError {
    /// The individual problems; empty when the file could not be read.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ManifestError::Read { .. } => &[],
            ManifestError::Invalid { diagnostics, .. } => diagnostics,
        }
    }
}

fn render(path: &Path, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let gutter = d.location.line.to_string().len();
        let pad = " ".repeat(gutter);
        let caret_pad = " ".repeat(d.location.column.saturating_sub(1));
        out.push_str(&format!(
            "error: {msg}\n{pad}--> {file}:{line}:{col}\n{pad} |\n{line} | {src}\n{pad} | {caret_pad}^\n{pad} = help: {help}",
            msg = d.message,
            file = path.display(),
            line = d.location.line,
            col = d.location.column,
            src = d.source_line,
            help = d.help,
        ));
    }
    out
}

/// Collects diagnostics against one source text.
pub(crate) struct Diagnostics<'a> {
    source: &'a str,
    found: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    pub(crate) fn new(source: &'a str) -> Self {
        Diagnostics {
            source,
            found: Vec::new(),
        }
    }

    pub(crate) fn error(
        &mut self,
        span: Range<usize>,
        message: impl fmt::Display,
        help: impl fmt::Display,
    ) {
        let location = Location::of(self.source, span.start);
        let message = message.to_string();
        // A key read by two resolvers (`retry_backoff` of a retrying trigger
        // is both a delivery and a retry key) is reported once.
        if self
            .found
            .iter()
            .any(|d| d.location == location && d.message == message)
        {
            return;
        }
        let source_line = self
            .source
            .lines()
            .nth(location.line - 1)
            .unwrap_or_default()
            .to_owned();
        self.found.push(Diagnostic {
            location,
            message,
            help: help.to_string(),
            source_line,
        });
    }

    pub(crate) fn location(&self, offset: usize) -> Location {
        Location::of(self.source, offset)
    }

    pub(crate) fn finish(self, path: &Path) -> Result<(), ManifestError> {
        if self.found.is_empty() {
            Ok(())
        } else {
            Err(ManifestError::Invalid {
                path: path.to_owned(),
                diagnostics: self.found,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_characters_from_one() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(Location::of(src, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::of(src, 6), Location { line: 2, column: 1 });
        // "é" is two bytes but one column.
        assert_eq!(Location::of(src, 9), Location { line: 2, column: 3 });
    }
}
