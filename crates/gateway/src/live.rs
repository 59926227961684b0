//! What is served now, swapped whole when a new deployment goes live:
//! each request takes the value current when it arrives and keeps it to the
//! end, so requests in flight finish on the version they started on.

use std::sync::{Arc, RwLock};

/// A value replaced whole while readers keep the one they took.
pub struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    pub fn new(value: Arc<T>) -> Self {
        Live(RwLock::new(value))
    }

    /// The current value.
    pub fn get(&self) -> Arc<T> {
        // A poisoned lock still holds a whole value: a swap only assigns.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `value` current; returns the one it replaces.
    pub fn replace(&self, value: Arc<T>) -> Arc<T> {
        let mut current = self.0.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *current, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_what_it_took_across_a_swap() {
        let live = Live::new(Arc::new(1));
        let taken = live.get();
        let old = live.replace(Arc::new(2));
        assert_eq!((*taken, *old, *live.get()), (1, 1, 2));
    }
}
