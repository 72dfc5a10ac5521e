//! The outbox table's name as given on the command line, checked and quoted: it is interpolated
//! into SQL, so only plain identifiers are accepted.

use std::fmt;

use crate::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    schema: String,
    name: String,
}

impl Table {
    /// `name` or `schema.name`; an unqualified name is in `public`.
    pub fn parse(text: &str) -> Result<Table, Error> {
        let (schema, name) = text.split_once('.').unwrap_or(("public", text));
        let identifier = |s: &str| {
            s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !identifier(schema) || !identifier(name) {
            return Err(Error::TableName(text.to_owned()));
        }
        Ok(Table {
            schema: schema.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// Quoted for SQL: `"schema"."name"`.
impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\".\"{}\"", self.schema, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_are_quoted_and_anything_else_is_refused() {
        assert_eq!(
            Table::parse("outbox").unwrap().to_string(),
            r#""public"."outbox""#
        );
        assert_eq!(
            Table::parse("sales.outbox_2").unwrap().to_string(),
            r#""sales"."outbox_2""#
        );
        for bad in ["", "a.b.c", "1outbox", "out box", "x\";drop", "."] {
            assert!(Table::parse(bad).is_err(), "{bad}");
        }
    }
}
