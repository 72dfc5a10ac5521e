//! Where further outbox columns go in a message, as Debezium's `table.fields.additional.placement`
//! says it: `column:header:alias`, `column:envelope:alias` or `column:partition`.

use std::fmt;

/// One column's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub column: String,
    pub place: Place,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A header (Redis: field) of this name.
    Header(String),
    /// A member of this name in an envelope `{"payload": …}` around the payload.
    Envelope(String),
    /// The Kafka partition number.
    Partition,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{entry:?}: {reason}; write column:header[:alias], column:envelope[:alias] or column:partition"
)]
pub struct PlacementError {
    entry: String,
    reason: &'static str,
}

impl Placement {
    /// Parses one entry; the alias defaults to the column's name.
    pub fn parse(entry: &str) -> Result<Placement, PlacementError> {
        let error = |reason| PlacementError {
            entry: entry.to_owned(),
            reason,
        };
        let parts: Vec<&str> = entry.split(':').collect();
        let (column, place, alias) = match parts[..] {
            [column, place] => (column, place, None),
            [column, place, alias] => (column, place, Some(alias)),
            _ => return Err(error("not two or three parts separated by ':'")),
        };
        if column.is_empty() || alias == Some("") {
            return Err(error("an empty column or alias"));
        }
        let alias = alias.unwrap_or(column).to_owned();
        let place = match place {
            "header" => Place::Header(alias),
            "envelope" if alias == "payload" => {
                return Err(error("the envelope's `payload` member holds the payload"))
            }
            "envelope" => Place::Envelope(alias),
            "partition" if parts.len() == 2 => Place::Partition,
            "partition" => return Err(error("a partition takes no alias")),
            _ => return Err(error("the place is not header, envelope or partition")),
        };
        Ok(Placement {
            column: column.to_owned(),
            place,
        })
    }

    /// Parses every entry, and refuses a second partition column.
    pub fn parse_all(entries: &[String]) -> Result<Vec<Placement>, PlacementError> {
        let placements = entries
            .iter()
            .map(|entry| Placement::parse(entry))
            .collect::<Result<Vec<_>, _>>()?;
        let mut partitions = placements.iter().filter(|p| p.place == Place::Partition);
        if let Some(second) = partitions.nth(1) {
            return Err(PlacementError {
                entry: format!("{}:partition", second.column),
                reason: "a second partition column",
            });
        }
        Ok(placements)
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::Header(alias) => write!(f, "{}:header:{alias}", self.column),
            Place::Envelope(alias) => write!(f, "{}:envelope:{alias}", self.column),
            Place::Partition => write!(f, "{}:partition", self.column),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debeziums_three_places() {
        let parse = |entry| Placement::parse(entry).map(|p| p.to_string());
        assert_eq!(parse("tenant:header").unwrap(), "tenant:header:tenant");
        assert_eq!(
            parse("type:header:eventType").unwrap(),
            "type:header:eventType"
        );
        assert_eq!(parse("v:envelope:version").unwrap(), "v:envelope:version");
        assert_eq!(parse("p:partition").unwrap(), "p:partition");
        for bad in [
            "tenant",
            "a:b:c:d",
            ":header",
            "a:header:",
            "a:body",
            "p:partition:x",
            "x:envelope:payload",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let twice = ["a:partition".to_owned(), "b:partition".to_owned()];
        assert!(Placement::parse_all(&twice).is_err());
    }
}
