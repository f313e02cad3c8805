//! Local stand-ins for the APIs the sample plugins talk to, used by `flowhost demo` and the
//! tests, so sample flows make real HTTP requests without leaving the machine: a shop's order
//! API (here), and [`webinar`], [`genai`] and [`crm`] emulators that follow the public APIs'
//! shapes, auth and error codes.
//!
//! `GET /orders/{id}` with `Authorization: Bearer <token>` answers
//! `{"id": "...", "status": "shipped" | "processing" | "delivered", "eta": "..."}`, 404 for an
//! unknown order and 401 for a missing or wrong token. `GET /loyalty/{person}` answers
//! `{"person": "...", "points": 600}` (the sample flow's Call API step reads it).

pub mod crm;
pub mod genai;
pub mod webinar;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The token the demo shop API accepts.
pub const DEMO_TOKEN: &str = "demo-shop-token";

/// A running shop API; stops when dropped.
pub struct ShopApi {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ShopApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ShopApi {
    /// Starts the API on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> std::io::Result<ShopApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(answer))
                        .await;
                });
            }
        });
        Ok(ShopApi { addr, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {DEMO_TOKEN}"));
    let path = req.uri().path().to_owned();
    let (status, body) = if !authorized {
        (401, r#"{"error": "unauthorized"}"#.to_owned())
    } else if let Some(id) = path.strip_prefix("/orders/") {
        match id {
            "1001" => (
                200,
                r#"{"id": "1001", "status": "shipped", "eta": "2026-12-01"}"#.into(),
            ),
            "1002" => (
                200,
                r#"{"id": "1002", "status": "processing", "eta": null}"#.into(),
            ),
            "1003" => (
                200,
                r#"{"id": "1003", "status": "delivered", "eta": null}"#.into(),
            ),
            _ => (404, r#"{"error": "no such order"}"#.into()),
        }
    } else if let Some(person) = path.strip_prefix("/loyalty/") {
        let points = person.len() * 150;
        (
            200,
            format!(r#"{{"person": "{person}", "points": {points}}}"#),
        )
    } else {
        (404, r#"{"error": "not found"}"#.into())
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static response"))
}
