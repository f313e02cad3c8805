//! Test plugin: probes what the sandbox lets through (filesystem, environment, sockets,
//! arguments) and fetches `url` so the response-size cap can be checked. Built by
//! tests/build.rs.
use flowhost_sdk::http::Request;
use flowhost_sdk::{Context, Element, Error, Exit, Field, Manifest, export_element, variables};

struct Probe;

impl Element for Probe {
    fn manifest() -> Manifest {
        Manifest::new("sandbox-probe", "0.1.0", "Sandbox probe")
            .config(Field::text("socket"))
            .config(Field::text("url"))
            .exit("probed", "Probed")
            .host("127.0.0.1")
    }

    fn execute(ctx: &Context) -> Result<Exit, Error> {
        variables::set("root_listing", std::fs::read_dir("/").is_ok());
        variables::set("cwd_listing", std::fs::read_dir(".").is_ok());
        variables::set("env_count", std::env::vars().count());
        variables::set("arg_count", std::env::args().count());
        if let Ok(Some(addr)) = ctx.config_value::<Option<String>>("socket") {
            variables::set("tcp_connect", std::net::TcpStream::connect(addr).is_ok());
        }
        if let Ok(Some(url)) = ctx.config_value::<Option<String>>("url") {
            match Request::get(&url).send() {
                Ok(r) => variables::set("fetched_bytes", r.body.len()),
                Err(e) => variables::set("fetch_error", e.to_string()),
            }
        }
        Ok(Exit::to("probed"))
    }
}

export_element!(Probe);
