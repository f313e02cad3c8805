//! Test plugin: panics. Built by tests/build.rs.
use flowhost_sdk::{Context, Element, Error, Exit, Field, Manifest, export_element};
#[allow(unused_imports)]
use std::hint::black_box;

struct Plugin;

impl Element for Plugin {
    fn manifest() -> Manifest {
        Manifest::new("panic", "0.1.0", "panic")
            .config(Field::text("url"))
            .exit("done", "Done")
            .host("127.0.0.1")
    }

    #[allow(unreachable_code, unused_variables)]
    fn execute(ctx: &Context) -> Result<Exit, Error> {
        panic!("the plugin panicked on purpose");
        Ok(Exit::to("done"))
    }
}

export_element!(Plugin);
