//! The wopiserver's health page as a probe: `GET /wopi` always answers 200 and, since v10,
//! says `Health status: <span style="font-family:monospace">OK</span>.` (cs3-wopiserver.md
//! §10: `OK`, `FAIL`, `Warning`, or xroot's error text), so the text inside the markup decides.

use url::Url;

use crate::http_client::{self, FetchError};

/// The page is small HTML; more than this is not a wopiserver.
const MAX_PAGE_BYTES: usize = 64 * 1024;

/// The verdict word after `Health status:`, with the markup around it removed (`None` when the
/// page has no such line, as before v10).
fn status_word(page: &str) -> Option<String> {
    let rest = page.split_once("Health status:")?.1;
    // Text up to the end of the sentence, tags skipped: `<span …>FAIL</span>.` → `FAIL`.
    let mut word = String::new();
    let mut in_tag = false;
    for c in rest.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if in_tag => {}
            '.' | '\n' | '\r' if !word.trim().is_empty() => break,
            c => word.push(c),
        }
        if word.len() > 256 {
            break;
        }
    }
    Some(word.trim().to_owned())
}

/// What the page says: `OK` and `Warning` (local storage always reports it) are healthy, and so
/// is a page without the line (before v10: answering at all is the signal); anything else —
/// `FAIL` from the cs3 probe, xroot's error text, an empty verdict — is unhealthy.
pub fn verdict(page: &str) -> Result<&'static str, &'static str> {
    match status_word(page).as_deref() {
        None => Ok("answers"),
        Some("OK") => Ok("reports Health status: OK"),
        Some("Warning") => Ok("reports Health status: Warning"),
        Some("FAIL") => Err("reports Health status: FAIL"),
        Some(_) => Err("reports an unhealthy Health status"),
    }
}

/// One probe of the instance at `base`: what it reports, or why it failed.
pub async fn probe(http: &reqwest::Client, base: &Url) -> Result<&'static str, String> {
    let url = base.join("wopi").map_err(|e| e.to_string())?;
    let mut resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| FetchError::from_reqwest(&e).to_string())?;
    if resp.status() != 200 {
        return Err(format!("GET /wopi answered {}", resp.status().as_u16()));
    }
    let page = http_client::read_bounded(&mut resp, MAX_PAGE_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    verdict(&String::from_utf8_lossy(&page)).map_err(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::verdict;

    /// v11.5.0's page (`src/wopiserver.py`, the `/wopi` index), verbatim but for the values.
    fn page(status: &str) -> String {
        include_str!("../../tests/fixtures/wopiserver/index.html").replace("{status}", status)
    }

    #[test]
    fn the_real_page_markup_decides() {
        assert_eq!(verdict(&page("OK")), Ok("reports Health status: OK"));
        assert_eq!(
            verdict(&page("Warning")),
            Ok("reports Health status: Warning")
        );
        assert_eq!(verdict(&page("FAIL")), Err("reports Health status: FAIL"));
        // xroot reports its error text; an empty verdict is no verdict of health either.
        assert!(verdict(&page("[FATAL] Socket timeout")).is_err());
        assert!(verdict(&page("")).is_err());
    }

    #[test]
    fn plain_lines_and_pages_without_the_line() {
        assert!(verdict("Health status: OK").is_ok());
        assert!(verdict("Health status:   FAIL").is_err());
        assert!(verdict("<p>Health status: FAIL</p>").is_err());
        assert_eq!(verdict("<html>WOPI server</html>"), Ok("answers"));
    }
}
