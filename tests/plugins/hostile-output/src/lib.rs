//! Test plugin: hands back too much, or fails in each way a plugin can, by its `mode` field.
//! Built by tests/build.rs.
use flowhost_sdk::bindings::flowhost::element::{types, variables as raw};
use flowhost_sdk::{
    Context, Element, Error, Exit, Field, Manifest, export_element, json, log, variables,
};
use std::hint::black_box;

struct Plugin;

const MIB: usize = 1 << 20;

impl Element for Plugin {
    fn manifest() -> Manifest {
        Manifest::new("hostile-output", "0.1.0", "hostile-output")
            .config(Field::text("mode").required())
            .exit("done", "Done")
    }

    fn execute(ctx: &Context) -> Result<Exit, Error> {
        let mode: String = ctx.config_value("mode").unwrap_or_default();
        match mode.as_str() {
            "long-exit" => return Ok(Exit::to(&"x".repeat(30 * MIB))),
            "long-error" => return Err(Error::failed("e".repeat(30 * MIB))),
            "big-data" => {
                return Ok(Exit::to("done").with_data(json!({"blob": "d".repeat(40 * MIB)})));
            }
            "many-variables" => {
                for i in 0..10_000 {
                    variables::set(&format!("v{i}"), i);
                }
            }
            "big-variable" => variables::set("big", "b".repeat(2 * MIB)),
            "heavy-variables" => {
                for i in 0..6 {
                    variables::set(&format!("h{i}"), "h".repeat(900 << 10));
                }
            }
            "bad-json-variable" => raw::set("broken", &types::Value::Json("{not json".into())),
            "stdout-flood" => {
                for i in 0..100_000 {
                    println!("line {i} of a flood nobody will read");
                }
            }
            "log-flood" => {
                for _ in 0..150 {
                    log::info(&"l".repeat(4000));
                }
            }
            "own-stack-overflow" => {
                black_box(recurse(black_box(1_000_000)));
            }
            "panic" => panic!("the order API answered {}", black_box("nonsense")),
            other => return Err(Error::config(format!("unknown mode {other:?}"))),
        }
        Ok(Exit::to("done"))
    }
}

export_element!(Plugin);

/// Each call keeps 16 KiB on the stack the plugin keeps in its linear memory (1 MiB), and
/// little on the engine's: the linear one runs out first.
#[inline(never)]
fn recurse(n: u64) -> u64 {
    let frame = black_box([n as u8; 16 * 1024]);
    if n == 0 {
        0
    } else {
        black_box(recurse(n - 1)) + u64::from(frame[100])
    }
}
