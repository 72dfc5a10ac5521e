//! Self-tests of `harness::Redis`.

use std::time::Instant;

use harness::Redis;
use redis::AsyncCommands;

#[tokio::test]
async fn a_private_redis_keeps_its_data_across_restarts() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut server = Redis::start()?;
    eprintln!("Redis::start took {:?}", started.elapsed());
    let client = redis::Client::open(server.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: () = conn.set("k", "v").await?;
    let _: String = conn.xadd("s", "*", &[("f", "1")]).await?;

    server.restart()?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let value: String = conn.get("k").await?;
    assert_eq!(value, "v");
    let len: usize = conn.xlen("s").await?;
    assert_eq!(len, 1);
    Ok(())
}

#[tokio::test]
async fn the_shared_redis_answers() -> anyhow::Result<()> {
    let url = Redis::shared()?;
    let port = std::env::var("TEST_REDIS_PORT").unwrap_or_else(|_| "6379".into());
    assert_eq!(url, format!("redis://127.0.0.1:{port}"));
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    assert_eq!(pong, "PONG");
    Ok(())
}
