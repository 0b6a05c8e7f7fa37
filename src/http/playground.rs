//! The GraphiQL playground, served entirely from the binary: the stock pages
//! load their scripts from public CDNs and stay blank on a machine without
//! internet access. The files under `assets/graphiql/` are embedded at build
//! time (see its README for their versions and how to refresh them).

use poem::http::StatusCode;
use poem::web::{Html, Path};
use poem::{IntoResponse, Response, handler};

const INDEX: &str = include_str!("../../assets/graphiql/index.html");

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "react.production.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
    (
        "graphiql.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css",
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    // The page's own script and style, kept out of the HTML so that its
    // Content-Security-Policy needs no 'unsafe-inline'.
    (
        "playground.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/playground.js"),
    ),
    (
        "playground.css",
        "text/css",
        include_bytes!("../../assets/graphiql/playground.css"),
    ),
];

pub fn page() -> Html<&'static str> {
    Html(INDEX)
}

#[handler]
pub fn index() -> Html<&'static str> {
    page()
}

#[handler]
pub fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, bytes)) => Response::builder()
            .content_type(*content_type)
            .header("cache-control", "public, max-age=86400")
            .body(*bytes),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
