//! Console sessions: random ids, each with its own CSRF token and an
//! expiry, held in this process (a session is this node's; signing in on
//! another node starts another). Bounded, oldest dropped first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at once; signing in past it ends the oldest.
const MAX_SESSIONS: usize = 256;

struct Session {
    csrf: String,
    started: Instant,
}

/// The console's sessions.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    /// Starts a session; returns its id.
    pub fn start(&self) -> Result<String, getrandom::Error> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.started.elapsed() < SESSION_TTL);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.started)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                csrf,
                started: Instant::now(),
            },
        );
        Ok(id)
    }

    /// The CSRF token of a live session.
    pub fn csrf(&self, id: &str) -> Option<String> {
        let sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(id)
            .filter(|s| s.started.elapsed() < SESSION_TTL)
            .map(|s| s.csrf.clone())
    }

    /// Whether `id` is a live session and `given` its CSRF token.
    pub fn check_csrf(&self, id: &str, given: &str) -> bool {
        self.csrf(id)
            .is_some_and(|csrf| crate::auth::constant_time_eq(csrf.as_bytes(), given.as_bytes()))
    }

    pub fn end(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}
