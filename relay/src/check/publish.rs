//! The `publish permission` line of `outbox-relay check`: asks the broker whether the relay's
//! credentials may publish to the destinations it will use, without delivering anything. Those are
//! the dead-letter destination and what the template yields for the aggregate types in the outbox
//! (or the template itself when it has no placeholder).

use std::time::Duration;

use postgres_protocol::escape::escape_identifier;
use tokio_postgres::Client;

use super::{Finding, Status};
use crate::config::Config;
use crate::router::{Field, Router};
use crate::sink::publish_check::{self, Permission, Targets};

const ITEM: &str = "publish permission";

/// Bounds the destinations, and so the line's length, for outboxes with many aggregate types.
const TYPES_LIMIT: usize = 20;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The line for the configured sink; none for a sink that needs no permission.
pub async fn check(config: &Config, client: Option<&Client>) -> Option<Finding> {
    let router = match config.router() {
        Ok(router) => router,
        Err(error) => {
            return Some(Finding::fail(
                ITEM,
                error.to_string(),
                "fix destination (--destination)",
            ))
        }
    };
    let (destinations, listing) = destinations(config, &router, client).await;
    let targets = Targets {
        destinations: &destinations,
        dead_letter: &config.dead_letter_destination,
        router: &router,
    };
    let answer =
        tokio::time::timeout(TIMEOUT, publish_check::check_publish(config, &targets)).await;
    let mut finding = match answer {
        Err(_) => Finding::fail(
            ITEM,
            format!("the broker did not answer within {TIMEOUT:?}"),
            "check the broker's health and the relay's network path to it",
        ),
        Ok(None) => return None,
        Ok(Some(Err(error))) => Finding::fail(
            ITEM,
            format!("cannot ask: {error}"),
            "check the broker settings and the user's rights",
        ),
        Ok(Some(Ok(Permission::Granted { detail }))) => Finding::ok(ITEM, detail),
        Ok(Some(Ok(Permission::Unverified { detail, fix }))) => Finding::warn(ITEM, detail, fix),
        Ok(Some(Ok(Permission::Refused { detail, fix }))) => Finding::fail(ITEM, detail, fix),
    };
    match listing {
        Listing::Complete => {}
        Listing::Empty => finding
            .detail
            .push_str("; the outbox has no rows yet, so no aggregate type to route"),
        Listing::Truncated => finding
            .detail
            .push_str(&format!("; the first {TYPES_LIMIT} aggregate types only")),
        Listing::Unreadable(reason) => {
            finding
                .detail
                .push_str(&format!(
                    "; checked the dead-letter destination only: cannot list the aggregate types to route ({reason})"
                ));
            if finding.status == Status::Ok {
                finding.status = Status::Warn;
                finding.fix = Some(format!(
                    "nothing for the relay; to have check cover the routed destinations, run it as a role that may SELECT from {}",
                    config.outbox.table
                ));
            }
        }
    }
    Some(finding)
}

/// How completely the template's destinations were listed.
enum Listing {
    Complete,
    Empty,
    Truncated,
    Unreadable(String),
}

/// The dead-letter destination first, then the routed ones.
async fn destinations(
    config: &Config,
    router: &Router,
    client: Option<&Client>,
) -> (Vec<String>, Listing) {
    let mut destinations = vec![config.dead_letter_destination.clone()];
    let mut add = |destination: String| {
        if !destinations.contains(&destination) {
            destinations.push(destination);
        }
    };
    if router.is_fixed() {
        add(router.destination(|_| None));
        return (destinations, Listing::Complete);
    }
    let Some(client) = client else {
        return (
            destinations,
            Listing::Unreadable("the database is unreachable".to_owned()),
        );
    };
    let columns = &config.outbox.columns;
    let fields = router.fields();
    let list: Vec<String> = fields
        .iter()
        .map(|field| {
            let column = match field {
                Field::AggregateType => &columns.aggregate_type,
                Field::EventType => &columns.event_type,
                Field::Column(column) => column,
            };
            format!("{}::text", escape_identifier(column))
        })
        .collect();
    let query = format!(
        "SELECT DISTINCT {} FROM {} LIMIT {}",
        list.join(", "),
        config.outbox.quoted_name(),
        TYPES_LIMIT + 1
    );
    let rows = match client.query(&query, &[]).await {
        Ok(rows) => rows,
        Err(error) => {
            let reason = error
                .as_db_error()
                .map_or_else(|| error.to_string(), |e| e.message().to_owned());
            return (destinations, Listing::Unreadable(reason));
        }
    };
    let listing = match rows.len() {
        0 => Listing::Empty,
        n if n > TYPES_LIMIT => Listing::Truncated,
        _ => Listing::Complete,
    };
    for row in rows.iter().take(TYPES_LIMIT) {
        add(router.destination(|field| {
            let index = fields.iter().position(|f| f == field)?;
            row.get::<_, Option<&str>>(index)
        }));
    }
    (destinations, listing)
}
