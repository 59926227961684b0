//! Secret names: the one rule that grants (`secret:NAME:read`), the admin
//! API and the vault all apply, so a name one accepts the others accept.

/// Longest secret name.
pub const MAX_SECRET_NAME_LEN: usize = 128;

/// What is wrong with a secret name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretNameError {
    #[error("a secret name cannot be empty")]
    Empty,
    #[error("a secret name is at most {MAX_SECRET_NAME_LEN} characters; this one has {0}")]
    TooLong(usize),
    #[error("a secret name starts with a letter and holds only letters, digits, `_`, `-` and `.`")]
    Pattern,
}

/// Checks `name` against `[A-Za-z][A-Za-z0-9_.-]*`, at most
/// [`MAX_SECRET_NAME_LEN`] long. No `:` (grants split on it) and no leading
/// `.` (names are URL path segments).
pub fn check_secret_name(name: &str) -> Result<(), SecretNameError> {
    if name.is_empty() {
        return Err(SecretNameError::Empty);
    }
    if name.len() > MAX_SECRET_NAME_LEN {
        return Err(SecretNameError::TooLong(name.len()));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return Err(SecretNameError::Pattern);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pattern_and_the_length_limit() {
        for good in ["a", "DB_PASSWORD", "stripe.api-key", "k8s"] {
            assert_eq!(check_secret_name(good), Ok(()), "{good}");
        }
        assert_eq!(check_secret_name(""), Err(SecretNameError::Empty));
        for bad in ["1abc", ".hidden", "a:b", "a b", "a/b", "é", "_x"] {
            assert_eq!(
                check_secret_name(bad),
                Err(SecretNameError::Pattern),
                "{bad}"
            );
        }
        let long = "a".repeat(MAX_SECRET_NAME_LEN + 1);
        assert_eq!(
            check_secret_name(&long),
            Err(SecretNameError::TooLong(MAX_SECRET_NAME_LEN + 1))
        );
        assert_eq!(check_secret_name(&long[1..]), Ok(()));
    }
}
