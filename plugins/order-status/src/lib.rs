//! Sample element: looks up the participant's order in a shop API and branches on its status.
//!
//! Build: `cargo build --release --target wasm32-wasip2 -p order-status`, then copy
//! `target/wasm32-wasip2/release/order_status.wasm` into `plugins/` (`./dev demo` does both
//! and runs it in a flow against a local shop API).
//!
//! Operator settings (`flowhost.toml`, `[plugins.order-status]`): `base_url` of the shop API,
//! secret `api_token`. Flow configuration: `order_variable`, the flow variable holding the
//! order id. Sets `order_status` and `order_eta`; exits `shipped`, `processing`, `delivered`,
//! `not-found`, and `error`.

use flowhost_sdk::http::Request;
use flowhost_sdk::{
    Context, Element, Error, Exit, Field, Manifest, config, export_element, json, log, variables,
};
use serde::Deserialize;

struct OrderStatus;

#[derive(Deserialize)]
struct Settings {
    order_variable: String,
}

#[derive(Deserialize)]
struct Order {
    status: String,
    #[serde(default)]
    eta: Option<String>,
}

impl Element for OrderStatus {
    fn manifest() -> Manifest {
        Manifest::new("order-status", env!("CARGO_PKG_VERSION"), "Order status")
            .description("Looks up the participant's order and branches on its status")
            .config(
                Field::text("order_variable")
                    .label("Variable with the order id")
                    .default_value("order_id"),
            )
            .config(
                Field::secret("api_token")
                    .label("Shop API token")
                    .required(),
            )
            .exit("shipped", "Shipped")
            .exit("processing", "Processing")
            .exit("delivered", "Delivered")
            .exit("not-found", "Order not found")
            .host("setting:base_url")
    }

    fn execute(ctx: &Context) -> Result<Exit, Error> {
        let settings: Settings = ctx.config()?;
        let order_id = variables::get_str(&settings.order_variable).ok_or_else(|| {
            Error::failed(format!(
                "flow variable `{}` holding the order id is not set",
                settings.order_variable
            ))
        })?;
        let base_url = config::require_setting("base_url")?;
        let token = config::require_secret("api_token")?;
        let url = format!("{}/orders/{order_id}", base_url.trim_end_matches('/'));
        log::info(&format!("looking up order {order_id}"));
        let response = Request::get(&url)
            .bearer(&token)
            .header("accept", "application/json")
            .timeout_ms(1500)
            .send()?;
        match response.status {
            200 => {}
            404 => return Ok(Exit::to("not-found")),
            status => {
                return Err(Error::failed(format!(
                    "shop API answered {status} for order {order_id}"
                )));
            }
        }
        let order: Order = response.json()?;
        variables::set("order_status", order.status.as_str());
        variables::set("order_eta", order.eta.clone());
        let exit = match order.status.as_str() {
            "shipped" => "shipped",
            "delivered" => "delivered",
            "processing" | "pending" => "processing",
            other => {
                return Err(Error::failed(format!(
                    "order {order_id} has unknown status {other:?}"
                )));
            }
        };
        Ok(Exit::to(exit).with_data(json!({ "order_id": order_id, "status": order.status })))
    }
}

export_element!(OrderStatus);
