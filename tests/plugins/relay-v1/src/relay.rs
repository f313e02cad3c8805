// The relay plugin, shared by `relay-v1` and `relay-v2`, which differ only in `VERSION`.
// Calls `url` (so a test can hold an execution in flight), records which version ran it, and
// leaves by `done`.

struct Relay;

impl Element for Relay {
    fn manifest() -> Manifest {
        Manifest::new("relay", VERSION, "Relay")
            .config(Field::text("url").required())
            .exit("done", "Done")
            .host("127.0.0.1")
    }

    fn execute(ctx: &Context) -> Result<Exit, Error> {
        let url: String = ctx.config_value("url")?;
        Request::get(&url)
            .header("x-relay-version", VERSION)
            .send()?;
        variables::set("relay_version", VERSION);
        Ok(Exit::to("done"))
    }
}

export_element!(Relay);
