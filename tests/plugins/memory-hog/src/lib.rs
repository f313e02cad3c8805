//! Test plugin: allocates 1 MiB at a time, forever. Built by tests/build.rs.
use flowhost_sdk::{Context, Element, Error, Exit, Field, Manifest, export_element};
#[allow(unused_imports)]
use std::hint::black_box;

struct Plugin;

impl Element for Plugin {
    fn manifest() -> Manifest {
        Manifest::new("memory-hog", "0.1.0", "memory-hog")
            .config(Field::text("url"))
            .exit("done", "Done")
            .host("127.0.0.1")
    }

    #[allow(unreachable_code, unused_variables)]
    fn execute(ctx: &Context) -> Result<Exit, Error> {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            chunks.push(black_box(vec![7u8; 1 << 20]));
        }
        Ok(Exit::to("done"))
    }
}

export_element!(Plugin);
