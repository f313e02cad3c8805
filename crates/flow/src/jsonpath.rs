//! JSONPath (RFC 9535) for reading response bodies into flow variables, on `serde_json_path`.
//!
//! The compliance suite (`tests/jsonpath_cts.rs`) runs through [`JsonPath`], so what passes
//! there is what flows get.

use serde_json::Value;

/// A parsed JSONPath expression.
#[derive(Clone, Debug)]
pub struct JsonPath {
    text: String,
    path: serde_json_path::JsonPath,
}

impl JsonPath {
    /// Parses an expression such as `$.loyalty.points`; the error says where it went wrong
    /// and, for a path written loosely (`$ loyalty_points`, `loyalty.points`, `$name`), what
    /// to write instead.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        serde_json_path::JsonPath::parse(text)
            .map(|path| JsonPath {
                text: text.to_owned(),
                path,
            })
            .map_err(|e| {
                let hint = Self::repaired(text)
                    .map(|fixed| format!("; write {fixed:?}"))
                    .unwrap_or_default();
                format!("{text:?} is not a JSONPath expression (RFC 9535): {e}{hint}")
            })
    }

    /// The expression meant by a loosely written path, when it is one: the name after a
    /// missing or detached `$.`.
    fn repaired(text: &str) -> Option<String> {
        let rest = text
            .trim()
            .trim_start_matches('$')
            .trim_start()
            .trim_start_matches('.');
        let fixed = format!("$.{rest}");
        (!rest.is_empty() && serde_json_path::JsonPath::parse(&fixed).is_ok()).then_some(fixed)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Every node the expression selects, in document order.
    pub fn query<'a>(&self, value: &'a Value) -> Vec<&'a Value> {
        self.path.query(value).all()
    }

    /// The single scalar value the expression selects, or why there is none (in which case
    /// the variable is set to null).
    pub fn select_scalar(&self, value: &Value) -> Result<Value, String> {
        let found = self.query(value);
        match found.as_slice() {
            [] => Err(format!("{} selects nothing", self.text)),
            [one] if one.is_array() || one.is_object() => Err(format!(
                "{} selects {}, not a single value",
                self.text,
                if one.is_array() {
                    "an array"
                } else {
                    "an object"
                }
            )),
            [one] => Ok((*one).clone()),
            many => Err(format!(
                "{} selects {} values, not one",
                self.text,
                many.len()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_scalar_or_a_reason() {
        let doc = json!({"points": 12, "tags": ["a", "b"], "user": {"name": "Ada"}, "none": null});
        let sel = |p: &str| JsonPath::parse(p).unwrap().select_scalar(&doc);
        assert_eq!(sel("$.points"), Ok(json!(12)));
        assert_eq!(sel("$.user.name"), Ok(json!("Ada")));
        assert_eq!(sel("$.none"), Ok(Value::Null));
        assert_eq!(sel("$.missing"), Err("$.missing selects nothing".into()));
        assert_eq!(
            sel("$.tags"),
            Err("$.tags selects an array, not a single value".into())
        );
        assert_eq!(
            sel("$.user"),
            Err("$.user selects an object, not a single value".into())
        );
        assert_eq!(
            sel("$.tags[*]"),
            Err("$.tags[*] selects 2 values, not one".into())
        );
        assert!(
            JsonPath::parse("$.[")
                .unwrap_err()
                .contains("not a JSONPath")
        );
    }

    #[test]
    fn a_loosely_written_path_gets_what_to_write() {
        for (written, meant) in [
            ("$ loyalty_points", "$.loyalty_points"),
            ("loyalty.points", "$.loyalty.points"),
            ("$name", "$.name"),
        ] {
            let err = JsonPath::parse(written).unwrap_err();
            assert!(err.ends_with(&format!("; write {meant:?}")), "{err}");
        }
        let err = JsonPath::parse("$[").unwrap_err();
        assert!(!err.contains("; write"), "{err}");
    }
}
