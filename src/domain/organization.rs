//! Organizations added with modern app-only authentication, and the names that identify tenants.

/// A tenant as Microsoft names it: a verified domain (`abc.onmicrosoft.com`) or a GUID. Parsed once
/// so that it can be put into an authority URL path safely.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        if let Ok(g) = uuid::Uuid::parse_str(&s) {
            return Ok(TenantName(g.hyphenated().to_string()));
        }
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if s.len() <= 253 && s.contains('.') && s.split('.').all(valid_label) {
            Ok(TenantName(s))
        } else {
            Err(format!(
                "'{}' is not a tenant name: give a domain such as abc.onmicrosoft.com or the tenant's GUID",
                raw.chars().take(100).collect::<String>()
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_are_domains_or_guids() {
        assert_eq!(TenantName::parse("ABC.onmicrosoft.com").unwrap().as_str(), "abc.onmicrosoft.com");
        assert_eq!(
            TenantName::parse("{6F1A2B3C-0000-4000-8000-000000000001}").unwrap().as_str(),
            "6f1a2b3c-0000-4000-8000-000000000001"
        );
        for bad in ["", "abc", "a/b.com", "../x.com", "a..b", "-a.com", "a b.com"] {
            assert!(TenantName::parse(bad).is_err(), "{bad}");
        }
    }
}
