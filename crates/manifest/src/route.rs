//! HTTP route patterns: `/literal/{param}/...`, their precedence and matching.
//!
//! A pattern is a sequence of segments. `{name}` matches exactly one non-empty
//! segment; a final `...` matches the rest of the path (zero or more segments).
//! When several patterns match a path, the one with the most specific segment
//! wins, comparing left to right: literal over `{param}` over `...`.

use std::cmp::Ordering;
use std::fmt;

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(String),
    /// The trailing `...`.
    Rest,
}

impl Segment {
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 0,
            Segment::Param(_) => 1,
            Segment::Rest => 2,
        }
    }
}

/// A parsed route such as `/hello/{name}` or `/static/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    raw: String,
    segments: Vec<Segment>,
}

/// What a pattern captured from a path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteMatch<'p> {
    /// `{param}` values in pattern order, as they appear in the URL (still
    /// percent-encoded).
    pub params: Vec<(&'p str, &'p str)>,
    /// What `...` matched, without a leading slash; `None` without `...`.
    pub rest: Option<&'p str>,
}

/// Why a route pattern is invalid; the message says how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RouteError(String);

impl RoutePattern {
    pub fn parse(raw: &str) -> Result<Self, RouteError> {
        let err = |m: String| Err(RouteError(m));
        let Some(body) = raw.strip_prefix('/') else {
            return err(format!("route `{raw}` must start with `/`"));
        };
        let mut segments = Vec::new();
        if !body.is_empty() {
            let parts: Vec<&str> = body.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                let last = i + 1 == parts.len();
                if *part == "..." {
                    if !last {
                        return err(format!(
                            "`...` in route `{raw}` may only be the last segment"
                        ));
                    }
                    segments.push(Segment::Rest);
                } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
                {
                    if !valid_param_name(name) {
                        return err(format!(
                            "parameter `{{{name}}}` in route `{raw}` needs a name of lowercase letters, digits and `_`, starting with a letter"
                        ));
                    }
                    if segments
                        .iter()
                        .any(|s| matches!(s, Segment::Param(p) if p == name))
                    {
                        return err(format!(
                            "parameter `{{{name}}}` appears twice in route `{raw}`"
                        ));
                    }
                    segments.push(Segment::Param(name.to_owned()));
                } else if part.is_empty() {
                    if last {
                        return err(format!(
                            "route `{raw}` must not end with `/`; use `/...` to match everything below it"
                        ));
                    }
                    return err(format!("route `{raw}` has an empty segment (`//`)"));
                } else if let Some(bad) = part.chars().find(|c| !valid_literal_char(*c)) {
                    return err(format!(
                        "route `{raw}` contains `{bad}`; literal segments may use letters, digits and -._~!$&'()*+,;=:@%, parameters are written `{{name}}`"
                    ));
                } else {
                    segments.push(Segment::Literal((*part).to_owned()));
                }
            }
        }
        Ok(RoutePattern {
            raw: raw.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether two patterns match exactly the same paths (parameter names
    /// aside), so that neither can win over the other.
    pub fn same_shape(&self, other: &RoutePattern) -> bool {
        self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| match (a, b) {
                    (Segment::Literal(x), Segment::Literal(y)) => x == y,
                    (a, b) => a.rank() == b.rank(),
                })
    }

    /// Precedence between two patterns that match the same path: `Less` means
    /// `self` is more specific and wins.
    pub fn specificity_cmp(&self, other: &RoutePattern) -> Ordering {
        let ranks = |p: &RoutePattern| p.segments.iter().map(Segment::rank).collect::<Vec<_>>();
        // A longer literal prefix is more specific; at equal ranks, the longer
        // pattern is more specific (`/a/...` matches less than `/...`).
        ranks(self)
            .cmp(&ranks(other))
            .then_with(|| other.segments.len().cmp(&self.segments.len()))
    }

    /// Matches a request path (no query string).
    pub fn matches<'a>(&'a self, path: &'a str) -> Option<RouteMatch<'a>> {
        let body = path.strip_prefix('/')?;
        let mut captured = RouteMatch::default();
        let mut remaining = if body.is_empty() { None } else { Some(body) };
        for segment in &self.segments {
            match segment {
                Segment::Rest => {
                    captured.rest = Some(remaining.unwrap_or(""));
                    return Some(captured);
                }
                Segment::Literal(lit) => {
                    let (head, tail) = split_first(remaining?);
                    if head != lit {
                        return None;
                    }
                    remaining = tail;
                }
                Segment::Param(name) => {
                    let (head, tail) = split_first(remaining?);
                    if head.is_empty() {
                        return None;
                    }
                    captured.params.push((name.as_str(), head));
                    remaining = tail;
                }
            }
        }
        remaining.is_none().then_some(captured)
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Splits `a/b/c` into `a` and `Some("b/c")`; `a/` into `a` and `Some("")`.
fn split_first(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        Some((head, tail)) => (head, Some(tail)),
        None => (s, None),
    }
}

fn valid_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn valid_literal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: &str) -> RoutePattern {
        RoutePattern::parse(raw).unwrap()
    }

    #[test]
    fn params_capture_one_segment_each() {
        let route = p("/users/{id}/posts/{post}");
        let m = route.matches("/users/42/posts/7").unwrap();
        assert_eq!(m.params, vec![("id", "42"), ("post", "7")]);
        assert_eq!(m.rest, None);
        assert!(p("/users/{id}").matches("/users/").is_none());
        assert!(p("/users/{id}").matches("/users/1/2").is_none());
        assert!(p("/users/{id}").matches("/users/1/").is_none());
    }

    #[test]
    fn rest_matches_zero_or_more_segments() {
        let r = p("/static/...");
        assert_eq!(r.matches("/static").unwrap().rest, Some(""));
        assert_eq!(r.matches("/static/").unwrap().rest, Some(""));
        assert_eq!(
            r.matches("/static/css/site.css").unwrap().rest,
            Some("css/site.css")
        );
        assert!(r.matches("/staticx").is_none());
        assert_eq!(p("/...").matches("/").unwrap().rest, Some(""));
    }

    #[test]
    fn root_matches_only_root() {
        assert!(p("/").matches("/").is_some());
        assert!(p("/").matches("/a").is_none());
    }

    #[test]
    fn literals_beat_params_beat_rest() {
        let mut routes = [p("/..."), p("/a/{x}"), p("/a/..."), p("/a/b"), p("/{x}/b")];
        routes.sort_by(|a, b| a.specificity_cmp(b));
        let order: Vec<_> = routes.iter().map(|r| r.as_str()).collect();
        assert_eq!(order, ["/a/b", "/a/{x}", "/a/...", "/{x}/b", "/..."]);
    }

    #[test]
    fn shapes_ignore_parameter_names() {
        assert!(p("/a/{x}").same_shape(&p("/a/{y}")));
        assert!(!p("/a/{x}").same_shape(&p("/a/b")));
        assert!(!p("/a/...").same_shape(&p("/a/{x}")));
    }

    #[test]
    fn bad_patterns_are_rejected_with_a_reason() {
        for (raw, fragment) in [
            ("hello", "must start with `/`"),
            ("/a//b", "empty segment"),
            ("/a/", "must not end with `/`"),
            ("/.../a", "only be the last"),
            ("/{Name}", "lowercase"),
            ("/{x}/{x}", "appears twice"),
            ("/a b", "contains ` `"),
            ("/a{x}", "contains `{`"),
        ] {
            let e = RoutePattern::parse(raw).unwrap_err().to_string();
            assert!(e.contains(fragment), "{raw}: {e}");
        }
    }
}
