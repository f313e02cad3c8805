//! The web console at `/console/`: static files built from `console/` and embedded at build
//! time (`build.rs`). The files hold no data and need no key; the page asks for an API key
//! and calls the same API as everything else, with the key in the `Authorization` header.
//!
//! Working on the console, `FLOWHOST_CONSOLE_DIR=console/dist` serves the files from that
//! folder as they are now, so `npm run build` is enough to see a change.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

include!(concat!(env!("OUT_DIR"), "/console_files.rs"));

/// What the page may load and do: its own files and the API, nothing else, and never framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /console`: to `/console/`, where the page's relative links work.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/console/")
}

/// `GET /console/`.
pub async fn index() -> Response {
    file("index.html")
}

/// `GET /console/{file}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    file(&name)
}

fn file(name: &str) -> Response {
    if let Some(dir) = std::env::var_os("FLOWHOST_CONSOLE_DIR") {
        let fresh = (!name.contains(['/', '\\']) && !name.starts_with('.'))
            .then(|| std::fs::read(std::path::Path::new(&dir).join(name)).ok())
            .flatten();
        return match fresh {
            Some(bytes) => served(name, bytes),
            None => missing(name),
        };
    }
    if FILES.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "The web console was not built into this flowhost binary: run `./dev console` (npm ci and npm run build in console/), then build flowhost again.\n",
        )
            .into_response();
    }
    match FILES.iter().find(|(n, _)| *n == name) {
        Some((_, bytes)) => served(name, *bytes),
        None => missing(name),
    }
}

fn missing(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("the console has no file {name:?}\n"),
    )
        .into_response()
}

fn served(name: &str, bytes: impl Into<axum::body::Body>) -> Response {
    let kind = match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    };
    let mut response = (StatusCode::OK, bytes.into()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
