//! Files compiled into the binary and served as they are: the playground's
//! GraphiQL bundle and the admin console. Both must work with no internet
//! access and without files next to the binary, so their assets are
//! `include_bytes!`-ed; this is the one place that answers for them.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};

/// One embedded file: the name it is asked for by, its media type, its bytes.
pub struct EmbeddedFile {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

impl EmbeddedFile {
    pub const fn new(name: &'static str, content_type: &'static str, bytes: &'static [u8]) -> Self {
        EmbeddedFile {
            name,
            content_type,
            bytes,
        }
    }
}

/// The file of `files` named `name` (an exact match, so no path can lead
/// outside the list), cacheable for a day; 404 for any other name.
pub fn serve(files: &[EmbeddedFile], name: &str) -> Response {
    match files.iter().find(|file| file.name == name) {
        Some(file) => Response::builder()
            .content_type(file.content_type)
            .header("cache-control", "public, max-age=86400")
            .body(file.bytes),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
