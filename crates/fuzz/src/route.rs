//! The route target: `RoutePattern::parse` and matching.
//!
//! The input is `pattern\npath\nother-pattern` (missing parts are empty). A
//! pattern that parses must read back as written; a match must account for
//! every byte of the path (literals, one non-empty segment per parameter, the
//! rest after `...`); precedence must be a consistent order; two patterns of
//! the same shape must match the same paths.

use nimbus_manifest::{RoutePattern, Segment};
use std::cmp::Ordering;

pub fn route(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let raw = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let other_raw = parts.next().unwrap_or_default();

    let Some(pattern) = parsed(raw) else {
        return;
    };
    check_match(&pattern, path);
    // A literal-only pattern is a path that matches itself and nothing else.
    if pattern
        .segments()
        .iter()
        .all(|s| matches!(s, Segment::Literal(_)))
    {
        assert!(pattern.matches(raw).is_some(), "{raw} must match itself");
        assert_eq!(
            pattern.matches(path).is_some(),
            path == raw,
            "literal pattern {raw} and path {path:?}"
        );
    }

    let Some(other) = parsed(other_raw) else {
        return;
    };
    check_match(&other, path);
    let (ab, ba) = (
        pattern.specificity_cmp(&other),
        other.specificity_cmp(&pattern),
    );
    assert_eq!(ab, ba.reverse(), "precedence of {raw} and {other_raw}");
    assert_eq!(pattern.same_shape(&other), other.same_shape(&pattern));
    if pattern.same_shape(&other) {
        assert_eq!(ab, Ordering::Equal, "{raw} and {other_raw} have one shape");
        assert_eq!(
            pattern.matches(path).is_some(),
            other.matches(path).is_some(),
            "{raw} and {other_raw} have one shape but differ on {path:?}"
        );
    }
}

/// Parses `raw` and checks what any accepted pattern must be.
fn parsed(raw: &str) -> Option<RoutePattern> {
    let pattern = RoutePattern::parse(raw).ok()?;
    assert_eq!(pattern.as_str(), raw);
    assert_eq!(
        RoutePattern::parse(&pattern.to_string()).as_ref(),
        Ok(&pattern)
    );
    assert!(pattern.same_shape(&pattern));
    assert_eq!(pattern.specificity_cmp(&pattern), Ordering::Equal);
    let segments = pattern.segments();
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Literal(l) => assert!(!l.is_empty() && !l.contains(['/', '{', '}'])),
            Segment::Param(p) => {
                assert!(!p.is_empty());
                let count = segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Param(q) if q == p))
                    .count();
                assert_eq!(count, 1, "parameter {p} repeated in {raw}");
            }
            Segment::Rest => assert_eq!(i + 1, segments.len(), "`...` not last in {raw}"),
        }
    }
    Some(pattern)
}

/// If `pattern` matches `path`, the captures rebuild the path.
fn check_match(pattern: &RoutePattern, path: &str) {
    let Some(m) = pattern.matches(path) else {
        return;
    };
    let mut rebuilt = String::new();
    let mut params = m.params.iter();
    for segment in pattern.segments() {
        match segment {
            Segment::Literal(l) => {
                rebuilt.push('/');
                rebuilt.push_str(l);
            }
            Segment::Param(name) => {
                let (captured_name, value) = params.next().expect("a capture per parameter");
                assert_eq!(captured_name, name);
                assert!(
                    !value.is_empty() && !value.contains('/'),
                    "{{{name}}} = {value:?}"
                );
                rebuilt.push('/');
                rebuilt.push_str(value);
            }
            Segment::Rest => {}
        }
    }
    assert!(params.next().is_none(), "more captures than parameters");
    let has_rest = matches!(pattern.segments().last(), Some(Segment::Rest));
    assert_eq!(m.rest.is_some(), has_rest, "{pattern} on {path:?}");
    match m.rest {
        // `/static/...` matches `/static`, `/static/` and `/static/a/b`.
        Some(rest) => {
            assert!(path.ends_with(rest), "rest {rest:?} of {path:?}");
            let full = format!("{rebuilt}/{rest}");
            assert!(
                full == path || (rest.is_empty() && rebuilt == path),
                "{pattern} matched {path:?} as {rebuilt:?} + rest {rest:?}"
            );
        }
        None => {
            let rebuilt = if rebuilt.is_empty() {
                "/".to_owned()
            } else {
                rebuilt
            };
            assert_eq!(rebuilt, path, "{pattern} matched {path:?}");
        }
    }
}
