//! Test plugin: does nothing but take its exit. Used by benchmarks. Built by tests/build.rs.
use flowhost_sdk::{Context, Element, Error, Exit, Manifest, export_element};

struct Trivial;

impl Element for Trivial {
    fn manifest() -> Manifest {
        Manifest::new("trivial", "0.1.0", "Trivial").exit("done", "Done")
    }

    fn execute(_ctx: &Context) -> Result<Exit, Error> {
        Ok(Exit::to("done"))
    }
}

export_element!(Trivial);
