//! Pure types and state machines of restoregate: no I/O here.

pub mod organization;
pub mod region;
pub mod schedule;
pub mod session;

/// A GUID as clients send it: any case, with or without braces.
pub fn parse_guid(raw: &str) -> Option<uuid::Uuid> {
    let s = raw.trim();
    let s = s.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(s);
    if s.len() != 36 {
        return None;
    }
    uuid::Uuid::parse_str(s).ok()
}
