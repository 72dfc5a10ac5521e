//! Whether the Redis user may `XADD` to the relay's streams, asked without writing: `ACL DRYRUN`
//! (Redis 7, admin users), else an `XADD` queued in `MULTI` and discarded, since Redis checks ACLs
//! when it queues a command, not when it executes it.

use redis::aio::MultiplexedConnection;
use redis::{RedisError, RedisResult, Value};

use super::NAME;
use crate::sink::publish_check::{list, Permission, Targets};
use crate::sink::SinkError;

/// A destination and the server's reason for refusing it.
type Denial = (String, String);

pub async fn check(
    config: &super::RedisConfig,
    targets: &Targets<'_>,
) -> Result<Permission, SinkError> {
    let mut connection = super::connect(config).await?.connection;
    let whoami: RedisResult<String> = redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async(&mut connection)
        .await;
    let user = match whoami {
        Ok(user) => Some(user),
        Err(e) if is_noperm(&e) => None,
        Err(e) if e.to_string().contains("unknown command") => {
            return Ok(Permission::Unverified {
                detail: format!(
                    "the server has no ACLs to ask ({e}); any client that logs in may XADD"
                ),
                fix: "nothing; Redis 6 or newer lets check verify the user's ACL".to_owned(),
            })
        }
        Err(e) => return Err(broker(e)),
    };
    if let Some(user) = &user {
        match dry_run(&mut connection, user, targets.destinations).await {
            Ok(denials) => return Ok(verdict(user, "ACL DRYRUN", denials, targets)),
            // Not an admin, or Redis 6 without DRYRUN: queuing still tells.
            Err(e) if is_refusal(&e) => {}
            Err(e) => return Err(broker(e)),
        }
    }
    let user = match user {
        Some(user) => user,
        None => config
            .client()?
            .get_connection_info()
            .redis_settings()
            .username()
            .unwrap_or("default")
            .to_owned(),
    };
    match queue_and_discard(&mut connection, targets.destinations).await {
        Ok(Some(denials)) => Ok(verdict(
            &user,
            "XADD queued in MULTI, discarded",
            denials,
            targets,
        )),
        Ok(None) => Ok(Permission::Unverified {
            detail: format!(
                "user {user} may run neither ACL DRYRUN nor MULTI, so XADD to {} cannot be tried without writing",
                list(targets.destinations)
            ),
            fix: format!("ACL SETUSER {user} +multi +discard (lets check queue an XADD and discard it)"),
        }),
        Err(e) => Err(broker(e)),
    }
}

async fn dry_run(
    connection: &mut MultiplexedConnection,
    user: &str,
    destinations: &[String],
) -> RedisResult<Vec<Denial>> {
    let mut denials = Vec::new();
    for destination in destinations {
        let answer: String = redis::cmd("ACL")
            .arg("DRYRUN")
            .arg(user)
            .arg("XADD")
            .arg(destination)
            .arg("*")
            .arg("f")
            .arg("v")
            .query_async(connection)
            .await?;
        if answer != "OK" {
            denials.push((destination.clone(), answer));
        }
    }
    Ok(denials)
}

/// The denials, or `None` when the user may not even start a transaction.
async fn queue_and_discard(
    connection: &mut MultiplexedConnection,
    destinations: &[String],
) -> RedisResult<Option<Vec<Denial>>> {
    // MULTI goes alone: were it refused, XADDs sent along with it would run for real.
    match redis::cmd("MULTI").query_async::<()>(connection).await {
        Err(e) if is_noperm(&e) => return Ok(None),
        result => result?,
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for destination in destinations {
        pipe.cmd("XADD").arg(destination).arg("*").arg("f").arg("v");
    }
    // Without DISCARD the queue still never runs: the connection closes without EXEC.
    pipe.cmd("DISCARD");
    let replies: Vec<RedisResult<Value>> = pipe.query_async(connection).await?;
    let mut denials = Vec::new();
    for (destination, reply) in destinations.iter().zip(replies) {
        match reply {
            Err(e) if is_noperm(&e) => denials.push((destination.clone(), e.to_string())),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    Ok(Some(denials))
}

fn verdict(user: &str, how: &str, denials: Vec<Denial>, targets: &Targets<'_>) -> Permission {
    if denials.is_empty() {
        return Permission::Granted {
            detail: format!(
                "user {user} may XADD to {} ({how})",
                list(targets.destinations)
            ),
        };
    }
    let refused: Vec<String> = denials.iter().map(|(d, _)| d.clone()).collect();
    let mut patterns = vec![targets.router.pattern("*", escape_glob)];
    let dead_letter = escape_glob(targets.dead_letter);
    if !patterns.contains(&dead_letter) {
        patterns.push(dead_letter);
    }
    Permission::Refused {
        detail: format!(
            "user {user} may not XADD to {}: {} ({how})",
            list(&refused),
            denials[0].1
        ),
        fix: format!("ACL SETUSER {user} +xadd ~{}", patterns.join(" ~")),
    }
}

/// A literal key as an ACL key pattern, which is a glob.
fn escape_glob(literal: &str) -> String {
    let mut escaped = String::with_capacity(literal.len());
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn is_noperm(error: &RedisError) -> bool {
    error.code() == Some("NOPERM")
}

/// The server answered with an error (unknown command, no permission), as opposed to a lost
/// connection.
fn is_refusal(error: &RedisError) -> bool {
    error.code().is_some()
}

fn broker(error: RedisError) -> SinkError {
    SinkError::Broker {
        sink: NAME,
        reason: format!("cannot ask about publishing: {error}"),
    }
}
