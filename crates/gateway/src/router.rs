//! Chooses the HTTP trigger for a request: the most specific route whose
//! pattern matches the path and whose methods allow the request's method.

use http::Method;
use nimbus_manifest::{HttpTrigger, RouteMatch};

/// The routing table, most specific route first.
#[derive(Debug)]
pub struct Router {
    routes: Vec<HttpTrigger>,
}

/// The outcome of routing one request.
#[derive(Debug)]
pub enum Routed<'a> {
    Found {
        trigger: &'a HttpTrigger,
        matched: RouteMatch<'a>,
    },
    /// Some route matches the path, none allows the method; `allow` lists
    /// the methods that would have matched.
    MethodNotAllowed {
        allow: Vec<String>,
    },
    NotFound,
}

impl Router {
    pub fn new(triggers: &[HttpTrigger]) -> Self {
        let mut routes = triggers.to_vec();
        // A stable sort keeps manifest order between routes of equal rank,
        // which the manifest guarantees never overlap on a method.
        routes.sort_by(|a, b| a.route.specificity_cmp(&b.route));
        Router { routes }
    }

    pub fn route<'a>(&'a self, method: &Method, path: &'a str) -> Routed<'a> {
        let mut allow: Vec<String> = Vec::new();
        for trigger in &self.routes {
            let Some(matched) = trigger.route.matches(path) else {
                continue;
            };
            match &trigger.methods {
                None => return Routed::Found { trigger, matched },
                Some(methods) if allows(methods, method) => {
                    return Routed::Found { trigger, matched };
                }
                Some(methods) => {
                    allow.extend(methods.iter().cloned());
                    if methods.iter().any(|m| m == "GET") {
                        allow.push("HEAD".to_owned());
                    }
                }
            }
        }
        if allow.is_empty() {
            Routed::NotFound
        } else {
            allow.sort();
            allow.dedup();
            Routed::MethodNotAllowed { allow }
        }
    }
}

/// A route that allows GET also answers HEAD (hyper drops the body).
fn allows(methods: &[String], method: &Method) -> bool {
    methods
        .iter()
        .any(|m| m == method.as_str() || (method == Method::HEAD && m == "GET"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_manifest::RoutePattern;

    fn trigger(route: &str, methods: Option<&[&str]>, function: &str) -> HttpTrigger {
        HttpTrigger {
            route: RoutePattern::parse(route).unwrap(),
            methods: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
            function: function.to_owned(),
            max_body_bytes: 1024,
            auth: nimbus_manifest::RouteAuth::Public,
        }
    }

    fn target(router: &Router, method: Method, path: &str) -> String {
        match router.route(&method, path) {
            Routed::Found { trigger, .. } => trigger.function.clone(),
            Routed::MethodNotAllowed { allow } => format!("405 {}", allow.join(",")),
            Routed::NotFound => "404".to_owned(),
        }
    }

    #[test]
    fn specific_routes_win_whatever_the_manifest_order() {
        let router = Router::new(&[
            trigger("/...", None, "fallback"),
            trigger("/users/{id}", None, "user"),
            trigger("/users/me", None, "me"),
            trigger("/users/...", None, "users-any"),
        ]);
        assert_eq!(target(&router, Method::GET, "/users/me"), "me");
        assert_eq!(target(&router, Method::GET, "/users/42"), "user");
        assert_eq!(target(&router, Method::GET, "/users/42/posts"), "users-any");
        assert_eq!(target(&router, Method::GET, "/elsewhere"), "fallback");
    }

    #[test]
    fn a_method_mismatch_falls_through_to_a_less_specific_route() {
        let router = Router::new(&[
            trigger("/users/me", Some(&["GET"]), "me"),
            trigger("/users/{id}", Some(&["POST", "DELETE"]), "user"),
        ]);
        assert_eq!(target(&router, Method::POST, "/users/me"), "user");
        assert_eq!(
            target(&router, Method::PUT, "/users/me"),
            "405 DELETE,GET,HEAD,POST"
        );
        assert_eq!(target(&router, Method::GET, "/nothing"), "404");
        assert_eq!(target(&router, Method::HEAD, "/users/me"), "me");
    }
}
