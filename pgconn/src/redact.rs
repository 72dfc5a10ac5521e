//! Passwords out of connection strings, before they reach a log line or an error message.

/// The URL or libpq keyword string with every password replaced, for logs and error messages:
/// the userinfo of a URL (a password may contain `/` or `@`), a `password=` query parameter, and a
/// `password=` keyword.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_keyword_password(url);
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    // The last '@' before the query ends the userinfo, whatever the password holds.
    let mut redacted = match before_query.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{before_query}"),
        },
        None => format!("{scheme}://{before_query}"),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        redacted = format!("{redacted}?{}", pairs.join("&"));
    }
    redacted
}

/// `password=secret` or `password='se cret'` in a libpq keyword string, wherever the keyword
/// stands: other words may contain `password` (`user=password_admin`).
fn redact_keyword_password(text: &str) -> String {
    let mut redacted = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("password") {
        let after_key = &rest[start + "password".len()..];
        let at_word_start = rest[..start]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace);
        let eq = after_key
            .find('=')
            .filter(|i| after_key[..*i].trim().is_empty());
        let (Some(eq), true) = (eq, at_word_start) else {
            redacted.push_str(&rest[..start + "password".len()]);
            rest = after_key;
            continue;
        };
        let value = after_key[eq + 1..].trim_start();
        let value_len = if let Some(quoted) = value.strip_prefix('\'') {
            let mut escaped = false;
            let close = quoted
                .char_indices()
                .find(|&(_, c)| {
                    let end = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                })
                .map_or(quoted.len(), |(i, _)| i + 1);
            (close + 1).min(value.len())
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        redacted.push_str(&rest[..rest.len() - value.len()]);
        redacted.push_str("***");
        rest = &value[value_len..];
    }
    redacted.push_str(rest);
    redacted
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn hides_passwords_only() {
        assert_eq!(
            redact_url("postgres://app:s3cr@t@db:5432/orders?sslmode=require"),
            "postgres://app:***@db:5432/orders?sslmode=require"
        );
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("postgres://app@db/orders"),
            "postgres://app@db/orders"
        );
        assert_eq!(redact_url("host=db user=app"), "host=db user=app");
        assert_eq!(
            redact_url("postgres://relay:hun/ter@2@db:5432/orders"),
            "postgres://relay:***@db:5432/orders"
        );
        assert_eq!(
            redact_url("postgres://relay@db/orders?sslmode=require&password=hunter2"),
            "postgres://relay@db/orders?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("host=db password=hunter2 sslmode=bogus"),
            "host=db password=*** sslmode=bogus"
        );
        assert_eq!(
            redact_url("host=db password = 'hun ter\\'2' dbname=x"),
            "host=db password = *** dbname=x"
        );
    }

    #[test]
    fn hides_the_password_of_multi_host_strings() {
        assert_eq!(
            redact_url(
                "postgres://relay:s3cr@t@h1:5432,h2:5433/orders?target_session_attrs=read-write"
            ),
            "postgres://relay:***@h1:5432,h2:5433/orders?target_session_attrs=read-write"
        );
        assert_eq!(
            redact_url("host=h1,h2 port=5432,5433 user=password_admin password=hunter2 target_session_attrs=primary"),
            "host=h1,h2 port=5432,5433 user=password_admin password=*** target_session_attrs=primary"
        );
        assert_eq!(
            redact_url("host=h1 password='a b' passwordless=1 password=two"),
            "host=h1 password=*** passwordless=1 password=***"
        );
    }
}
