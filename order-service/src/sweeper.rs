//! The deadline sweeper: every interval, the sagas whose step waited past its deadline time out, and
//! their compensation or retry is written. Every instance may sweep: optimistic locking lets one of
//! two sweepers that race on a saga apply the timeout and makes the other's a recorded stale input.

use std::time::Duration;

use chrono::Utc;
use pgconn::report;

use crate::service::OrderService;

/// Runs until the task is dropped; an error is logged and the next sweep tries again.
pub async fn run(service: OrderService, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = service.sweep_overdue(Utc::now()).await {
            tracing::warn!(error = %report::chain(&error), "cannot sweep overdue sagas");
        }
    }
}
