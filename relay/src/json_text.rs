//! JSON kept as the text the database wrote: parsing it into numbers would round every number
//! beyond f64's 53 bits (ids, amounts, epoch nanoseconds) and reject those beyond its range, so
//! header values and payloads are validated as JSON but carried digit for digit.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// The JSON text without whitespace outside strings, so that it fits on one line and reads as
/// `serde_json` would print it. Valid JSON holds no raw control characters inside strings, so
/// anything `char::is_ascii_whitespace` outside them is insignificant.
pub fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

/// A JSON object's members as text: strings unescaped, anything else (numbers, booleans, arrays,
/// objects) as its compact JSON text. `None` when `json` is not an object; `null` has no members.
pub fn object_members(json: &str) -> Option<Vec<(String, String)>> {
    if json.trim() == "null" {
        return Some(Vec::new());
    }
    let members: BTreeMap<String, &RawValue> = serde_json::from_str(json).ok()?;
    Some(
        members
            .into_iter()
            .map(|(key, raw)| {
                let value = serde_json::from_str::<String>(raw.get())
                    .unwrap_or_else(|_| compact(raw.get()));
                (key, value)
            })
            .collect(),
    )
}

/// `json` as a value to embed in a serialized document unchanged but compacted; `None` when it is
/// not JSON.
pub fn embeddable(json: &str) -> Option<Box<RawValue>> {
    serde_json::from_str::<&RawValue>(json).ok()?;
    RawValue::from_string(compact(json)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_every_digit() {
        let members = object_members(
            r#"{"big": 12345678901234567890123, "huge": 1e400, "id": "c-1", "n": [1.10, {"a": 2}]}"#,
        )
        .unwrap();
        assert_eq!(
            members,
            vec![
                ("big".into(), "12345678901234567890123".into()),
                ("huge".into(), "1e400".into()),
                ("id".into(), "c-1".into()),
                ("n".into(), "[1.10,{\"a\":2}]".into()),
            ]
        );
        assert_eq!(object_members("null"), Some(Vec::new()));
        assert_eq!(object_members("[1]"), None);
    }

    #[test]
    fn compacting_keeps_whitespace_inside_strings() {
        assert_eq!(
            compact("{\n \"a b\": \"x \\\" y\",\t\"c\": 1 }"),
            "{\"a b\":\"x \\\" y\",\"c\":1}"
        );
        assert_eq!(
            embeddable("{\"total\": 12345678901234567890.10}")
                .unwrap()
                .get(),
            "{\"total\":12345678901234567890.10}"
        );
        assert!(embeddable("not json").is_none());
    }
}
