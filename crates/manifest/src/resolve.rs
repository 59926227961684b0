//! Turns the raw manifest into an [`App`]: checks every value, applies
//! defaults, resolves paths and references, and detects conflicting routes.

use crate::diagnostic::Diagnostics;
use crate::limits::{self, Limit};
use crate::raw::{RawFunction, RawHttpTrigger, RawManifest, RawQueue, RawQueueTrigger};
use crate::route::RoutePattern;
use crate::{App, Function, Grant, HttpTrigger, ManifestError, Queue, QueueTrigger};
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

const DOCS: &str = "docs/manifest.md";
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

pub(crate) fn resolve(path: &Path, source: &str) -> Result<App, ManifestError> {
    let mut d = Diagnostics::new(source);
    let raw: RawManifest = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => {
            let (message, help) = explain_parse_error(e.message());
            d.error(e.span().unwrap_or(0..0), message, help);
            return Err(d.finish(path).unwrap_err());
        }
    };

    let name = match &raw.app {
        None => {
            d.error(
                0..0,
                "the manifest has no [app] table",
                "add `[app]` with `name = \"my-app\"` at the top",
            );
            String::new()
        }
        Some(app) => {
            let name = &app.get_ref().name;
            if !crate::valid_app_name(name.get_ref()) {
                d.error(
                    name.span(),
                    format!("app name `{}` is not valid", name.get_ref()),
                    format!("use {}", crate::APP_NAME_RULE),
                );
            }
            name.get_ref().clone()
        }
    };

    let manifest_path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let base_dir = manifest_path
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();

    let mut functions = BTreeMap::new();
    for (fname, raw_fn) in &raw.function {
        if let Some(f) = resolve_function(&mut d, &base_dir, fname, raw_fn) {
            functions.insert(f.name.clone(), f);
        }
    }

    let queues = resolve_queues(&mut d, &raw.queue);
    let tables = crate::table::resolve_tables(&mut d, &raw.table);
    let buckets = crate::bucket::resolve_buckets(&mut d, &raw.bucket);
    let function_names: Vec<String> = functions.keys().cloned().collect();
    let known = Known {
        queues: &queues,
        functions: &function_names,
        tables: &tables,
        buckets: &buckets,
    };
    for (fname, raw_fn) in &raw.function {
        let grants = resolve_grants(&mut d, &known, &raw_fn.get_ref().allow);
        let async_invoke = raw_fn.get_ref().async_invoke.as_ref().map(|policy| {
            crate::delivery::resolve_retry_policy(
                &mut d,
                policy.get_ref().retry(),
                &queues,
                &function_names,
            )
        });
        if let Some(f) = functions.get_mut(fname.get_ref()) {
            f.grants = grants;
            if let Some(policy) = async_invoke {
                f.async_invoke = policy;
            }
        }
    }
    let queue_triggers: Vec<QueueTrigger> = raw
        .trigger
        .queue
        .iter()
        .filter_map(|t| resolve_queue_trigger(&mut d, &functions, &queues, t))
        .collect();
    let stream_triggers = raw
        .trigger
        .stream
        .iter()
        .filter_map(|t| {
            crate::table::resolve_stream_trigger(&mut d, &functions, &tables, &queues, t)
        })
        .collect();
    let schedule_triggers = crate::schedule::resolve_schedule_triggers(
        &mut d,
        &raw.trigger.schedule,
        &functions,
        &queues,
    );
    let mut object_ids = std::collections::BTreeSet::new();
    let object_triggers = raw
        .trigger
        .object
        .iter()
        .filter_map(|t| {
            crate::bucket::resolve_object_trigger(
                &mut d,
                &mut object_ids,
                &functions,
                &buckets,
                &queues,
                t,
            )
        })
        .collect();

    let jwt = raw
        .auth
        .as_ref()
        .and_then(|a| a.get_ref().jwt.as_ref())
        .and_then(|jwt| crate::auth::resolve_jwt(&mut d, &base_dir, jwt));
    let has_jwt = raw.auth.as_ref().is_some_and(|a| a.get_ref().jwt.is_some());
    let mut http_triggers: Vec<(HttpTrigger, Spanned<()>)> = Vec::new();
    for raw_trigger in &raw.trigger.http {
        if let Some(t) = resolve_http_trigger(&mut d, &functions, raw_trigger, has_jwt) {
            http_triggers.push(t);
        }
    }
    check_route_conflicts(&mut d, &http_triggers);

    d.finish(path)?;
    Ok(App {
        name,
        manifest_path,
        base_dir,
        functions,
        queues,
        buckets,
        http_triggers: http_triggers.into_iter().map(|(t, _)| t).collect(),
        queue_triggers,
        tables,
        stream_triggers,
        schedule_triggers,
        object_triggers,
        jwt,
    })
}

/// Rewords serde's messages where a user needs more than what it says.
fn explain_parse_error(message: &str) -> (String, String) {
    let message = message.trim().replace('\n', "; ");
    let help = if message.starts_with("unknown field") {
        format!("remove the key or correct its spelling; every key is described in {DOCS}")
    } else if message.starts_with("invalid type") {
        format!("give the value the type the key expects (see {DOCS})")
    } else {
        "fix the TOML syntax at this point".to_owned()
    };
    (message, help)
}

fn resolve_function(
    d: &mut Diagnostics,
    base_dir: &Path,
    name: &Spanned<String>,
    raw: &Spanned<RawFunction>,
) -> Option<Function> {
    let f = raw.get_ref();
    if !valid_name(name.get_ref(), 64, true) {
        d.error(
            name.span(),
            format!("function name `{}` is not valid", name.get_ref()),
            "use 1 to 64 lowercase letters, digits, `-` and `_`, starting with a letter",
        );
    }
    let Some(component) = &f.component else {
        d.error(
            raw.span(),
            format!("function `{}` has no `component`", name.get_ref()),
            format!(
                "add `component = \"path/to/{}.wasm\"` (relative to the manifest)",
                name.get_ref()
            ),
        );
        return None;
    };
    if component.get_ref().trim().is_empty() {
        d.error(
            component.span(),
            "`component` is empty",
            "give the path of the function's .wasm component",
        );
    }
    if let Some(build) = &f.build
        && build.get_ref().trim().is_empty()
    {
        d.error(
            build.span(),
            "`build` is empty",
            "give a shell command that builds the component, or remove the key",
        );
    }
    let mut env = BTreeMap::new();
    for (key, value) in &f.env {
        if !valid_env_name(key.get_ref()) {
            d.error(
                key.span(),
                format!("environment variable name `{}` is not valid", key.get_ref()),
                "use letters, digits and `_`, not starting with a digit",
            );
        }
        env.insert(key.get_ref().clone(), value.get_ref().clone());
    }
    Some(Function {
        name: name.get_ref().clone(),
        component: base_dir.join(component.get_ref()),
        component_location: d.location(component.span().start),
        build: f.build.as_ref().map(|b| b.get_ref().clone()),
        memory_mb: limit(d, &f.memory_mb, limits::MEMORY_MB) as u32,
        timeout_ms: limit(d, &f.timeout_ms, limits::TIMEOUT_MS),
        max_concurrency: limit(d, &f.max_concurrency, limits::MAX_CONCURRENCY) as u32,
        max_log_bytes: limit(d, &f.max_log_bytes, limits::MAX_LOG_BYTES),
        env,
        grants: Vec::new(),
        outbound: crate::outbound::resolve(
            d,
            crate::outbound::RawOutbound {
                allowed_hosts: &f.allowed_outbound_hosts,
                private_hosts: &f.allowed_private_hosts,
                timeout_ms: &f.outbound_timeout_ms,
                max_response_bytes: &f.max_outbound_response_bytes,
            },
        ),
        async_invoke: crate::RetryPolicy::defaults(),
    })
}

fn resolve_http_trigger(
    d: &mut Diagnostics,
    functions: &BTreeMap<String, Function>,
    raw: &Spanned<RawHttpTrigger>,
    has_jwt: bool,
) -> Option<(HttpTrigger, Spanned<()>)> {
    let t = raw.get_ref();
    let route = match &t.route {
        None => {
            d.error(
                raw.span(),
                "[[trigger.http]] has no `route`",
                "add `route = \"/path\"`",
            );
            None
        }
        Some(route) => match RoutePattern::parse(route.get_ref()) {
            Ok(pattern) => Some((pattern, route.span())),
            Err(e) => {
                d.error(
                    route.span(),
                    e,
                    "routes look like `/users/{id}` or `/static/...`",
                );
                None
            }
        },
    };
    let function = match &t.function {
        None => {
            d.error(
                raw.span(),
                "[[trigger.http]] has no `function`",
                "add `function = \"NAME\"` naming a [function.NAME] table",
            );
            None
        }
        Some(f) if !functions.contains_key(f.get_ref()) => {
            let known: Vec<&str> = functions.keys().map(String::as_str).collect();
            let help = if known.is_empty() {
                format!("declare it with a [function.{}] table", f.get_ref())
            } else {
                format!(
                    "declare [function.{}] or use one of: {}",
                    f.get_ref(),
                    known.join(", ")
                )
            };
            d.error(
                f.span(),
                format!("function `{}` is not declared", f.get_ref()),
                help,
            );
            None
        }
        Some(f) => Some(f.get_ref().clone()),
    };
    let methods = t.methods.as_ref().map(|list| {
        if list.get_ref().is_empty() {
            d.error(
                list.span(),
                "`methods` is empty, so the route could never match",
                "list at least one method, or remove `methods` to allow any",
            );
        }
        let mut methods: Vec<String> = Vec::new();
        for m in list.get_ref() {
            let upper = m.get_ref().to_ascii_uppercase();
            if !METHODS.contains(&upper.as_str()) {
                d.error(
                    m.span(),
                    format!("unknown HTTP method `{}`", m.get_ref()),
                    format!("use one of {}", METHODS.join(", ")),
                );
            } else if !methods.contains(&upper) {
                methods.push(upper);
            }
        }
        methods
    });
    let max_body_bytes = limit(d, &t.max_body_bytes, limits::MAX_BODY_BYTES);
    let auth = crate::auth::resolve_route_auth(d, raw.span(), &t.auth, &t.scopes, has_jwt);
    let ((route, route_span), function, auth) = (route?, function?, auth?);
    let trigger = HttpTrigger {
        route,
        methods,
        function,
        max_body_bytes,
        auth,
    };
    Some((trigger, Spanned::new(route_span, ())))
}

fn resolve_queues(
    d: &mut Diagnostics,
    raw: &BTreeMap<Spanned<String>, Spanned<RawQueue>>,
) -> BTreeMap<String, Queue> {
    let mut queues = BTreeMap::new();
    for (name, spanned) in raw {
        let q = spanned.get_ref();
        if !valid_name(name.get_ref(), 64, true) {
            d.error(
                name.span(),
                format!("queue name `{}` is not valid", name.get_ref()),
                "use 1 to 64 lowercase letters, digits, `-` and `_`, starting with a letter",
            );
        }
        let max_receive_count = q
            .max_receive_count
            .as_ref()
            .map(|_| limit(d, &q.max_receive_count, limits::MAX_RECEIVE_COUNT) as u32);
        match (&q.dead_letter_queue, &q.max_receive_count) {
            (Some(dlq), _) if dlq.get_ref() == name.get_ref() => d.error(
                dlq.span(),
                format!("queue `{}` cannot be its own dead-letter queue", name.get_ref()),
                "declare a separate queue, e.g. [queue.NAME-dlq], and name it here",
            ),
            (Some(dlq), _) if !raw.keys().any(|k| k.get_ref() == dlq.get_ref()) => d.error(
                dlq.span(),
                format!("dead-letter queue `{}` is not declared", dlq.get_ref()),
                format!("declare it with a [queue.{}] table", dlq.get_ref()),
            ),
            (Some(dlq), None) => d.error(
                dlq.span(),
                "`dead_letter_queue` without `max_receive_count` would never be used",
                "add `max_receive_count = N`: after N receives a message moves to the dead-letter queue",
            ),
            (None, Some(count)) => d.error(
                count.span(),
                "`max_receive_count` needs a `dead_letter_queue` to move messages to",
                "add `dead_letter_queue = \"NAME\"` naming a declared queue",
            ),
            _ => {}
        }
        queues.insert(
            name.get_ref().clone(),
            Queue {
                name: name.get_ref().clone(),
                visibility_timeout_ms: limit(
                    d,
                    &q.visibility_timeout_ms,
                    limits::VISIBILITY_TIMEOUT_MS,
                ),
                retention_ms: limit(d, &q.retention_ms, limits::RETENTION_MS),
                delay_ms: limit(d, &q.delay_ms, limits::DELAY_MS),
                max_message_bytes: limit(d, &q.max_message_bytes, limits::MAX_MESSAGE_BYTES),
                dedup_window_ms: limit(d, &q.dedup_window_ms, limits::DEDUP_WINDOW_MS),
                max_receive_count,
                dead_letter_queue: q.dead_letter_queue.as_ref().map(|s| s.get_ref().clone()),
            },
        );
    }
    queues
}

/// What grants may name.
struct Known<'a> {
    queues: &'a BTreeMap<String, Queue>,
    functions: &'a [String],
    tables: &'a BTreeMap<String, crate::Table>,
    buckets: &'a BTreeMap<String, crate::Bucket>,
}

fn resolve_grants(d: &mut Diagnostics, known: &Known<'_>, allow: &[Spanned<String>]) -> Vec<Grant> {
    let (queues, functions, buckets) = (known.queues, known.functions, known.buckets);
    let mut grants = Vec::new();
    for entry in allow {
        let text = entry.get_ref();
        if let Some(rest) = text.strip_prefix("bucket:") {
            grants.extend(crate::bucket::resolve_bucket_grant(d, buckets, entry, rest));
            continue;
        }
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            ["queue", name, "send"] if queues.contains_key(*name) => {
                grants.push(Grant::QueueSend((*name).to_owned()))
            }
            ["queue", name, "send"] => d.error(
                entry.span(),
                format!("grant `{text}` names queue `{name}`, which is not declared"),
                format!("declare it with a [queue.{name}] table, or fix the name"),
            ),
            ["queue", _, action] => d.error(
                entry.span(),
                format!("queues have no `{action}` permission"),
                "functions may be allowed `queue:NAME:send`",
            ),
            ["secret", name, "read"] => match crate::secret::check_secret_name(name) {
                Ok(()) => grants.push(Grant::SecretRead((*name).to_owned())),
                Err(e) => d.error(
                    entry.span(),
                    format!("grant `{text}` names an invalid secret: {e}"),
                    "fix the name; it must be one `nimbus secret set` accepts",
                ),
            },
            ["secret", _, action] => d.error(
                entry.span(),
                format!("secrets have no `{action}` permission"),
                "functions may be allowed `secret:NAME:read`",
            ),
            ["function", name, "invoke"] if functions.iter().any(|f| f == name) => {
                grants.push(Grant::FunctionInvoke((*name).to_owned()))
            }
            ["function", name, "invoke"] => d.error(
                entry.span(),
                format!("grant `{text}` names function `{name}`, which is not declared"),
                format!("declare it with a [function.{name}] table, or fix the name"),
            ),
            ["function", _, action] => d.error(
                entry.span(),
                format!("functions have no `{action}` permission"),
                "functions may be allowed `function:NAME:invoke`",
            ),
            ["table", name, action @ ("read" | "write")] if known.tables.contains_key(*name) => {
                grants.push(if *action == "read" {
                    Grant::TableRead((*name).to_owned())
                } else {
                    Grant::TableWrite((*name).to_owned())
                })
            }
            ["table", name, "read" | "write"] => d.error(
                entry.span(),
                format!("grant `{text}` names table `{name}`, which is not declared"),
                format!("declare it with a [table.{name}] table, or fix the name"),
            ),
            ["table", _, action] => d.error(
                entry.span(),
                format!("tables have no `{action}` permission"),
                "functions may be allowed `table:NAME:read` and `table:NAME:write`",
            ),
            _ => d.error(
                entry.span(),
                format!("`{text}` is not a grant Nimbus knows"),
                "grants look like `queue:NAME:send`, `function:NAME:invoke`, `secret:NAME:read`, `table:NAME:read|write` or `bucket:NAME[/PREFIX]:read|write`",
            ),
        }
    }
    grants.sort();
    grants.dedup();
    grants
}

fn resolve_queue_trigger(
    d: &mut Diagnostics,
    functions: &BTreeMap<String, Function>,
    queues: &BTreeMap<String, Queue>,
    raw: &Spanned<RawQueueTrigger>,
) -> Option<QueueTrigger> {
    let t = raw.get_ref();
    let delivery = crate::delivery::resolve(d, t.delivery());
    let queue = match &t.queue {
        None => {
            d.error(
                raw.span(),
                "[[trigger.queue]] has no `queue`",
                "add `queue = \"NAME\"` naming a [queue.NAME] table",
            );
            None
        }
        Some(q) if !queues.contains_key(q.get_ref()) => {
            d.error(
                q.span(),
                format!("queue `{}` is not declared", q.get_ref()),
                format!("declare it with a [queue.{}] table", q.get_ref()),
            );
            None
        }
        Some(q) => Some(q),
    };
    let function = trigger_function(d, functions, raw.span(), "queue", &t.function);
    let (queue, function) = (queue?, function?);
    let q = &queues[queue.get_ref()];
    let f = &functions[&function];
    if q.visibility_timeout_ms < f.timeout_ms {
        d.error(
            queue.span(),
            format!(
                "queue `{}` has visibility_timeout_ms = {}, shorter than function `{}`'s timeout_ms = {}: a message could be delivered again while it is still being handled",
                q.name, q.visibility_timeout_ms, f.name, f.timeout_ms
            ),
            format!("raise the queue's visibility_timeout_ms to at least {}, or lower the function's timeout_ms", f.timeout_ms),
        );
    }
    Some(QueueTrigger {
        queue: q.name.clone(),
        function: f.name.clone(),
        delivery,
    })
}

/// The `function` of a `[[trigger.KIND]]` table, which must be declared.
pub(crate) fn trigger_function(
    d: &mut Diagnostics,
    functions: &BTreeMap<String, Function>,
    table_span: std::ops::Range<usize>,
    kind: &str,
    function: &Option<Spanned<String>>,
) -> Option<String> {
    match function {
        None => {
            d.error(
                table_span,
                format!("[[trigger.{kind}]] has no `function`"),
                "add `function = \"NAME\"` naming a [function.NAME] table",
            );
            None
        }
        Some(f) if !functions.contains_key(f.get_ref()) => {
            d.error(
                f.span(),
                format!("function `{}` is not declared", f.get_ref()),
                format!("declare it with a [function.{}] table", f.get_ref()),
            );
            None
        }
        Some(f) => Some(f.get_ref().clone()),
    }
}

/// Two routes conflict when they match the same paths and share a method:
/// neither would ever win, so the manifest is ambiguous.
fn check_route_conflicts(d: &mut Diagnostics, triggers: &[(HttpTrigger, Spanned<()>)]) {
    for (j, (later, later_span)) in triggers.iter().enumerate() {
        for (earlier, earlier_span) in &triggers[..j] {
            if !earlier.route.same_shape(&later.route) {
                continue;
            }
            let overlap = match (&earlier.methods, &later.methods) {
                (None, _) | (_, None) => true,
                (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
            };
            if overlap {
                let line = d.location(earlier_span.span().start).line;
                d.error(
                    later_span.span(),
                    format!(
                        "route `{}` conflicts with route `{}` on line {line}",
                        later.route, earlier.route
                    ),
                    "change one of the routes, or give them `methods` lists that do not overlap",
                );
            }
        }
    }
}

pub(crate) fn limit(d: &mut Diagnostics, value: &Option<Spanned<i64>>, limit: Limit) -> u64 {
    let Some(value) = value else {
        return limit.default;
    };
    let v = *value.get_ref();
    match u64::try_from(v) {
        Ok(v) if limit.range().contains(&v) => v,
        _ => {
            d.error(
                value.span(),
                format!("`{}` = {v} is out of range", limit.key),
                format!(
                    "use a value from {} to {} (default {})",
                    limit.range.0, limit.range.1, limit.default
                ),
            );
            limit.default
        }
    }
}

pub(crate) fn valid_name(name: &str, max: usize, letter_first: bool) -> bool {
    let mut chars = name.chars();
    let first_ok = match chars.next() {
        Some(c) if letter_first => c.is_ascii_lowercase(),
        Some(c) => c.is_ascii_lowercase() || c.is_ascii_digit(),
        None => false,
    };
    let extra = if letter_first { "-_" } else { "-" };
    first_ok
        && name.len() <= max
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
}

pub(crate) fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
