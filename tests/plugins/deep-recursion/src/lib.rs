//! Test plugin: recurses without bound. Built by tests/build.rs.
use flowhost_sdk::{Context, Element, Error, Exit, Field, Manifest, export_element};
#[allow(unused_imports)]
use std::hint::black_box;

struct Plugin;

impl Element for Plugin {
    fn manifest() -> Manifest {
        Manifest::new("deep-recursion", "0.1.0", "deep-recursion")
            .config(Field::text("url"))
            .exit("done", "Done")
            .host("127.0.0.1")
    }

    #[allow(unreachable_code, unused_variables)]
    fn execute(ctx: &Context) -> Result<Exit, Error> {
        black_box(recurse(black_box(u64::MAX)));
        Ok(Exit::to("done"))
    }
}

export_element!(Plugin);

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let frame = black_box([n; 16]);
    if n == 0 {
        0
    } else {
        black_box(recurse(n - 1)) + frame[3]
    }
}
