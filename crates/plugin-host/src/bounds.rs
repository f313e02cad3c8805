//! Bounds on what a plugin hands back: outcome data, exit id, error reason, variables and log.
//! Every WIT version's bindings go through these checks (and the capabilities that use them),
//! so each version enforces the same limits with the same words.

use serde_json::Value;
use std::borrow::Cow;

/// Bytes of a plugin's own text (an exit id, a name, a panic message) quoted in a reason.
pub const PREVIEW_BYTES: usize = 120;

/// A plugin handed back more than an operator limit allows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what}: {seen} {unit}, over limits.{setting} = {limit}; the operator can raise it in flowhost.toml{preview}"
)]
pub struct LimitExceeded {
    /// What was too large, in words (`outcome data`, ``variable `big` ``).
    pub what: String,
    /// The size or count seen.
    pub seen: u64,
    /// `bytes` or `variables`.
    pub unit: &'static str,
    /// The setting under `[limits]` that sets it.
    pub setting: &'static str,
    /// Its value.
    pub limit: u64,
    /// `; it begins "…"` when the text itself helps to find it, else empty.
    preview: String,
}

impl LimitExceeded {
    /// `seen` bytes of `what` over `setting = limit`.
    pub fn bytes(what: impl Into<String>, seen: u64, setting: &'static str, limit: u64) -> Self {
        LimitExceeded {
            what: what.into(),
            seen,
            unit: "bytes",
            setting,
            limit,
            preview: String::new(),
        }
    }

    /// The same, quoting the start of the text.
    pub fn quoting(mut self, text: &str) -> Self {
        self.preview = format!("; it begins {:?}", preview(text, PREVIEW_BYTES));
        self
    }

    /// The same with `f` applied to the quoted text (to redact secrets from it).
    pub(crate) fn map_preview(mut self, f: impl Fn(&str) -> String) -> Self {
        self.preview = f(&self.preview);
        self
    }

    /// `seen` variables set in one execution over `max_variables_set`.
    pub fn variables_set(seen: u64, limit: u64) -> Self {
        LimitExceeded {
            what: "variables set in one execution".into(),
            seen,
            unit: "variables",
            setting: "max_variables_set",
            limit,
            preview: String::new(),
        }
    }
}

/// At most `max` bytes of `text`, cut at a character boundary, with `…` when cut.
pub fn preview(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

/// `text` cut to `max` bytes with a note that names the limit, or as it is when it fits: for
/// reasons a plugin writes, which are worth reading even when too long.
pub fn cut_reason(text: String, max: u64) -> String {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if text.len() <= max {
        return text;
    }
    format!(
        "{} [cut at limits.max_error_bytes = {max} of {} bytes; the operator can raise it in flowhost.toml]",
        preview(&text, max),
        text.len()
    )
}

/// The length of `value` as JSON text, without building the text.
pub fn json_len(value: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn previews_cut_at_a_character_boundary() {
        assert_eq!(preview("short", 10), "short");
        assert_eq!(preview("ééé", 3), "é…");
        let cut = cut_reason("x".repeat(5000), 4096);
        assert!(cut.starts_with(&"x".repeat(4096)));
        assert!(cut.ends_with(
            "… [cut at limits.max_error_bytes = 4096 of 5000 bytes; the operator can raise it in flowhost.toml]"
        ));
        assert_eq!(cut_reason("fine".into(), 4096), "fine");
    }

    #[test]
    fn reasons_name_the_size_the_setting_and_the_start() {
        let e = LimitExceeded::bytes("exit id", 31_457_280, "max_exit_bytes", 128)
            .quoting(&"x".repeat(1000));
        let text = e.to_string();
        assert!(
            text.starts_with("exit id: 31457280 bytes, over limits.max_exit_bytes = 128; the operator can raise it in flowhost.toml; it begins \"xxx"),
            "{text}"
        );
        assert!(text.len() < 300, "{text}");
        assert_eq!(
            LimitExceeded::variables_set(101, 100).to_string(),
            "variables set in one execution: 101 variables, over limits.max_variables_set = 100; the operator can raise it in flowhost.toml"
        );
        assert_eq!(json_len(&json!({"a": [1, "b"]})), 13);
        assert_eq!(json_len(&json!("é")), 4);
    }
}
