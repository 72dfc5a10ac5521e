//! The `publish permission` line of `outbox-relay check` against real brokers: a user who may not
//! publish to the relay's destinations is named with the fix, and check exits non-zero; once the
//! printed fix is applied the line passes. Nothing reaches consumers either way. The vhost of a
//! RabbitMQ URL is honoured by check's fix and by the relay's publishing.

use crate::support;

use std::process::{Command, Output};
use std::time::Duration;

use harness::{Kafka, Postgres, RabbitMq, Redis};
use lapin::options::{
    BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

/// A database whose outbox holds rows of one aggregate type, `order`.
async fn database_with_orders() -> Postgres {
    let pg = support::outbox_database().await;
    pg.client()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
             VALUES (gen_random_uuid(), 'order', '1', 'OrderPlaced', '{}'),
                    (gen_random_uuid(), 'order', '2', 'OrderPlaced', '{}')",
        )
        .await
        .unwrap();
    pg
}

/// The report, and whether check exited 0.
fn check(pg: &Postgres, extra: &[&str]) -> (String, bool) {
    let Output { stdout, status, .. } = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["check", "--database-url", &pg.url()])
        .args(extra)
        .output()
        .unwrap();
    (String::from_utf8(stdout).unwrap(), status.success())
}

fn line<'a>(report: &'a str, prefix: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{report}"))
}

fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &redis.port().to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// `ACL SETUSER …` as check prints it, split into redis-cli arguments.
fn acl_fix(report: &str) -> Vec<String> {
    let fix = line(report, "  publish permission: ")
        .trim_start_matches("  publish permission: ")
        .to_owned();
    assert!(fix.starts_with("ACL SETUSER "), "{report}");
    fix.split(' ').map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_user_without_xadd_on_the_streams_fails_until_the_printed_acl_fix() {
    let pg = database_with_orders().await;
    let redis = Redis::start().unwrap();
    let port = redis.port();
    let run = |user: &str| {
        let url = format!("redis://{user}:pw@127.0.0.1:{port}");
        check(&pg, &["--sink", "redis", "--redis-url", &url])
    };

    // A least-privileged user may not run ACL DRYRUN; check queues XADDs in MULTI and discards them.
    redis_cli(
        &redis,
        &[
            "ACL", "SETUSER", "relay", "on", ">pw", "+ping", "+multi", "+discard", "+xadd",
            "~other.*",
        ],
    );
    let (report, ok) = run("relay");
    assert!(!ok, "{report}");
    assert!(
        line(&report, "publish permission")
            .contains("FAIL  user relay may not XADD to outbox.dlq, outbox.event.order: NoPerm: this user has no permissions"),
        "{report}"
    );
    assert!(
        report
            .contains("  publish permission: ACL SETUSER relay +xadd ~outbox.event.* ~outbox.dlq"),
        "{report}"
    );
    let fix = acl_fix(&report);
    redis_cli(&redis, &fix.iter().map(String::as_str).collect::<Vec<_>>());
    let (report, ok) = run("relay");
    assert!(ok, "{report}");
    assert!(
        line(&report, "publish permission").contains(
            "ok    user relay may XADD to outbox.dlq, outbox.event.order (XADD queued in MULTI, discarded)"
        ),
        "{report}"
    );

    // An admin user is asked with ACL DRYRUN.
    redis_cli(
        &redis,
        &["ACL", "SETUSER", "admin", "on", ">pw", "+@all", "~other.*"],
    );
    let (report, ok) = run("admin");
    assert!(!ok, "{report}");
    assert!(
        line(&report, "publish permission").contains(
            "FAIL  user admin may not XADD to outbox.dlq, outbox.event.order: This user has no permissions to access the 'outbox.dlq' key (ACL DRYRUN)"
        ),
        "{report}"
    );
    redis_cli(&redis, &["ACL", "SETUSER", "admin", "~outbox.*"]);
    let (report, ok) = run("admin");
    assert!(ok, "{report}");
    assert!(
        line(&report, "publish permission").contains("(ACL DRYRUN)"),
        "{report}"
    );

    // A user who may run neither cannot be checked without writing: a warning, not a failure.
    redis_cli(
        &redis,
        &[
            "ACL",
            "SETUSER",
            "bare",
            "on",
            ">pw",
            "+ping",
            "+xadd",
            "~outbox.*",
        ],
    );
    let (report, ok) = run("bare");
    assert!(ok, "{report}");
    assert!(
        line(&report, "publish permission")
            .contains("WARN  user bare may run neither ACL DRYRUN nor MULTI"),
        "{report}"
    );
    assert!(
        report.contains("ACL SETUSER bare +multi +discard"),
        "{report}"
    );

    assert_eq!(redis_cli(&redis, &["DBSIZE"]), "0", "check wrote to Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_user_without_write_permission_fails_until_the_printed_fix_and_nothing_is_routed()
{
    let pg = database_with_orders().await;
    let rabbitmq = RabbitMq::start().unwrap();
    rabbitmq.ctl(&["add_user", "relay", "pw"]).unwrap();
    // May declare the exchange (the broker line) but not publish.
    rabbitmq
        .ctl(&["set_permissions", "-p", "/", "relay", ".*", "", ".*"])
        .unwrap();

    // A consumer's queue bound to every routing key: it must stay empty.
    let connection = Connection::connect(&rabbitmq.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            "outbox".into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            "consumer".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            "consumer".into(),
            "outbox".into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let url = format!("amqp://relay:pw@127.0.0.1:{}/%2f", rabbitmq.port());
    let run = || check(&pg, &["--sink", "rabbitmq", "--rabbitmq-url", &url]);
    let (report, ok) = run();
    assert!(!ok, "{report}");
    assert!(line(&report, "broker").contains("ok"), "{report}");
    assert!(
        line(&report, "publish permission").contains(
            "FAIL  user relay may not publish to exchange outbox with routing keys outbox.dlq, outbox.event.order: ACCESS_REFUSED"
        ),
        "{report}"
    );
    let expected_fix = r"rabbitmqctl set_permissions -p '/' relay '^(outbox|outbox\.dlq)$' '^(outbox|outbox\.dlq)$' '^outbox$'";
    assert!(report.contains(expected_fix), "{report}");

    rabbitmq
        .ctl(&[
            "set_permissions",
            "-p",
            "/",
            "relay",
            r"^(outbox|outbox\.dlq)$",
            r"^(outbox|outbox\.dlq)$",
            "^outbox$",
        ])
        .unwrap();
    let (report, ok) = run();
    assert!(ok, "{report}");
    assert!(
        line(&report, "publish permission").contains(
            "ok    user relay may publish to exchange outbox with routing keys outbox.dlq, outbox.event.order (tx.select, basic.publish, tx.rollback)"
        ),
        "{report}"
    );

    // Topic permissions restrict routing keys on topic exchanges; check asks with every key.
    rabbitmq
        .ctl(&[
            "set_topic_permissions",
            "-p",
            "/",
            "relay",
            "outbox",
            r"^outbox\.dlq$",
            ".*",
        ])
        .unwrap();
    let (report, ok) = run();
    assert!(!ok, "{report}");
    assert!(
        line(&report, "publish permission").contains(
            "FAIL  user relay may not publish to exchange outbox with routing keys outbox.event.order: ACCESS_REFUSED"
        ),
        "{report}"
    );
    let expected_fix = r"rabbitmqctl set_topic_permissions -p '/' relay outbox '^(outbox\.event\..*|outbox\.dlq)$' '.*'";
    assert!(report.contains(expected_fix), "{report}");
    rabbitmq
        .ctl(&[
            "set_topic_permissions",
            "-p",
            "/",
            "relay",
            "outbox",
            r"^(outbox\.event\..*|outbox\.dlq)$",
            ".*",
        ])
        .unwrap();
    let (report, ok) = run();
    assert!(ok, "{report}");

    let count = || async {
        channel
            .queue_declare(
                "consumer".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    };
    assert_eq!(count().await, 0, "check delivered a message");
    // The binding does take what is published outside a transaction.
    channel
        .basic_publish(
            "outbox".into(),
            "outbox.event.order".into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    harness::poll_until(Duration::from_secs(10), "the control message", || async {
        count().await == 1
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_topics_are_checked_for_existence_and_leaders_and_write_acls_reported_unverified() {
    let pg = database_with_orders().await;
    let kafka = Kafka::start().unwrap();
    let brokers = kafka.brokers();
    let run = || check(&pg, &["--sink", "kafka", "--kafka-brokers", &brokers]);

    let (report, ok) = run();
    assert!(ok, "{report}");
    assert!(
        line(&report, "publish permission").contains(
            "WARN  outbox.dlq, outbox.event.order missing; the relay creates missing topics on first use if its principal may; WRITE ACLs cannot be verified without producing"
        ),
        "{report}"
    );
    assert!(
        report.contains(&format!("kafka-topics --bootstrap-server {brokers} --create --topic outbox.event.order --partitions 3 --replication-factor 1")),
        "{report}"
    );

    // Creating them succeeds, so check did not.
    kafka.create_topic("outbox.dlq", 1).unwrap();
    kafka.create_topic("outbox.event.order", 3).unwrap();
    let (report, ok) = run();
    assert!(ok, "{report}");
    assert!(
        line(&report, "publish permission").contains(
            "WARN  topics outbox.dlq, outbox.event.order exist with a leader for every partition; WRITE ACLs cannot be verified without producing"
        ),
        "{report}"
    );
    assert!(report.contains("kafka-acls --bootstrap-server"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rows_or_without_select_only_the_dead_letter_destination_is_checked() {
    let pg = support::outbox_database().await;
    let redis = Redis::start().unwrap();
    let url = redis.url();
    let (report, ok) = check(&pg, &["--sink", "redis", "--redis-url", &url]);
    assert!(ok, "{report}");
    assert!(
        line(&report, "publish permission").contains(
            "ok    user default may XADD to outbox.dlq (ACL DRYRUN); the outbox has no rows yet, so no aggregate type to route"
        ),
        "{report}"
    );

    // The least-privileged logical role reads rows through replication only, not with SELECT.
    pg.client()
        .await
        .unwrap()
        .batch_execute("CREATE ROLE relay LOGIN REPLICATION")
        .await
        .unwrap();
    let relay_url = pg.url().replace("postgres@", "relay@");
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["check", "--database-url", &relay_url, "--mode", "logical"])
        .args(["--sink", "redis", "--redis-url", &url])
        .output()
        .unwrap();
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(
        line(&report, "publish permission").contains(
            "WARN  user default may XADD to outbox.dlq (ACL DRYRUN); checked the dead-letter destination only: cannot list the aggregate types to route (permission denied for table outbox)"
        ),
        "{report}"
    );

    // A template without placeholders is its own destination.
    let (report, ok) = check(
        &pg,
        &[
            "--sink",
            "redis",
            "--redis-url",
            &url,
            "--destination",
            "events",
        ],
    );
    assert!(ok, "{report}");
    assert!(
        line(&report, "publish permission").contains("may XADD to outbox.dlq, events (ACL DRYRUN)"),
        "{report}"
    );
}

/// A vhost of its own in the URL, with a `/` in its name as `%2F`: check names it in the fix and
/// passes once the fix is applied, and the relay publishes into that vhost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_vhost_of_the_url_is_checked_and_published_to() {
    let pg = database_with_orders().await;
    let rabbitmq = RabbitMq::start().unwrap();
    rabbitmq.ctl(&["add_vhost", "orders/eu"]).unwrap();
    rabbitmq.ctl(&["add_user", "relay", "pw"]).unwrap();
    rabbitmq
        .ctl(&[
            "set_permissions",
            "-p",
            "orders/eu",
            "relay",
            ".*",
            "",
            ".*",
        ])
        .unwrap();
    rabbitmq
        .ctl(&[
            "set_permissions",
            "-p",
            "orders/eu",
            "guest",
            ".*",
            ".*",
            ".*",
        ])
        .unwrap();
    let url = format!("amqp://relay:pw@127.0.0.1:{}/orders%2Feu", rabbitmq.port());
    let sink = ["--sink", "rabbitmq", "--rabbitmq-url", &url];

    let (report, ok) = check(&pg, &sink);
    assert!(!ok, "{report}");
    let expected_fix = r"rabbitmqctl set_permissions -p 'orders/eu' relay '^(outbox|outbox\.dlq)$' '^(outbox|outbox\.dlq)$' '^outbox$'";
    assert!(report.contains(expected_fix), "{report}");
    rabbitmq
        .ctl(&[
            "set_permissions",
            "-p",
            "orders/eu",
            "relay",
            r"^(outbox|outbox\.dlq)$",
            r"^(outbox|outbox\.dlq)$",
            "^outbox$",
        ])
        .unwrap();
    let (report, ok) = check(&pg, &sink);
    assert!(ok, "{report}");

    let target = support::scenarios::Target::new(&sink);
    let reader_url = format!(
        "amqp://guest:guest@127.0.0.1:{}/orders%2Feu",
        rabbitmq.port()
    );
    let reader = harness::Reader::rabbitmq(&reader_url, "outbox", &target.destinations()).await;
    support::scenarios::delivers_everything_in_order(target, reader).await;
}

/// AMQP cannot tell whether a queue is bound, so check asks the management API: with no queue bound
/// for a routed key it warns that those events would be dead-lettered, with a queue bound it says so,
/// and with the API unreachable it says it cannot tell. The relay's own dead-letter queue counts for
/// nothing: it is declared and bound by the relay itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_check_warns_when_no_queue_is_bound_for_a_routed_key() {
    let pg = database_with_orders().await;
    let rabbitmq = RabbitMq::start_with_management().unwrap();
    let management = rabbitmq.management_url().unwrap();
    let url = rabbitmq.url();
    let run = |management_url: &str| {
        let Output { stdout, status, .. } = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
            .args(["check", "--database-url", &pg.url()])
            .args(["--sink", "rabbitmq", "--rabbitmq-url", &url])
            .env("OUTBOX_RELAY_RABBITMQ__MANAGEMENT_URL", management_url)
            .output()
            .unwrap();
        (String::from_utf8(stdout).unwrap(), status.success())
    };

    let (report, ok) = run(&management);
    assert!(ok, "a warning only: {report}");
    assert!(
        line(&report, "publish permission").contains(&format!(
            "WARN  user guest may publish to exchange outbox with routing keys outbox.dlq, outbox.event.order \
             (tx.select, basic.publish, tx.rollback); but no queue is bound to exchange outbox for routing keys \
             outbox.event.order ({management}): each such event would be returned as unroutable and \
             dead-lettered into queue outbox.dlq"
        )),
        "{report}"
    );
    assert!(
        report.contains(
            "  publish permission: start the consuming services first, or bind their queues for those keys, \
             e.g. rabbitmqadmin declare binding source=outbox destination=<queue> routing_key=outbox.event.order"
        ),
        "{report}"
    );

    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_declare(
            "invoice-service".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            "invoice-service".into(),
            "outbox".into(),
            "outbox.event.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let (report, ok) = run(&management);
    assert!(ok, "{report}");
    assert!(
        line(&report, "publish permission").contains(&format!(
            "ok    user guest may publish to exchange outbox with routing keys outbox.dlq, outbox.event.order \
             (tx.select, basic.publish, tx.rollback); a queue is bound for each routed key ({management})"
        )),
        "{report}"
    );

    let closed = format!("http://127.0.0.1:{}", harness::free_port().unwrap());
    let (report, ok) = run(&closed);
    assert!(ok, "{report}");
    let permission = line(&report, "publish permission");
    assert!(
        permission.split_whitespace().nth(2) == Some("ok")
            && permission.contains(&format!(
                "; cannot tell whether a queue is bound (management API not reachable at {closed}/: "
            )),
        "{report}"
    );
}
