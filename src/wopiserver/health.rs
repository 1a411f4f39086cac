//! The wopiserver's health page as a probe: `GET /wopi` always answers 200 and, since v10,
//! says `Health status: <OK|FAIL|Warning>` (cs3-wopiserver.md §10), so the text decides.

use url::Url;

use crate::http_client::{self, FetchError};

/// The page is small HTML; more than this is not a wopiserver.
const MAX_PAGE_BYTES: usize = 64 * 1024;

/// What the page says: `FAIL` (its storage probe failed) is unhealthy; `OK`, `Warning` (local
/// storage always reports it) and a page without the line (before v10: answering at all is
/// the signal) are healthy.
pub fn verdict(page: &str) -> Result<&'static str, &'static str> {
    match page.split("Health status:").nth(1).map(str::trim_start) {
        Some(s) if s.starts_with("FAIL") => Err("reports Health status: FAIL"),
        Some(s) if s.starts_with("Warning") => Ok("reports Health status: Warning"),
        Some(_) => Ok("reports Health status: OK"),
        None => Ok("answers"),
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

    #[test]
    fn the_page_text_decides() {
        assert!(verdict("<p>Storage type: cs3</p><p>Health status: OK</p>").is_ok());
        assert!(verdict("Health status: Warning").is_ok());
        assert!(verdict("<html>WOPI server</html>").is_ok());
        assert!(verdict("<p>Health status: FAIL</p>").is_err());
        assert!(verdict("Health status:   FAIL").is_err());
    }
}
