//! The rule that lets two versions of nimbus share one store during a
//! rolling upgrade. A store keeps two numbers: the newest schema version
//! applied to it, and the oldest version a binary must know to use it. A
//! migration that only adds (a table, a nullable column) leaves the second
//! where it was, so binaries one version behind keep running on the newer
//! schema; one that changes what older binaries read raises it, and those
//! binaries refuse the store instead of misreading it.

use crate::{StoreError, StoreResult};

/// Where a store's schema stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaState {
    /// The newest migration applied (0 for an empty store).
    pub applied: u32,
    /// The oldest schema version a binary must know to use the store.
    pub requires: u32,
}

impl SchemaState {
    /// Fails unless a binary knowing schema version `known` may use the
    /// store as it stands.
    pub fn check(self, known: u32) -> StoreResult<()> {
        if self.requires > known {
            return Err(StoreError::SchemaTooNew {
                found: self.applied,
                requires: self.requires,
                known,
            });
        }
        Ok(())
    }

    /// Where the store stands once a binary knowing schema version
    /// `requires.len()` has applied its missing migrations; `requires[v - 1]`
    /// is what version `v` asks of binaries. A store already past this
    /// binary keeps its numbers.
    pub fn migrated(self, requires: &[u32]) -> SchemaState {
        let known = requires.len() as u32;
        if self.applied >= known {
            return self;
        }
        SchemaState {
            applied: known,
            requires: self.requires.max(requires[known as usize - 1]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRES: [u32; 3] = [1, 2, 2];

    #[test]
    fn an_additive_migration_keeps_the_older_binary_working() {
        let at_two = SchemaState {
            applied: 2,
            requires: 2,
        };
        let at_three = at_two.migrated(&REQUIRES);
        assert_eq!(
            at_three,
            SchemaState {
                applied: 3,
                requires: 2
            }
        );
        assert!(at_three.check(2).is_ok(), "a version-2 binary still runs");
        assert!(at_three.check(1).is_err());
    }

    #[test]
    fn a_store_past_this_binary_is_used_if_it_allows_and_never_rolled_back() {
        let ahead = SchemaState {
            applied: 4,
            requires: 3,
        };
        assert!(ahead.check(3).is_ok());
        assert_eq!(ahead.migrated(&REQUIRES), ahead, "nothing is rolled back");
        let incompatible = SchemaState {
            applied: 4,
            requires: 4,
        };
        assert_eq!(
            incompatible.check(3),
            Err(StoreError::SchemaTooNew {
                found: 4,
                requires: 4,
                known: 3
            })
        );
    }

    #[test]
    fn an_empty_store_takes_every_migration() {
        let empty = SchemaState {
            applied: 0,
            requires: 0,
        };
        assert_eq!(
            empty.migrated(&REQUIRES),
            SchemaState {
                applied: 3,
                requires: 2
            }
        );
    }
}
