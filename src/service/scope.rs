//! Scopes (RFC 6749 §3.3): a set of scope tokens, parsed once at the edge.

use std::collections::BTreeSet;
use std::fmt;

/// The account API's scope.
pub const ACCOUNT: &str = "account";
/// The admin API's scope; only admin users may hold it.
pub const ADMIN: &str = "admin";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a space-separated list; every token must be `%x21 / %x23-5B / %x5D-7E`.
    pub fn parse(value: &str) -> Result<ScopeSet, String> {
        let mut set = BTreeSet::new();
        for token in value.split(' ').filter(|t| !t.is_empty()) {
            if token.len() > 128
                || !token
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
            {
                return Err(format!(
                    "{} is not a valid scope (up to 128 printable ASCII characters without spaces, '\"' or '\\'), e.g. read or reports:write",
                    super::shown(token)
                ));
            }
            set.insert(token.to_owned());
        }
        Ok(ScopeSet(set))
    }

    /// Parses a JSON list of scopes: each element exactly one scope token (an empty element, or
    /// one with a space in it, is refused rather than silently dropped or split).
    pub fn from_list(items: &[String]) -> Result<ScopeSet, String> {
        let mut set = BTreeSet::new();
        for item in items {
            let parsed = ScopeSet::parse(item)?;
            if parsed.0.len() != 1 || item.contains(' ') {
                return Err(format!(
                    "{} is not one scope (one scope per value), e.g. read",
                    super::shown(item)
                ));
            }
            set.extend(parsed.0);
        }
        Ok(ScopeSet(set))
    }

    /// Parses a list that tokend itself stored (already valid).
    pub fn from_stored(value: &str) -> ScopeSet {
        ScopeSet(
            value
                .split(' ')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    pub fn from_names<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> ScopeSet {
        ScopeSet(items.into_iter().map(Into::into).collect())
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn without(&self, scope: &str) -> ScopeSet {
        ScopeSet(
            self.0
                .iter()
                .filter(|s| s.as_str() != scope)
                .cloned()
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().cloned().collect()
    }

    /// The subset of `self` outside `allowed`, for error messages.
    pub fn outside(&self, allowed: &ScopeSet) -> Vec<String> {
        self.0.difference(&allowed.0).cloned().collect()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

/// The scopes a request ends up with: all of `allowed` when none were asked for, else exactly the
/// ones asked for, which must all be allowed.
pub fn grant(requested: Option<&ScopeSet>, allowed: &ScopeSet) -> Result<ScopeSet, String> {
    match requested {
        None => Ok(allowed.clone()),
        Some(requested) => {
            let outside = requested.outside(allowed);
            if outside.is_empty() {
                Ok(requested.clone())
            } else {
                Err(format!("scope not allowed here: {}", outside.join(" ")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_scope_tokens_and_refuses_others() {
        assert_eq!(ScopeSet::parse("b a  a").expect("valid").to_string(), "a b");
        for bad in ["a\"b", "a\\b", "é", "a\tb"] {
            assert!(ScopeSet::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn from_list_takes_exactly_one_scope_per_element() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ScopeSet::from_list(&list(&["b", "a", "a"]))
                .expect("valid")
                .to_string(),
            "a b"
        );
        for bad in [&[""][..], &["a b"], &[" a"], &["a\"b"]] {
            assert!(ScopeSet::from_list(&list(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn grant_narrows_and_never_widens() {
        let allowed = ScopeSet::from_stored("account admin");
        assert_eq!(grant(None, &allowed), Ok(allowed.clone()));
        let narrow = ScopeSet::from_stored("account");
        assert_eq!(grant(Some(&narrow), &allowed), Ok(narrow));
        assert!(grant(Some(&ScopeSet::from_stored("account write")), &allowed).is_err());
    }
}
