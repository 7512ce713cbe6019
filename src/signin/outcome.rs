//! One poll of a pending sign-in and what it leads to: shared by the follower and its tests.

use crate::clock::Millis;
use crate::domain::schedule::{Next, Schedule, Signal};
use crate::identity::{IdentityClient, PollOutcome, TokenSet};
use crate::store::SignInState;
use url::Url;

#[derive(Debug)]
pub enum Step {
    /// Still pending: poll again at `schedule.next_poll_at`.
    Again,
    Finished(Finished),
}

#[derive(Debug)]
pub struct Finished {
    pub state: SignInState,
    /// The event's message: what happened and, where it helps, what to do.
    pub message: String,
    pub account: Option<String>,
    pub tokens: Option<TokenSet>,
}

pub struct PollTarget<'a> {
    pub token_endpoint: &'a Url,
    pub client_id: &'a str,
    pub tenant: &'a str,
    pub device_code: &'a str,
}

/// Polls once and moves the schedule. `now` is read after the answer, so that the next poll is
/// at least one interval after this one ended, however long the authority took.
pub async fn poll_step(
    identity: &IdentityClient,
    schedule: &mut Schedule,
    target: &PollTarget<'_>,
    now: impl Fn() -> Millis,
) -> Step {
    let outcome = identity.poll(target.token_endpoint, target.client_id, target.device_code).await;
    metrics::counter!(crate::metrics::SIGN_IN_POLLS, "outcome" => outcome_label(&outcome)).increment(1);
    let signal = match &outcome {
        PollOutcome::Pending => Signal::Pending,
        PollOutcome::SlowDown => Signal::SlowDown,
        PollOutcome::Transient(_) | PollOutcome::LoopDetected(_) => Signal::Transient,
        _ => return Step::Finished(finish(outcome, target)),
    };
    match schedule.after(signal, now()) {
        Next::PollAt(_) => Step::Again,
        Next::Expired => Step::Finished(Finished {
            state: SignInState::Expired,
            message: match outcome {
                PollOutcome::Transient(why) => format!(
                    "The device code expired before the sign-in could be confirmed: the last poll failed ({why})"
                ),
                _ => "The device code expired before anyone signed in".to_string(),
            },
            account: None,
            tokens: None,
        }),
    }
}

fn outcome_label(outcome: &PollOutcome) -> &'static str {
    match outcome {
        PollOutcome::Tokens(_) => "tokens",
        PollOutcome::Pending => "pending",
        PollOutcome::SlowDown => "slow_down",
        PollOutcome::Declined(_) => "declined",
        PollOutcome::Expired(_) => "expired",
        PollOutcome::BadCode(_) => "bad_code",
        PollOutcome::PublicClientDisabled(_) => "public_client_disabled",
        PollOutcome::ApplicationNotFound(_) => "application_not_found",
        PollOutcome::TenantNotFound(_) => "tenant_not_found",
        PollOutcome::LoopDetected(_) => "loop_detected",
        PollOutcome::ConditionalAccess(_) => "conditional_access",
        PollOutcome::Transient(_) => "transient",
        PollOutcome::Failed(_) => "failed",
    }
}

fn finish(outcome: PollOutcome, target: &PollTarget<'_>) -> Finished {
    let failed = |message: String| Finished { state: SignInState::Failed, message, account: None, tokens: None };
    match outcome {
        PollOutcome::Tokens(tokens) => {
            let account = tokens
                .id_token
                .as_deref()
                .and_then(crate::identity::parse::account_name)
                .or_else(|| crate::identity::parse::account_name(&tokens.access_token));
            let message = match &account {
                Some(a) => format!("Signed in as {a}"),
                None => "Signed in".to_string(),
            };
            Finished { state: SignInState::SignedIn, message, account, tokens: Some(tokens) }
        }
        PollOutcome::Declined(t) => Finished {
            state: SignInState::Declined,
            message: format!("The sign-in was declined ({})", t.summary()),
            account: None,
            tokens: None,
        },
        PollOutcome::Expired(_) => Finished {
            state: SignInState::Expired,
            message: "The device code expired before anyone signed in".to_string(),
            account: None,
            tokens: None,
        },
        PollOutcome::BadCode(t) => failed(format!("The authority does not recognise the device code ({})", t.summary())),
        PollOutcome::PublicClientDisabled(t) => failed(format!(
            "Application {} does not allow public client flows: enable it in Entra ID (Authentication, Allow public client flows) ({})",
            target.client_id,
            t.summary()
        )),
        PollOutcome::ApplicationNotFound(t) => failed(format!(
            "Application {} was not found in tenant {}: check the application id and the region ({})",
            target.client_id,
            target.tenant,
            t.summary()
        )),
        PollOutcome::TenantNotFound(t) => failed(format!(
            "Tenant {} was not found by this region's authority: check the organization name and region ({})",
            target.tenant,
            t.summary()
        )),
        PollOutcome::ConditionalAccess(t) => {
            failed(format!("A conditional access policy blocked the sign-in ({})", t.summary()))
        }
        PollOutcome::Failed(t) => failed(format!("The sign-in failed ({})", t.summary())),
        PollOutcome::Pending | PollOutcome::SlowDown | PollOutcome::Transient(_) | PollOutcome::LoopDetected(_) => {
            unreachable!("non-terminal outcomes are scheduled, not finished")
        }
    }
}
