//! The admin console as the server delivers it: the page at `/admin`, its
//! embedded files with the right media types, the strict policy header, no
//! inline script, unknown files refused, and served whatever the playground
//! switch says (the console is a client of `/graphql`, not a developer tool).
//! What the pages do is proven in a browser by `tests/ecosystem/console.mjs`.

use memberdesk::config::{Settings, Switch};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};

use crate::helpers::TestApp;

const FILES: &[(&str, &str)] = &[
    ("app.js", "text/javascript"),
    ("api.js", "text/javascript"),
    ("messages.js", "text/javascript"),
    ("ui.js", "text/javascript"),
    ("plan.js", "text/javascript"),
    ("login.js", "text/javascript"),
    ("users.js", "text/javascript"),
    ("user.js", "text/javascript"),
    ("groups.js", "text/javascript"),
    ("questions.js", "text/javascript"),
    ("audit.js", "text/javascript"),
    ("style.css", "text/css"),
];

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_page_is_served_under_a_strict_policy_without_inline_script() {
    let app = TestApp::spawn().await;
    for path in ["/admin", "/admin/"] {
        let resp = app.get(path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(
            header(&resp, CONTENT_TYPE).starts_with("text/html"),
            "{path}"
        );
        let csp = header(&resp, CONTENT_SECURITY_POLICY);
        for directive in [
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: {directive} missing in {csp}"
            );
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
        let html = resp.text().await.unwrap();
        assert!(html.contains(r#"<script type="module" src="/admin/app.js"></script>"#));
        // Every script is a file: no inline code, no handler attributes.
        let lower = html.to_lowercase();
        assert_eq!(lower.matches("<script").count(), 1, "{html}");
        assert!(!lower.contains(" onclick=") && !lower.contains(" onload="));
        assert!(!lower.contains("<style"), "{html}");
        assert!(!lower.contains("src=\"http") && !lower.contains("href=\"http"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_files_have_their_media_types_and_name_no_other_server() {
    let app = TestApp::spawn().await;
    for (file, kind) in FILES {
        let resp = app.get(&format!("/admin/{file}")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{file}");
        assert!(header(&resp, CONTENT_TYPE).starts_with(kind), "{file}");
        let text = resp.text().await.unwrap();
        // The console talks to memberdesk's own /graphql and nowhere else.
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{file}"
        );
        assert!(
            !text.contains("localStorage"),
            "{file} keeps data beyond the tab"
        );
        assert!(!text.contains("innerHTML"), "{file} parses markup");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_console_files_are_404() {
    let app = TestApp::spawn().await;
    for path in [
        "/admin/nope.js",
        "/admin/index.html",
        "/admin/..%2F..%2FCargo.toml",
        "/admin/README.md",
        "/admin/assets/app.js",
    ] {
        let resp = app.get(path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_stays_when_the_playground_is_off() {
    let settings = Settings {
        playground: Switch::Off,
        ..Settings::default()
    };
    let app = TestApp::spawn_with(settings).await;
    assert_eq!(
        app.get("/").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/admin").send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/admin/app.js").send().await.unwrap().status(),
        StatusCode::OK
    );
}
