//! Placeholders in text, with the host's syntax: `{{variable}}`, `{{variable.field}}`,
//! `{{person.email}}`, `{{person.firstName}}` (any attribute).
//!
//! ```no_run
//! # fn demo(ctx: &flowhost_sdk::Context) -> Result<(), flowhost_sdk::Error> {
//! let prompt = flowhost_sdk::template::render("Write to {{person.firstName}} about {{topic}}", ctx)?;
//! # Ok(()) }
//! ```

use crate::{Context, Error, Json, variables};

/// Fills every placeholder in `text`. A value that is not set, or null, is an error naming
/// it, never an empty string.
pub fn render(text: &str, ctx: &Context) -> Result<String, Error> {
    render_with(text, |name| lookup(name, ctx))
}

/// Fills placeholders from `lookup`, which gets the trimmed text between the braces.
pub fn render_with(
    text: &str,
    mut lookup: impl FnMut(&str) -> Option<Json>,
) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| Error::config(format!("unclosed placeholder in {text:?}")))?;
        let name = after[..close].trim();
        match lookup(name) {
            Some(Json::Null) | None => {
                return Err(Error::failed(format!(
                    "{{{{{name}}}}} has no value; set it earlier in the flow"
                )));
            }
            Some(Json::String(s)) => out.push_str(&s),
            Some(other) => out.push_str(&other.to_string()),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup(name: &str, ctx: &Context) -> Option<Json> {
    let person = ctx.person();
    if let Some(field) = name.strip_prefix("person.") {
        return match field {
            "id" => Some(Json::String(person.id.clone())),
            "email" => person.email().map(|e| Json::String(e.to_owned())),
            "phone" => person.phone().map(|p| Json::String(p.to_owned())),
            "externalId" => person.external_id.clone().map(Json::String),
            attribute => person.attribute(attribute).cloned(),
        };
    }
    let mut parts = name.split('.');
    let mut value = variables::get(parts.next()?)?;
    for key in parts {
        value = match value {
            Json::Object(mut map) => map.remove(key)?,
            Json::Array(mut items) => {
                let i: usize = key.parse().ok()?;
                (i < items.len()).then(|| items.swap_remove(i))?
            }
            _ => return None,
        };
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::render_with;
    use crate::json;

    #[test]
    fn fills_and_refuses_missing_values() {
        let vars = json!({"topic": "Flows", "n": 3, "gone": null});
        let get = |name: &str| vars.get(name).cloned();
        assert_eq!(render_with("{{ topic }} x{{n}}", get).unwrap(), "Flows x3");
        assert!(
            render_with("{{gone}}", get)
                .unwrap_err()
                .message()
                .contains("{{gone}} has no value")
        );
        assert!(render_with("{{topic", get).is_err());
    }
}
