//! Test plugin: the happy path. Reads its config, calls `url` with the participant's id, sets
//! variables from the JSON answer, logs, and picks `found` or `not-found` by status.
//! Built by tests/build.rs.
use flowhost_sdk::http::Request;
use flowhost_sdk::{
    Context, Element, Error, Exit, Field, Manifest, config, export_element, json, log, variables,
};

struct Happy;

impl Element for Happy {
    fn manifest() -> Manifest {
        Manifest::new("happy", "1.2.0", "Happy path")
            .description("Looks a record up over HTTP")
            .config(Field::text("url").required())
            .config(Field::text("greeting").default_value("Hello"))
            .config(Field::secret("token"))
            .exit("found", "Found")
            .exit("not-found", "Not found")
            .host("127.0.0.1")
    }

    fn execute(ctx: &Context) -> Result<Exit, Error> {
        let url: String = ctx.config_value("url")?;
        let greeting: String = ctx.config_value("greeting")?;
        let mut request = Request::get(&url).header("x-participant", ctx.participant_id());
        if let Some(token) = config::secret("token") {
            log::info(&format!("using token {token}"));
            request = request.bearer(&token);
        }
        let response = request.send()?;
        if response.status == 404 {
            return Ok(Exit::to("not-found"));
        }
        let body = response.json_value();
        variables::set("fetched", body["value"].clone());
        let name = ctx.person().attribute_str("firstName").unwrap_or("friend");
        variables::set("greeting", format!("{greeting}, {name}"));
        let visits = variables::get("visits")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
        variables::set("visits", visits + 1.0);
        println!("printed to stdout");
        log::info(&format!("fetched {}", body["value"]));
        Ok(Exit::to("found").with_data(json!({ "status": response.status })))
    }
}

export_element!(Happy);
