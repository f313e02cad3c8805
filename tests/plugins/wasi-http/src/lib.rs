//! Test plugin: sends its requests through `wasi:http/outgoing-handler`, as components from
//! standard toolchains do, instead of flowhost's `http` import. Built by tests/build.rs.
use flowhost_sdk::{Context, Element, Error, Exit, Field, Manifest, export_element, variables};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

struct WasiHttp;

impl Element for WasiHttp {
    fn manifest() -> Manifest {
        Manifest::new("wasi-http", "0.1.0", "wasi:http client")
            .config(Field::text("authority").required())
            .config(Field::number("count").default_value(1))
            .exit("ok", "OK")
            .host("127.0.0.1")
    }

    fn execute(ctx: &Context) -> Result<Exit, Error> {
        let authority: String = ctx.config_value("authority")?;
        let count: u32 = ctx.config_value("count")?;
        let mut last = (0, Vec::new());
        for i in 0..count {
            last = get(&authority, &format!("/wasi/{i}")).map_err(Error::failed)?;
        }
        variables::set("status", last.0);
        variables::set("body", String::from_utf8_lossy(&last.1).into_owned());
        Ok(Exit::to("ok"))
    }
}

fn get(authority: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|_| "method")?;
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|_| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|_| "authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|_| "path")?;
    let pending =
        outgoing_handler::handle(request, None).map_err(|e| format!("wasi:http: {e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|_| "response taken twice")?
        .map_err(|e| format!("wasi:http: {e:?}"))?;
    let status = response.status();
    let body = response.consume().map_err(|_| "body")?;
    let stream = body.stream().map_err(|_| "stream")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend(chunk),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(format!("reading body: {e:?}")),
        }
    }
    Ok((status, bytes))
}

export_element!(WasiHttp);
