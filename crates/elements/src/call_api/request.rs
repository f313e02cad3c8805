//! Building the request from flow data: placeholders in the URL, headers and body; JSON or
//! form encoding.

use super::*;

impl CallApi {
    pub(super) fn render(&self, scope: &Scope<'_>) -> Result<BufferedRequest, TemplateError> {
        let url = self.url.render(scope)?;
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            headers.push((name.clone(), value.render(scope)?));
        }
        let body = match &self.body {
            Body::None => None,
            Body::Json(t) => {
                Some(serde_json::to_vec(&t.render(scope)?).expect("JSON values serialize"))
            }
            Body::Form(pairs) => {
                let mut rendered = Vec::with_capacity(pairs.len());
                for (k, v) in pairs {
                    let text = match v.render(scope)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    rendered.push((k.clone(), text));
                }
                Some(form_encode(&rendered).into_bytes())
            }
        };
        Ok(BufferedRequest {
            method: self.method.to_string(),
            url,
            headers,
            body,
            timeout: self.timeout,
            max_redirects: self.shared.max_redirects,
        })
    }
}

/// Form encoding (`application/x-www-form-urlencoded`).
fn form_encode(pairs: &[(String, String)]) -> String {
    pub(super) fn enc(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(k, &mut out);
        out.push('=');
        enc(v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::form_encode;

    #[test]
    pub(super) fn form_encoding_escapes_reserved_characters() {
        let pairs = [
            ("name".to_owned(), "Ada Lovelace".to_owned()),
            ("q".to_owned(), "a&b=c/d+é".to_owned()),
        ];
        assert_eq!(
            form_encode(&pairs),
            "name=Ada+Lovelace&q=a%26b%3Dc%2Fd%2B%C3%A9"
        );
    }
}
