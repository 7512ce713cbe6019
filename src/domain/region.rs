//! Microsoft 365 regions (national clouds) and their default identity authority and Graph hosts.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    Worldwide,
    Germany,
    China,
    USDefence,
    USGovernment,
}

impl Region {
    pub const ALL: [Region; 5] = [
        Region::Worldwide,
        Region::Germany,
        Region::China,
        Region::USDefence,
        Region::USGovernment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Region::Worldwide => "Worldwide",
            Region::Germany => "Germany",
            Region::China => "China",
            Region::USDefence => "USDefence",
            Region::USGovernment => "USGovernment",
        }
    }

    pub fn default_authority(self) -> &'static str {
        match self {
            Region::Worldwide => "https://login.microsoftonline.com",
            Region::USGovernment | Region::USDefence => "https://login.microsoftonline.us",
            Region::China => "https://login.chinacloudapi.cn",
            Region::Germany => "https://login.microsoftonline.de",
        }
    }

    pub fn default_graph(self) -> &'static str {
        match self {
            Region::Worldwide => "https://graph.microsoft.com",
            Region::USGovernment => "https://graph.microsoft.us",
            Region::USDefence => "https://dod-graph.microsoft.us",
            Region::China => "https://microsoftgraph.chinacloudapi.cn",
            Region::Germany => "https://graph.microsoft.de",
        }
    }

    pub fn allowed_values() -> String {
        Region::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRegion(pub String);

impl fmt::Display for UnknownRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown region '{}': use one of {}", self.0, Region::allowed_values())
    }
}

impl FromStr for Region {
    type Err = UnknownRegion;
    /// Matched without regard to case, as the vendor's server does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownRegion(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_lists_values_when_unknown() {
        assert_eq!("usgovernment".parse::<Region>().unwrap(), Region::USGovernment);
        assert_eq!("WORLDWIDE".parse::<Region>().unwrap(), Region::Worldwide);
        let err = "Mars".parse::<Region>().unwrap_err().to_string();
        assert!(err.contains("Worldwide, Germany, China, USDefence, USGovernment"), "{err}");
    }
}
