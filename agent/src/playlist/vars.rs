//! Variable substitution (`EXT-X-DEFINE`, rfc8216bis §4.2 and §4.4.2.3).
//!
//! A variable reference is `{$name}` with `name` made of `[A-Za-z0-9_-]`. References are
//! substituted in URI lines and quoted-string attribute values, using only definitions that
//! precede the reference; a reference to an undefined name is an error (the client MUST fail
//! to parse the playlist). Text that looks almost like a reference (`{$}`, `{$a b}`, `{$x`) is
//! left as it is, as hls.js does.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// A set of playlist variables: name → value.
///
/// Used for the variables a media playlist may `IMPORT` (the `defines` of its multivariant
/// playlist, see [`crate::playlist::MultivariantInfo::defines`]) and for the variables a
/// playlist defines itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables {
    map: BTreeMap<String, String>,
}

impl Variables {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Defines (or redefines) `name`; returns the previous value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.map.insert(name.into(), value.into())
    }

    /// The value of `name`, if defined.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// Whether `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no variable is defined.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Variables {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Variables {
            map: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// Whether `name` is a valid variable name (`[A-Za-z0-9_-]+`).
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Byte position of the first `{$` in `s` (a plain byte scan: this runs for every URI).
fn find_reference(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(i) = b.get(from..)?.iter().position(|&c| c == b'{') {
        let at = from + i;
        if b.get(at + 1) == Some(&b'$') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Replaces every `{$name}` in `s`. Borrows when there is nothing to replace.
///
/// Returns `Err(name)` for the first reference to an undefined variable.
pub(crate) fn substitute<'a>(s: &'a str, vars: &Variables) -> Result<Cow<'a, str>, &'a str> {
    let Some(first) = find_reference(s) else {
        return Ok(Cow::Borrowed(s));
    };
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..first]);
    let mut rest = &s[first..];
    while let Some(i) = find_reference(rest) {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let name_len = after
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        if name_len > 0 && after.as_bytes().get(name_len) == Some(&b'}') {
            let value = vars.get(name).ok_or(name)?;
            out.push_str(value);
            rest = &after[name_len + 1..];
        } else {
            out.push_str("{$");
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_defined_names() {
        let vars: Variables = [("host", "https://cdn.example"), ("id-2_x", "42")]
            .into_iter()
            .collect();
        assert!(matches!(
            substitute("plain.ts", &vars),
            Ok(Cow::Borrowed("plain.ts"))
        ));
        assert_eq!(
            substitute("{$host}/a/{$id-2_x}.ts", &vars).unwrap(),
            "https://cdn.example/a/42.ts"
        );
        assert_eq!(substitute("{$id-2_x}{$id-2_x}", &vars).unwrap(), "4242");
    }

    #[test]
    fn near_references_are_literal() {
        let vars = Variables::new();
        for s in ["{$}", "{$a b}", "{$x", "a{$", "{ $x}", "{$é}"] {
            assert_eq!(substitute(s, &vars).unwrap(), s);
        }
    }

    #[test]
    fn undefined_reference_is_an_error() {
        let vars: Variables = [("a", "1")].into_iter().collect();
        assert_eq!(substitute("x/{$a}/{$b}.ts", &vars), Err("b"));
    }

    #[test]
    fn names() {
        assert!(is_valid_name("a-B_9"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a.b"));
        let mut v = Variables::new();
        assert!(v.is_empty());
        assert_eq!(v.insert("a", "1"), None);
        assert_eq!(v.insert("a", "2").as_deref(), Some("1"));
        assert!(v.contains("a"));
        assert_eq!(v.len(), 1);
        assert_eq!(v.iter().collect::<Vec<_>>(), [("a", "2")]);
    }
}
