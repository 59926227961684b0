//! HTTP routes as triggers: checked and listed like every trigger, served
//! by the public gateway rather than by workers of their own.

use crate::trigger::{FunctionKind, Trigger, TriggerContext};
use nimbus_manifest::{HttpTrigger, RouteAuth};
use tokio::task::JoinSet;

/// One `[[trigger.http]]` route.
pub struct HttpRoute(pub HttpTrigger);

impl Trigger for HttpRoute {
    fn subject(&self) -> String {
        format!("route {}", self.0.route)
    }

    fn describe(&self) -> Option<String> {
        let t = &self.0;
        let methods = t.methods.as_ref().map_or("*".to_owned(), |m| m.join(","));
        let auth = match &t.auth {
            RouteAuth::Public => "public".to_owned(),
            RouteAuth::ApiKey => "api_key".to_owned(),
            RouteAuth::Jwt { scopes } if scopes.is_empty() => "jwt".to_owned(),
            RouteAuth::Jwt { scopes } => format!("jwt, scopes {}", scopes.join(" ")),
        };
        Some(format!(
            "route {methods} {} -> {} ({auth})",
            t.route, t.function
        ))
    }

    fn function(&self) -> &str {
        &self.0.function
    }

    fn kind(&self) -> FunctionKind {
        FunctionKind::Http
    }

    /// The gateway routes requests to the function; nothing runs here.
    fn start(&self, _ctx: &TriggerContext, _tasks: &mut JoinSet<()>) {}
}
