//! `restoregate sessions`: the restore sessions the caller may see, as a table.

use super::client::Api;
use serde::Deserialize;

/// Sessions asked for per page (the server allows up to 10000; a smaller page keeps each answer
/// small on a server with many sessions).
const PAGE: usize = 100;

/// At most this many pages: a bound on the loop should the server keep answering full pages.
const MAX_PAGES: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: String,
    pub organization: String,
    #[serde(rename = "type")]
    pub session_type: String,
    pub state: String,
    pub creation_time: String,
    pub initiated_by: String,
}

#[derive(Deserialize)]
struct Page {
    results: Vec<Session>,
}

/// Every session, page after page, oldest first (the server's order).
pub async fn fetch_all(api: &Api) -> anyhow::Result<Vec<Session>> {
    let mut all = Vec::new();
    for page in 0..MAX_PAGES {
        let got: Page = api.get(&format!("/v5/RestoreSessions?offset={}&limit={PAGE}", page * PAGE)).await?;
        let n = got.results.len();
        all.extend(got.results);
        if n < PAGE {
            break;
        }
    }
    Ok(all)
}

/// `2026-12-03T14:30:00.123Z` as `2026-12-03 14:30:00` (UTC, said in the header).
fn when(iso: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(iso) {
        Ok(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => iso.to_string(),
    }
}

/// Left-aligned columns two spaces apart.
pub fn table(sessions: &[Session]) -> String {
    let header = ["ID", "ORGANIZATION", "TYPE", "STATE", "CREATED (UTC)", "INITIATED BY"];
    let rows: Vec<[String; 6]> = sessions
        .iter()
        .map(|s| {
            [s.id.clone(), s.organization.clone(), s.session_type.clone(), s.state.clone(), when(&s.creation_time), s.initiated_by.clone()]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: &[&str]| {
        let line: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    push(&header);
    for row in &rows {
        push(&row.each_ref().map(String::as_str));
    }
    out
}

pub async fn run(api: &Api, all: bool) -> anyhow::Result<()> {
    let sessions = fetch_all(api).await?;
    let total = sessions.len();
    let shown: Vec<Session> = sessions.into_iter().filter(|s| all || s.state == "Working").collect();
    if shown.is_empty() {
        if all || total == 0 {
            println!("no restore sessions");
        } else {
            println!("no working restore sessions ({total} stopped: --all lists them)");
        }
        return Ok(());
    }
    print!("{}", table(&shown));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let s = |id: &str, org: &str, state: &str| Session {
            id: id.into(),
            organization: org.into(),
            session_type: "Vex".into(),
            state: state.into(),
            creation_time: "2026-12-03T14:30:00.123Z".into(),
            initiated_by: "admin".into(),
        };
        let text = table(&[s("a", "abc.onmicrosoft.com", "Working"), s("bb", "x", "Stopped")]);
        assert_eq!(
            text,
            "ID  ORGANIZATION         TYPE  STATE    CREATED (UTC)        INITIATED BY\n\
             a   abc.onmicrosoft.com  Vex   Working  2026-12-03 14:30:00  admin\n\
             bb  x                    Vex   Stopped  2026-12-03 14:30:00  admin\n"
        );
    }
}
