//! Whether a queue is bound for each routing key the relay will publish with. AMQP cannot list
//! bindings, and a publish inside a rolled-back transaction is routed only at commit, so `check` asks
//! RabbitMQ's management HTTP API (`GET /api/exchanges/{vhost}/{exchange}/bindings/source` under
//! `rabbitmq.management_url`, by default port 15672 on the broker's host, with the AMQP URL's
//! credentials) when it answers.

use std::time::Duration;

use lapin::uri::AMQPUri;
use reqwest::Url;
use serde::Deserialize;

/// The management plugin's default HTTP port.
const MANAGEMENT_PORT: u16 = 15672;
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the management API said about the routing keys.
#[derive(Debug, PartialEq, Eq)]
pub enum Bindings {
    /// A queue (or another exchange) is bound for every key.
    Bound { api: String },
    /// No binding matches these keys.
    Unbound { api: String, keys: Vec<String> },
    /// The API did not answer, or refused; `reason` names where and why.
    Unknown { reason: String },
}

#[derive(Deserialize)]
struct Binding {
    routing_key: String,
}

/// Asks `management_url` (or the default on the host of `uri`) about `keys` on `exchange`.
pub async fn check(
    uri: &AMQPUri,
    management_url: Option<&str>,
    exchange: &str,
    keys: &[String],
) -> Bindings {
    let base = match management_url {
        Some(url) => format!("{}/", url.trim_end_matches('/')),
        None => format!(
            "http://{}:{MANAGEMENT_PORT}/",
            uri.authority.host.trim_matches(['[', ']'])
        ),
    };
    let unreachable = |why: String| Bindings::Unknown {
        reason: format!("management API not reachable at {base}: {why}"),
    };
    let mut url = match Url::parse(&base) {
        Ok(url) => url,
        Err(error) => return unreachable(error.to_string()),
    };
    url.path_segments_mut()
        .expect("an http URL has a path")
        .extend([
            "api",
            "exchanges",
            uri.vhost.as_str(),
            exchange,
            "bindings",
            "source",
        ]);
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(client) => client,
        Err(error) => return unreachable(error.to_string()),
    };
    let userinfo = &uri.authority.userinfo;
    let response = match client
        .get(url)
        .basic_auth(&userinfo.username, Some(&userinfo.password))
        .send()
        .await
    {
        Ok(response) => response,
        // reqwest's own message says only "error sending request"; the cause names the refusal.
        Err(error) => {
            let cause = std::error::Error::source(&error)
                .and_then(std::error::Error::source)
                .map_or_else(|| error.to_string(), ToString::to_string);
            return unreachable(cause);
        }
    };
    let status = response.status();
    if !status.is_success() {
        return Bindings::Unknown {
            reason: format!(
                "the management API at {base} answered {status} to user {}",
                userinfo.username
            ),
        };
    }
    let bindings: Vec<Binding> = match response.json().await {
        Ok(bindings) => bindings,
        Err(error) => return unreachable(format!("unexpected answer: {error}")),
    };
    let unbound: Vec<String> = keys
        .iter()
        .filter(|key| !bindings.iter().any(|b| topic_matches(&b.routing_key, key)))
        .cloned()
        .collect();
    let api = base.trim_end_matches('/').to_owned();
    if unbound.is_empty() {
        Bindings::Bound { api }
    } else {
        Bindings::Unbound { api, keys: unbound }
    }
}

/// A topic exchange's match: words split on `.`, `*` stands for one word, `#` for zero or more.
fn topic_matches(pattern: &str, key: &str) -> bool {
    fn matches(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => (0..=key.len()).any(|skip| matches(rest, &key[skip..])),
            Some((&word, rest)) => key.split_first().is_some_and(|(first, tail)| {
                (word == "*" || word == *first) && matches(rest, tail)
            }),
        }
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = key.split('.').collect();
    matches(&pattern, &key)
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn topic_patterns_match_as_rabbitmq_routes() {
        for (pattern, key) in [
            ("#", "outbox.event.order"),
            ("outbox.event.order", "outbox.event.order"),
            ("outbox.event.*", "outbox.event.order"),
            ("outbox.#", "outbox.event.order"),
            ("outbox.#.order", "outbox.order"),
            ("*.event.*", "outbox.event.order"),
        ] {
            assert!(topic_matches(pattern, key), "{pattern} {key}");
        }
        for (pattern, key) in [
            ("outbox.event.invoice", "outbox.event.order"),
            ("outbox.*", "outbox.event.order"),
            ("outbox.event.order.*", "outbox.event.order"),
            ("", "outbox.event.order"),
        ] {
            assert!(!topic_matches(pattern, key), "{pattern} {key}");
        }
    }
}
