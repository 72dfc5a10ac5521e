//! Connection errors as one log line: tokio-postgres's top-level message often hides the cause
//! ("db error"), while deadpool's and tokio-postgres's wrappers repeat their source's text in their
//! own, so printing every source would say the same cause two or three times.

use std::error::Error;

/// The error and its sources, each said once, e.g. `no database connection: error connecting to
/// server: Connection refused (os error 111)`.
pub fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    /// An error whose text may or may not already include its source's, as wrappers differ.
    #[derive(Debug)]
    struct Layer {
        text: &'static str,
        source: Option<Box<Layer>>,
    }

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.text)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.source.as_deref().map(|s| s as &(dyn Error + 'static))
        }
    }

    #[test]
    fn hidden_causes_are_added_and_repeated_ones_said_once() {
        let error = Layer {
            text: "no database connection: error connecting to server: refused",
            source: Some(Box::new(Layer {
                text: "error connecting to server: refused",
                source: Some(Box::new(Layer {
                    text: "refused",
                    source: None,
                })),
            })),
        };
        assert_eq!(
            chain(&error),
            "no database connection: error connecting to server: refused"
        );
        let hidden = Layer {
            text: "db error",
            source: Some(Box::new(Layer {
                text: "permission denied for table orders",
                source: None,
            })),
        };
        assert_eq!(
            chain(&hidden),
            "db error: permission denied for table orders"
        );
    }
}
