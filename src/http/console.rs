//! The admin console at `/admin`: pages for the people who remove members
//! (Django admin's user pages, with memberdesk's safer operations), written
//! as a client of the public `/graphql` endpoint and nothing else, so it can
//! do nothing the resolvers' guards do not allow. Its files under
//! `assets/admin/` are plain ES modules and a stylesheet, embedded at build
//! time like the playground's (no Node build step, no internet access
//! needed). The page carries no inline script or style, so it runs under the
//! strict Content-Security-Policy every HTML page gets (`security_headers`).

use poem::web::{Html, Path};
use poem::{IntoResponse, Response, handler};

use super::embedded::{self, EmbeddedFile};

const INDEX: &str = include_str!("../../assets/admin/index.html");

macro_rules! console_files {
    ($($name:literal => $content_type:literal),* $(,)?) => {
        &[$(EmbeddedFile::new(
            $name,
            $content_type,
            include_bytes!(concat!("../../assets/admin/", $name)),
        )),*]
    };
}

const ASSETS: &[EmbeddedFile] = console_files![
    "style.css" => "text/css; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "messages.js" => "text/javascript; charset=utf-8",
    "ui.js" => "text/javascript; charset=utf-8",
    "plan.js" => "text/javascript; charset=utf-8",
    "login.js" => "text/javascript; charset=utf-8",
    "users.js" => "text/javascript; charset=utf-8",
    "user.js" => "text/javascript; charset=utf-8",
    "groups.js" => "text/javascript; charset=utf-8",
    "questions.js" => "text/javascript; charset=utf-8",
    "audit.js" => "text/javascript; charset=utf-8",
];

#[handler]
pub fn index() -> Response {
    Html(INDEX).into_response()
}

#[handler]
pub fn asset(Path(name): Path<String>) -> Response {
    embedded::serve(ASSETS, &name)
}
