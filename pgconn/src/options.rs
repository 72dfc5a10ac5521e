//! The keywords of a libpq connection string that tokio-postgres does not know, or knows only in
//! part: `sslmode` beyond disable/prefer/require, `sslrootcert`, `sslcert`, `sslkey`, and
//! `target_session_attrs` beyond any/read-write. They are taken out so that the rest parses as
//! before.

use std::path::PathBuf;

/// The options of a connection string that pgconn reads itself, and the rest.
pub(crate) struct LibpqOptions {
    pub(crate) rest: String,
    pub(crate) target_session_attrs: Option<String>,
    pub(crate) ssl_mode: Option<String>,
    pub(crate) root_cert: Option<PathBuf>,
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
}

/// Splits `sslmode`, `sslrootcert`, `sslcert`, `sslkey` and `target_session_attrs` off a URL's
/// query or a key=value string.
pub(crate) fn take_libpq_options(url: &str) -> LibpqOptions {
    let mut ssl_mode = None;
    let mut target_session_attrs = None;
    let (mut root_cert, mut client_cert, mut client_key) = (None, None, None);
    let mut take = |key: &str, value: &str| {
        let slot = match key {
            "sslmode" => {
                ssl_mode = Some(value.to_owned());
                return true;
            }
            "target_session_attrs" => {
                target_session_attrs = Some(value.to_owned());
                return true;
            }
            "sslrootcert" => &mut root_cert,
            "sslcert" => &mut client_cert,
            "sslkey" => &mut client_key,
            _ => return false,
        };
        *slot = Some(PathBuf::from(value));
        true
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(key, &percent_decode(value))
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut rest = String::new();
        for token in key_value_tokens(url) {
            let (key, value) = token.split_once('=').unwrap_or((token, ""));
            let value = value.trim_matches('\'');
            if !take(key.trim(), value) {
                rest.push_str(token);
                rest.push(' ');
            }
        }
        rest.trim_end().to_owned()
    };
    LibpqOptions {
        rest,
        target_session_attrs,
        ssl_mode,
        root_cert,
        client_cert,
        client_key,
    }
}

/// `key=value` tokens of a libpq keyword string, quotes kept so the rest parses as before.
fn key_value_tokens(s: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut start = None;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\'' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if let Some(begin) = start.take() {
                    tokens.push(&s[begin..i]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    if let Some(begin) = start {
        tokens.push(&s[begin..]);
    }
    tokens
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|&b| hex(b)),
            bytes.get(i + 2).and_then(|&b| hex(b)),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_libpq_tls_options_out_of_urls() {
        let options = take_libpq_options("postgres://u:p@db:5432/app?sslmode=verify-full&connect_timeout=5&sslrootcert=%2Fetc%2Fca.pem&sslcert=/etc/c.pem&sslkey=/etc/k.pem");
        assert_eq!(options.rest, "postgres://u:p@db:5432/app?connect_timeout=5");
        assert_eq!(options.ssl_mode.as_deref(), Some("verify-full"));
        assert_eq!(options.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(options.client_cert, Some(PathBuf::from("/etc/c.pem")));
        assert_eq!(options.client_key, Some(PathBuf::from("/etc/k.pem")));
        let options = take_libpq_options("postgres://db/app?sslmode=disable");
        assert_eq!(
            (
                options.rest.as_str(),
                options.ssl_mode.as_deref(),
                options.root_cert
            ),
            ("postgres://db/app", Some("disable"), None)
        );
    }

    #[test]
    fn takes_libpq_tls_options_out_of_keyword_strings() {
        let options = take_libpq_options(
            "host=db password='a b\\' c' sslmode=verify-ca sslrootcert='/etc/ca.pem' sslkey=/k dbname=app",
        );
        assert_eq!(options.rest, "host=db password='a b\\' c' dbname=app");
        assert_eq!(options.ssl_mode.as_deref(), Some("verify-ca"));
        assert_eq!(options.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(options.client_key, Some(PathBuf::from("/k")));
    }

    #[test]
    fn takes_target_session_attrs_out_of_both_forms() {
        let options = take_libpq_options(
            "postgres://u:p@h1:5432,h2:5433/app?target_session_attrs=primary&connect_timeout=3",
        );
        assert_eq!(
            options.rest,
            "postgres://u:p@h1:5432,h2:5433/app?connect_timeout=3"
        );
        assert_eq!(options.target_session_attrs.as_deref(), Some("primary"));
        let options = take_libpq_options(
            "host=h1,h2 port=5432,5433 target_session_attrs=read-write dbname=app",
        );
        assert_eq!(options.rest, "host=h1,h2 port=5432,5433 dbname=app");
        assert_eq!(options.target_session_attrs.as_deref(), Some("read-write"));
    }
}
