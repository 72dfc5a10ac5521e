//! Property tests of the HTTP API over a real socket: generated query strings for
//! `GET /invoices`, generated paths, and generated methods, headers and bodies on every route.
//! None gets a 5xx; every 4xx is `application/problem+json` with its status; nothing is written to
//! the database; and `GET /invoices` answers 200 exactly when the query holds one valid `orderId`.
//! 3 properties × `CASES` generated requests per run, after the saved failing cases in
//! `tests/proptest-regressions/`; the test prints the total.
//!
//! Requests are raw HTTP/1.1 written to the socket, so that they reach the service exactly as
//! generated (a client library would normalise paths and refuse some headers). They stay valid
//! HTTP: malformed framing is the HTTP server library's business and answered before the API.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use invoice_service::store::Store;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const CASES: u32 = 300;

/// Every request the properties sent, for the printed total.
static SENT: AtomicUsize = AtomicUsize::new(0);

struct Response {
    status: u16,
    content_type: String,
    /// The `Allow` header, which a 405 must carry (RFC 9110).
    allow: String,
    body: Vec<u8>,
}

/// Sends `head` (request line and headers, without the final blank line) and `body`, and reads one
/// response. The body's length is read from `Content-Length`, so the connection is closed by this
/// side, after the whole response arrived. Writing runs alongside reading: the server may answer
/// before reading a body it has no use for.
async fn send(addr: SocketAddr, head: &str, body: &[u8], is_head: bool) -> Response {
    SENT.fetch_add(1, Ordering::Relaxed);
    let (mut reader, mut writer) = TcpStream::connect(addr).await.unwrap().into_split();
    let mut request = format!(
        "{head}\r\nhost: {addr}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let write = async move {
        let _ = writer.write_all(&request).await;
        writer
    };
    let read = async {
        let mut received = Vec::new();
        let mut buffer = [0; 8192];
        let header_end = loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = reader.read(&mut buffer).await.unwrap();
            assert!(n > 0, "connection closed before a response to {head:?}");
            received.extend_from_slice(&buffer[..n]);
        };
        let headers = String::from_utf8_lossy(&received[..header_end]).into_owned();
        let header = |name: &str| {
            headers.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        let length: usize = match (is_head, header("content-length")) {
            (true, _) => 0,
            (false, Some(length)) => length.parse().unwrap(),
            (false, None) => panic!("no content-length in {headers:?}"),
        };
        while received.len() < header_end + length {
            let n = reader.read(&mut buffer).await.unwrap();
            assert!(n > 0, "connection closed mid-body");
            received.extend_from_slice(&buffer[..n]);
        }
        Response {
            status: headers.split(' ').nth(1).unwrap().parse().unwrap(),
            content_type: header("content-type").unwrap_or_default(),
            allow: header("allow").unwrap_or_default(),
            body: received[header_end..header_end + length].to_vec(),
        }
    };
    let (_writer, response) = tokio::join!(write, read);
    response
}

/// The checks every response passes: no server error, and a client error is a problem document
/// (RFC 9457) carrying its own status.
fn well_formed(response: &Response, is_head: bool) -> Result<(), TestCaseError> {
    prop_assert!(response.status < 500, "server error {}", response.status);
    if response.status >= 400 && !is_head {
        prop_assert_eq!(&response.content_type, "application/problem+json");
        let problem: Value = serde_json::from_slice(&response.body)
            .map_err(|e| TestCaseError::fail(format!("problem is not JSON: {e}")))?;
        prop_assert_eq!(&problem["status"], &Value::from(response.status));
        prop_assert!(problem["title"].is_string() && problem["detail"].is_string());
    }
    if response.status == 405 {
        prop_assert!(
            response.allow.contains("GET"),
            "405 without Allow: GET ({:?})",
            response.allow
        );
    }
    Ok(())
}

/// Percent-encodes every byte but the unreserved ones, so the service decodes exactly `text`.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Unicode edge cases: astral planes, combining marks, bidi controls, NUL, and plain text.
fn text() -> impl Strategy<Value = String> {
    "(\\PC|[\u{0}\u{202e}\u{1F600}\u{0301}&=?#/%+ ]){0,40}"
}

/// Strings near a UUID: valid in every form `Uuid::parse_str` takes, and broken ones.
fn uuid_like() -> impl Strategy<Value = String> {
    let uuid = any::<u128>().prop_map(Uuid::from_u128);
    prop_oneof![
        uuid.clone().prop_map(|u| u.to_string()),
        uuid.clone().prop_map(|u| u.simple().to_string()),
        uuid.clone()
            .prop_map(|u| u.braced().to_string().to_uppercase()),
        uuid.clone().prop_map(|u| u.urn().to_string()),
        (uuid.clone(), 0..36usize).prop_map(|(u, cut)| u.to_string()[..cut].to_owned()),
        (uuid, text()).prop_map(|(u, t)| format!("{u}{t}")),
        text(),
    ]
}

fn param_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("orderId".to_owned()),
        1 => prop::sample::select(vec!["orderid", "ORDERID", "order_id", "id", "customerId", ""])
            .prop_map(str::to_owned),
        1 => text(),
    ]
}

/// The status `GET /invoices` must answer for these parameters.
fn expected_list_status(params: &[(String, String)]) -> u16 {
    match params {
        [(name, value)] if name == "orderId" && Uuid::parse_str(value).is_ok() => 200,
        _ => 400,
    }
}

fn methods() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"
        ])
        .prop_map(str::to_owned),
        "[A-Z]{1,12}",
    ]
}

/// Header names the request framing does not depend on.
fn header_name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9-]{0,20}".prop_filter("framing header", |name| {
        ![
            "host",
            "content-length",
            "transfer-encoding",
            "connection",
            "expect",
            "upgrade",
            "te",
            "trailer",
        ]
        .contains(&name.to_ascii_lowercase().as_str())
    })
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,200}".prop_map(|v| v.trim().to_owned()),
        prop::sample::select(vec![
            "application/json",
            "application/problem+json",
            "text/plain; charset=utf-8",
            "multipart/form-data; boundary=x",
            "*/*",
            "gzip",
        ])
        .prop_map(str::to_owned),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((header_name(), header_value()), 0..8)
}

fn bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..2048),
        text().prop_map(String::into_bytes),
        (1usize..64 * 1024).prop_map(|n| vec![b'{'; n]),
    ]
}

/// A served API on a throwaway database; the consumer is not needed to serve it.
struct Api {
    addr: SocketAddr,
    pg: harness::Postgres,
    shutdown: CancellationToken,
}

impl Api {
    async fn start() -> Api {
        let pg = harness::Postgres::start().unwrap();
        let store = Store::connect(&pg.url(), 4).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(invoice_service::http::serve(
            listener,
            store,
            shutdown.clone(),
        ));
        Api { addr, pg, shutdown }
    }

    /// Rows in every table the service writes.
    async fn rows(&self) -> i64 {
        self.pg
            .client()
            .await
            .unwrap()
            .query_one(
                "SELECT (SELECT count(*) FROM processed_events) + (SELECT count(*) FROM invoices) \
                 + (SELECT count(*) FROM invoice_lines) + (SELECT count(*) FROM invoice_number_counters)",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        source_file: Some(file!()),
        ..Config::default()
    })
}

#[test]
fn generated_requests_get_no_server_error_and_problem_json_for_client_errors() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let api = runtime.block_on(Api::start());
    let before = runtime.block_on(api.rows());

    let params = prop::collection::vec((param_name(), uuid_like()), 0..4);
    runner()
        .run(&params, |params| {
            let query: Vec<String> = params
                .iter()
                .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
                .collect();
            let head = format!("GET /invoices?{} HTTP/1.1", query.join("&"));
            let response = runtime.block_on(send(api.addr, &head, b"", false));
            well_formed(&response, false)?;
            prop_assert_eq!(response.status, expected_list_status(&params), "{}", head);
            if response.status == 200 {
                prop_assert_eq!(&response.body, b"[]");
            }
            Ok(())
        })
        .unwrap();

    let paths = prop_oneof![
        uuid_like().prop_map(|id| format!("/invoices/{}", encode(&id))),
        prop::collection::vec(text(), 0..4).prop_map(|segments| {
            let segments: Vec<String> = segments.iter().map(|s| encode(s)).collect();
            format!("/{}", segments.join("/"))
        }),
        prop::sample::select(vec![
            "//",
            "/invoices/",
            "/invoices//x",
            "/./invoices",
            "/../health",
            "/invoices/%",
            "/%zz"
        ])
        .prop_map(str::to_owned),
    ];
    runner()
        .run(&paths, |path| {
            let head = format!("GET {path} HTTP/1.1");
            let response = runtime.block_on(send(api.addr, &head, b"", false));
            well_formed(&response, false)?;
            if path != "/health" {
                prop_assert!(
                    response.status >= 400,
                    "{} answered {}",
                    path,
                    response.status
                );
            }
            Ok(())
        })
        .unwrap();

    let targets = prop::sample::select(vec![
        "/invoices".to_owned(),
        format!("/invoices?orderId={}", Uuid::new_v4()),
        format!("/invoices/{}", Uuid::new_v4()),
        "/invoices/not-a-uuid".to_owned(),
        "/health".to_owned(),
        "/orders".to_owned(),
    ]);
    let requests = (methods(), targets, headers(), bodies());
    runner()
        .run(&requests, |(method, target, headers, body)| {
            let mut head = format!("{method} {target} HTTP/1.1");
            for (name, value) in &headers {
                head.push_str(&format!("\r\n{name}: {value}"));
            }
            let is_head = method == "HEAD";
            let response = runtime.block_on(send(api.addr, &head, &body, is_head));
            well_formed(&response, is_head)?;
            if method != "GET" && method != "HEAD" {
                prop_assert!(
                    response.status >= 400,
                    "{} {} answered {}",
                    method,
                    target,
                    response.status
                );
            }
            Ok(())
        })
        .unwrap();

    assert_eq!(runtime.block_on(api.rows()), before, "a request wrote rows");
    let sent = SENT.load(Ordering::Relaxed);
    println!("invoice-service HTTP properties: {sent} generated requests, no 5xx, nothing written");
    assert!(sent >= 3 * CASES as usize);
    api.shutdown.cancel();
}
