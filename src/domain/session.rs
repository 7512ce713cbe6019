//! Restore sessions and their events: the vendor's enums and the rules between them.

use std::str::FromStr;

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),+ } }
            pub fn allowed_values() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
        impl FromStr for $name {
            type Err = String;
            /// Any case, as the vendor's server accepts.
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
                    .ok_or_else(|| format!("'{}' is not one of {}", s, Self::allowed_values()))
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

wire_enum!(
    /// Exchange, OneDrive, SharePoint, Teams.
    SessionType { Vex = "Vex", Veod = "Veod", Vesp = "Vesp", Vet = "Vet" }
);
wire_enum!(SessionState { Working = "Working", Stopped = "Stopped" });
wire_enum!(SessionResult { Success = "Success", Warning = "Warning", Failed = "Failed" });
wire_enum!(EventStatus {
    Running = "Running", Success = "Success", Warning = "Warning", Failed = "Failed",
    Cancelled = "Cancelled", Skipped = "Skipped"
});

impl SessionType {
    pub fn describe(self) -> &'static str {
        match self {
            SessionType::Vex => "Exchange",
            SessionType::Veod => "OneDrive",
            SessionType::Vesp => "SharePoint",
            SessionType::Vet => "Teams",
        }
    }
}

/// `HH:MM:SS` (hours may exceed 24), as the vendor writes event durations.
pub fn duration_hms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_types_parse_in_any_case() {
        assert_eq!("vex".parse::<SessionType>().unwrap(), SessionType::Vex);
        assert_eq!("VESP".parse::<SessionType>().unwrap(), SessionType::Vesp);
        assert!("exchange".parse::<SessionType>().unwrap_err().contains("Vex, Veod, Vesp, Vet"));
    }

    #[test]
    fn durations_are_hh_mm_ss() {
        assert_eq!(duration_hms(0), "00:00:00");
        assert_eq!(duration_hms(3_723_000), "01:02:03");
        assert_eq!(duration_hms(90_000_000), "25:00:00");
    }
}
