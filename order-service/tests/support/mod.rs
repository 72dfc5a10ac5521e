//! A running order-service for the tests: a throwaway PostgreSQL cluster, the migrated schema, and the
//! HTTP server on a loopback port, plus helpers to call it and to read its tables.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::net::SocketAddr;

use order_service::service::OrderService;
use order_service::store::{self, Pool};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::Client;
use uuid::Uuid;

pub struct App {
    pub base: String,
    pub http: reqwest::Client,
    pub db: Client,
    pub pool: Pool,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    // Dropped last: the server's connections go before the cluster does.
    pub postgres: harness::Postgres,
}

impl App {
    pub async fn start() -> App {
        let postgres = harness::Postgres::start().unwrap();
        let url = postgres.url();
        App::serve(postgres, &url, &url).await
    }

    /// The service on `postgres`, its pool connecting to `pool_url`; the tests read its tables
    /// through a plain session to `tables_url`.
    pub async fn serve(postgres: harness::Postgres, pool_url: &str, tables_url: &str) -> App {
        let pool = store::connect(pool_url, 16).unwrap();
        store::migrate(&mut pool.get().await.unwrap())
            .await
            .unwrap();
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(order_service::http::serve(
            listener,
            OrderService::new(pool.clone()),
            async move {
                let _ = stopped.await;
            },
        ));
        App {
            base,
            http: reqwest::Client::new(),
            db: plain_client(tables_url).await,
            pool,
            stop: Some(stop),
            server: Some(server),
            postgres,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Sends `body` as it is, declared as JSON: for bodies `post_json` could not produce.
    pub async fn post_raw_json(&self, path: &str, body: impl Into<reqwest::Body>) -> Response {
        self.http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str) -> Response {
        self.http.post(self.url(path)).send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// Places a valid order and returns its JSON.
    pub async fn create_order(&self) -> Value {
        let response = self.post_json("/orders", &order_request()).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.db
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    /// The outbox rows of one order, oldest first.
    pub async fn events_of(&self, order_id: &str) -> Vec<OutboxRow> {
        self.db
            .query(
                "SELECT id, aggregatetype, aggregateid, type, payload::text, headers \
                 FROM outbox WHERE aggregateid = $1 ORDER BY created_at, type DESC",
                &[&order_id],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| OutboxRow {
                id: row.get(0),
                aggregatetype: row.get(1),
                aggregateid: row.get(2),
                event_type: row.get(3),
                payload: row.get(4),
                headers: row.get(5),
            })
            .collect()
    }

    /// Stops the server gracefully and returns how it ended.
    pub async fn stop(mut self) -> std::io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap()
    }
}

async fn plain_client(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    // Its error is also returned by the client's next call, where the test sees it.
    tokio::spawn(async move { drop(connection.await) });
    client
}

#[derive(Debug)]
pub struct OutboxRow {
    pub id: Uuid,
    pub aggregatetype: String,
    pub aggregateid: String,
    pub event_type: String,
    pub payload: String,
    pub headers: Value,
}

impl OutboxRow {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }
}

/// A valid `POST /orders` body: two USD lines, 3 × 10.00 + 1 × 0.99.
pub fn order_request() -> Value {
    json!({
        "customerId": Uuid::new_v4(),
        "lines": [
            {"productId": Uuid::new_v4(), "quantity": 3, "unitPrice": "10.00", "currency": "USD"},
            {"productId": Uuid::new_v4(), "quantity": 1, "unitPrice": "0.99", "currency": "USD"}
        ]
    })
}
