//! Response headers that tell browsers how far to trust what memberdesk
//! sends, set in one place for every route (errors included):
//!
//! - every response: `X-Content-Type-Options: nosniff`, so a browser never
//!   guesses a script or a page out of a JSON or text answer;
//! - every HTML page (the playground, at `/` and at `/graphql` for a browser):
//!   a Content-Security-Policy that allows only memberdesk's own embedded
//!   files (the page has no inline script or style; the playground adds a
//!   per-response nonce for the one style its dialogs create) and no framing;
//! - every `/graphql` answer that is not the page: `Cache-Control: no-store`,
//!   since it may hold personal data or a session token.

use poem::http::{HeaderValue, header};
use poem::{Endpoint, IntoResponse, Request, Response};

/// What an HTML page of memberdesk may load: scripts, styles and the GraphQL
/// endpoint from memberdesk itself; GraphiQL's stylesheet carries its fonts
/// and icons as `data:` URLs, and CodeMirror drags with a `data:` image. No
/// inline script, no framing.
const HTML_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// The playground's policy: [`HTML_CSP`], plus the one `<style>` element that
/// carries this response's `nonce` (see `playground::page`).
pub fn playground_csp(nonce: &str) -> String {
    HTML_CSP.replacen(
        "style-src 'self'",
        &format!("style-src 'self' 'nonce-{nonce}'"),
        1,
    )
}

fn is_html(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"))
}

/// Wraps every route (outermost, so refusals and panics get the headers too).
pub async fn around<E: Endpoint>(endpoint: E, req: Request) -> poem::Result<Response> {
    let graphql = req.uri().path() == "/graphql";
    let mut resp = match endpoint.call(req).await {
        Ok(output) => output.into_response(),
        Err(err) => err.into_response(),
    };
    let html = is_html(&resp);
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if html {
        // A page that set its own (stricter or nonce-bearing) policy keeps it.
        headers
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(HTML_CSP));
    } else if graphql {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(resp)
}
