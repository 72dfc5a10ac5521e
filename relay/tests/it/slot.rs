//! The replication slot seen from the operator's side: `status` while stopped and while running,
//! and what the relay and `check` say once PostgreSQL has invalidated the slot.

use crate::support;

use std::process::Command;
use std::time::Duration;

use support::scenarios::Target;

fn relay_command(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_what_waits_behind_a_stopped_relay() {
    let pg = support::outbox_database().await;
    let url = pg.url();
    let (ok, text) = relay_command(&["status", "--database-url", &url]);
    assert!(
        ok && text.contains("pending events     0 (the slot does not exist yet"),
        "{text}"
    );

    let target = Target::new(&["--sink", "stdout"]);
    let mut relay = target.relay(&pg, &[]);
    let (ok, text) = relay_command(&["status", "--database-url", &url]);
    assert!(
        ok && text.contains("unknown: a relay streams from the slot"),
        "{text}"
    );
    support::stop_relay(&mut relay);

    let client = pg.client().await.unwrap();
    for _ in 0..5 {
        client
            .batch_execute(
                "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
                 SELECT gen_random_uuid(), 'order', 'a', 'T', '{}' FROM generate_series(1, 5)",
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (ok, text) = relay_command(&["status", "--database-url", &url]);
    assert!(ok && text.contains("pending events     25\n"), "{text}");
    let age: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("oldest pending     "))
        .and_then(|v| v.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(age >= 1.0, "{text}");

    // Streaming starts before the backlog is read: stopping at once would rightly leave it pending.
    let mut relay = target.relay(&pg, &[]);
    let addr = support::metrics_addr(&relay);
    harness::wait_until(
        Duration::from_secs(60),
        "the backlog to be published",
        || {
            let text = support::http_get(&addr, "/metrics").1;
            support::metric(&text, "outbox_relay_events_published_total", &[]) == Some(25.0)
        },
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    support::stop_relay(&mut relay);
    let (ok, text) = relay_command(&["status", "--database-url", &url]);
    assert!(ok && text.contains("pending events     0\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_slot_stops_the_relay_with_the_recovery_steps() {
    let pg = harness::Postgres::start_with_settings(&["max_slot_wal_keep_size=1MB"]).unwrap();
    support::create_outbox(&pg).await;
    let target = Target::new(&["--sink", "stdout"]);
    let mut relay = target.relay(&pg, &[]);
    support::stop_relay(&mut relay);

    let client = pg.client().await.unwrap();
    client
        .batch_execute("CREATE TABLE filler (pad text)")
        .await
        .unwrap();
    harness::wait_until(
        Duration::from_secs(60),
        "PostgreSQL to invalidate the slot",
        || {
            pg.psql(
                "INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 3000);
             SELECT pg_switch_wal(); CHECKPOINT;",
            )
            .unwrap();
            pg.psql("SELECT wal_status FROM pg_replication_slots")
                .unwrap()
                == "lost"
        },
    )
    .unwrap();

    let mut relay = support::start_relay(&pg, &["--sink", "stdout"]);
    let status = relay
        .wait_timeout(Duration::from_secs(60))
        .unwrap()
        .expect("the relay stops instead of skipping events");
    assert!(!status.success());
    let log = relay.log();
    assert!(
        log.contains("was invalidated")
            && log.contains("outbox-relay drop-slot --slot outbox_relay_slot"),
        "{log}"
    );

    let (ok, text) = relay_command(&["status", "--database-url", &pg.url()]);
    assert!(ok && text.contains("the slot was invalidated"), "{text}");
    let (ok, text) = relay_command(&["check", "--database-url", &pg.url(), "--sink", "stdout"]);
    assert!(
        !ok && text.contains("replication slot        FAIL  outbox_relay_slot was invalidated"),
        "{text}"
    );
}
