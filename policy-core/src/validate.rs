//! Syntax checks the API server applies to names, label keys and values,
//! and port names (k8s.io/apimachinery `pkg/util/validation`).
//!
//! Each function returns `Err` with a message in the API server's words.

fn is_alphanumeric(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
}

fn is_lower_alphanumeric(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit()
}

/// RFC 1123 label: at most 63 lower-case alphanumerics or '-', starting and
/// ending with an alphanumeric.
pub fn dns1123_label(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let well_formed = !bytes.is_empty()
        && bytes.len() <= 63
        && is_lower_alphanumeric(bytes[0])
        && is_lower_alphanumeric(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| is_lower_alphanumeric(b) || b == b'-');
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid RFC 1123 label: it must be at most 63 lower-case letters, digits or '-', and start and end with a letter or digit"
        ))
    }
}

/// RFC 1123 subdomain: at most 253 characters, dot-separated RFC 1123 labels.
pub fn dns1123_subdomain(value: &str) -> Result<(), String> {
    let well_formed = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|part| {
            let bytes = part.as_bytes();
            !bytes.is_empty()
                && is_lower_alphanumeric(bytes[0])
                && is_lower_alphanumeric(bytes[bytes.len() - 1])
                && bytes.iter().all(|&b| is_lower_alphanumeric(b) || b == b'-')
        });
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid RFC 1123 subdomain: it must be at most 253 characters of lower-case letters, digits, '-' and '.', and start and end with a letter or digit"
        ))
    }
}

/// The name part of a qualified name or a non-empty label value: at most 63
/// alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric.
fn qualified_name_part(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && is_alphanumeric(bytes[0])
        && is_alphanumeric(bytes[bytes.len() - 1])
        && bytes
            .iter()
            .all(|&b| is_alphanumeric(b) || matches!(b, b'-' | b'_' | b'.'))
}

/// A label key: `[prefix/]name`, the prefix an RFC 1123 subdomain.
pub fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && dns1123_subdomain(prefix).is_err()
    {
        return Err(format!(
            "label key {key:?} is invalid: the prefix {prefix:?} must be an RFC 1123 subdomain (lower-case letters, digits, '-' and '.')"
        ));
    }
    if !qualified_name_part(name) {
        return Err(format!(
            "label key {key:?} is invalid: the name part must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A label value: empty, or at most 63 alphanumerics, '-', '_' or '.',
/// starting and ending with an alphanumeric.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || qualified_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "label value {value:?} is invalid: it must be empty or at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

/// A named port (IANA_SVC_NAME): at most 15 lower-case letters, digits or
/// '-', with at least one letter, no leading, trailing or double '-'.
pub fn port_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let problem = if bytes.is_empty() {
        Some("it is empty")
    } else if bytes.len() > 15 {
        Some("it is longer than 15 characters")
    } else if !bytes.iter().all(|&b| is_lower_alphanumeric(b) || b == b'-') {
        Some("it may contain only lower-case letters, digits and '-'")
    } else if !bytes.iter().any(|b| b.is_ascii_lowercase()) {
        Some("it must contain at least one letter")
    } else if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
        Some("it may not begin or end with '-'")
    } else if name.contains("--") {
        Some("it may not contain '--'")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(format!(
            "{name:?} is not a valid port name (IANA_SVC_NAME): {why}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_follow_qualified_name_rules() {
        for good in [
            "app",
            "app.kubernetes.io/name",
            "kubernetes.io/metadata.name",
            "A_b-c.d",
        ] {
            assert!(label_key(good).is_ok(), "{good}");
        }
        for bad in [
            "app@b",
            "",
            "-app",
            "Example.com/x",
            "a/b/c",
            &"x".repeat(64),
        ] {
            assert!(label_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_values_may_be_empty() {
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_beta-3").is_ok());
        assert!(label_value("a b").is_err());
        assert!(label_value("-x").is_err());
    }

    #[test]
    fn port_names_are_iana_service_names() {
        for good in ["http", "serve-80-tcp", "dns-tcp-local", "a1"] {
            assert!(port_name(good).is_ok(), "{good}");
        }
        for bad in [
            "80",
            "HTTP",
            "-http",
            "http-",
            "ht--tp",
            "abcdefghijklmnop",
            "",
        ] {
            assert!(port_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subdomains_and_labels() {
        assert!(dns1123_subdomain("allow.web-1").is_ok());
        assert!(dns1123_subdomain("Allow").is_err());
        assert!(dns1123_label("a.b").is_err());
        assert!(dns1123_label("kube-system").is_ok());
    }
}
