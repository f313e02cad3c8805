//! Test plugin: sends requests in a loop, ignoring answers. Built by tests/build.rs.
use flowhost_sdk::{Context, Element, Error, Exit, Field, Manifest, export_element};
#[allow(unused_imports)]
use std::hint::black_box;

struct Plugin;

impl Element for Plugin {
    fn manifest() -> Manifest {
        Manifest::new("too-many-requests", "0.1.0", "too-many-requests")
            .config(Field::text("url"))
            .exit("done", "Done")
            .host("127.0.0.1")
    }

    #[allow(unreachable_code, unused_variables)]
    fn execute(ctx: &Context) -> Result<Exit, Error> {
        let url: String = ctx.config_value("url")?;
        for _ in 0..1000 {
            let _ = flowhost_sdk::http::Request::get(&url).send();
        }
        Ok(Exit::to("done"))
    }
}

export_element!(Plugin);
