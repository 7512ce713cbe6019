//! What a token-endpoint answer means for a pending sign-in.

use super::parse::{AuthorityText, TokenParse, TokenSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    Tokens(TokenSet),
    Pending,
    SlowDown,
    Declined(AuthorityText),
    Expired(AuthorityText),
    BadCode(AuthorityText),
    /// AADSTS7000218: the application does not allow public client flows.
    PublicClientDisabled(AuthorityText),
    /// AADSTS700016: no such application in the tenant.
    ApplicationNotFound(AuthorityText),
    /// AADSTS90002: no such tenant (or the tenant lives in another cloud).
    TenantNotFound(AuthorityText),
    /// AADSTS50196: the authority saw a request loop; back off rather than give up.
    LoopDetected(AuthorityText),
    /// AADSTS53000–53004 and friends: a conditional access policy blocks the sign-in.
    ConditionalAccess(AuthorityText),
    /// Network error, timeout, 5xx, `temporarily_unavailable`: try again later.
    Transient(String),
    Failed(AuthorityText),
}

const CONDITIONAL_ACCESS_CODES: [i64; 6] = [53000, 53001, 53002, 53003, 53004, 50158];

/// Classifies a token-endpoint answer (HTTP status and parsed body).
pub fn classify(status: u16, parsed: TokenParse) -> PollOutcome {
    match parsed {
        TokenParse::Tokens(t) => PollOutcome::Tokens(t),
        TokenParse::Malformed(why) if status >= 500 || status == 429 => PollOutcome::Transient(why),
        TokenParse::Malformed(why) => PollOutcome::Failed(AuthorityText {
            error: "invalid_response".into(),
            description: why,
            codes: vec![],
        }),
        TokenParse::Error(text) => classify_error(status, text),
    }
}

pub fn classify_error(status: u16, text: AuthorityText) -> PollOutcome {
    if text.has_code(7000218) {
        return PollOutcome::PublicClientDisabled(text);
    }
    if text.has_code(700016) {
        return PollOutcome::ApplicationNotFound(text);
    }
    if text.has_code(90002) {
        return PollOutcome::TenantNotFound(text);
    }
    if text.has_code(50196) {
        return PollOutcome::LoopDetected(text);
    }
    if CONDITIONAL_ACCESS_CODES.iter().any(|c| text.has_code(*c)) {
        return PollOutcome::ConditionalAccess(text);
    }
    match text.error.as_str() {
        "authorization_pending" => PollOutcome::Pending,
        "slow_down" => PollOutcome::SlowDown,
        "access_denied" | "authorization_declined" => PollOutcome::Declined(text),
        "expired_token" | "code_expired" => PollOutcome::Expired(text),
        "bad_verification_code" => PollOutcome::BadCode(text),
        "temporarily_unavailable" | "server_error" => PollOutcome::Transient(text.summary()),
        _ if status >= 500 || status == 429 => PollOutcome::Transient(text.summary()),
        _ => PollOutcome::Failed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(error: &str, description: &str, codes: &[i64]) -> TokenParse {
        TokenParse::Error(AuthorityText { error: error.into(), description: description.into(), codes: codes.to_vec() })
    }

    #[test]
    fn classifies_microsoft_errors() {
        assert_eq!(classify(400, err("authorization_pending", "AADSTS70016: x", &[70016])), PollOutcome::Pending);
        assert_eq!(classify(400, err("slow_down", "", &[])), PollOutcome::SlowDown);
        assert!(matches!(classify(400, err("authorization_declined", "AADSTS70000", &[])), PollOutcome::Declined(_)));
        assert!(matches!(classify(400, err("access_denied", "", &[])), PollOutcome::Declined(_)));
        assert!(matches!(classify(400, err("expired_token", "AADSTS70020", &[70020])), PollOutcome::Expired(_)));
        assert!(matches!(classify(400, err("code_expired", "", &[])), PollOutcome::Expired(_)));
        assert!(matches!(classify(400, err("bad_verification_code", "", &[])), PollOutcome::BadCode(_)));
        assert!(matches!(
            classify(401, err("invalid_client", "AADSTS7000218: The request body must contain client_assertion", &[7000218])),
            PollOutcome::PublicClientDisabled(_)
        ));
        assert!(matches!(classify(400, err("unauthorized_client", "AADSTS700016: app", &[])), PollOutcome::ApplicationNotFound(_)));
        assert!(matches!(classify(400, err("invalid_request", "AADSTS90002: Tenant", &[90002])), PollOutcome::TenantNotFound(_)));
        assert!(matches!(classify(400, err("invalid_grant", "AADSTS50196: loop", &[50196])), PollOutcome::LoopDetected(_)));
        assert!(matches!(classify(400, err("invalid_grant", "AADSTS53003: blocked", &[53003])), PollOutcome::ConditionalAccess(_)));
        assert!(matches!(classify(503, err("temporarily_unavailable", "", &[])), PollOutcome::Transient(_)));
        assert!(matches!(classify(503, TokenParse::Malformed("html".into())), PollOutcome::Transient(_)));
        assert!(matches!(classify(400, err("invalid_grant", "AADSTS9002313", &[])), PollOutcome::Failed(_)));
    }
}
