//! Test plugin: built against a WIT version the host does not serve. Built by tests/build.rs.
wit_bindgen::generate!({
    inline: "
        package flowhost:element@0.9.0;
        interface element {
            describe: func() -> string;
        }
        world plugin {
            export element;
        }
    ",
});

struct Future;

impl exports::flowhost::element::element::Guest for Future {
    fn describe() -> String {
        "from the future".to_owned()
    }
}

export!(Future);
