//! The GraphiQL playground, served entirely from the binary: the stock pages
//! load their scripts from public CDNs and stay blank on a machine without
//! internet access. The files under `assets/graphiql/` are embedded at build
//! time (see its README for their versions and how to refresh them).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem::http::{HeaderValue, header};
use poem::web::{Html, Path};
use poem::{IntoResponse, Response, handler};

use super::embedded::{self, EmbeddedFile};
use super::security_headers;

const INDEX: &str = include_str!("../../assets/graphiql/index.html");

const ASSETS: &[EmbeddedFile] = &[
    EmbeddedFile::new(
        "react.production.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    EmbeddedFile::new(
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
    EmbeddedFile::new(
        "graphiql.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    EmbeddedFile::new(
        "graphiql.min.css",
        "text/css",
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    // The page's own script and style, kept out of the HTML so that its
    // Content-Security-Policy needs no 'unsafe-inline'.
    EmbeddedFile::new(
        "playground.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/playground.js"),
    ),
    EmbeddedFile::new(
        "playground.css",
        "text/css",
        include_bytes!("../../assets/graphiql/playground.css"),
    ),
];

/// Where the page carries its style nonce (see [`page`]).
const NONCE_SLOT: &str = "{{style-nonce}}";

/// The page, with a fresh nonce for the one inline style it needs: GraphiQL's
/// dialogs lock page scrolling with a `<style>` element they create, and
/// `playground.js` hands them this nonce (read from the page), which the
/// page's Content-Security-Policy allows for this response only.
pub fn page() -> Response {
    let mut bytes = [0u8; 16];
    // A failing RNG leaves a nonce that is still unique enough per page to
    // keep the dialogs working; scripts never depend on it.
    let _ = getrandom::fill(&mut bytes);
    let nonce = URL_SAFE_NO_PAD.encode(bytes);
    let mut resp = Html(INDEX.replace(NONCE_SLOT, &nonce)).into_response();
    if let Ok(csp) = HeaderValue::from_str(&security_headers::playground_csp(&nonce)) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    resp
}

#[handler]
pub fn index() -> Response {
    page()
}

#[handler]
pub fn asset(Path(name): Path<String>) -> Response {
    embedded::serve(ASSETS, &name)
}
