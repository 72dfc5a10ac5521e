//! The HTTP calls of the seed's curl commands. Each is printed as that curl command, followed by the
//! answer, so that a reader can repeat it by hand against a running system.

use anyhow::{Context, Result};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const CORRELATION_ID: &str = "X-Correlation-Id";

/// An answer: its status, headers and JSON body.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
pub struct Api {
    client: reqwest::Client,
}

impl Api {
    /// Sends the request, prints it as curl and the answer with the `shown` headers, and returns the
    /// answer whatever its status; the caller decides what it expected.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        correlation_id: Option<&str>,
        body: Option<&Value>,
        shown: &[&str],
    ) -> Result<Reply> {
        println!("\n$ {}", curl(&method, url, correlation_id, body));
        let reply = self.send(method, url, correlation_id, body).await?;
        println!("HTTP {}", reply.status);
        for name in shown {
            if let Some(value) = reply.header(name) {
                println!("{name}: {value}");
            }
        }
        println!("{}", serde_json::to_string_pretty(&reply.body)?);
        Ok(reply)
    }

    /// Sends the request without printing anything, for polling.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        correlation_id: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply> {
        let mut request = self.client.request(method.clone(), url);
        if let Some(id) = correlation_id {
            request = request.header(CORRELATION_ID, id);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .with_context(|| format!("reading the answer to {method} {url}"))?;
        let body = serde_json::from_str(&text)
            .with_context(|| format!("{method} {url} answered {status} with non-JSON: {text}"))?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

fn curl(method: &Method, url: &str, correlation_id: Option<&str>, body: Option<&Value>) -> String {
    let mut command = String::from("curl -s");
    if method != Method::GET {
        command += &format!(" -X {method}");
    }
    command += &format!(" '{url}'");
    if let Some(id) = correlation_id {
        command += &format!(" -H '{CORRELATION_ID}: {id}'");
    }
    if let Some(body) = body {
        command += &format!(" -H 'Content-Type: application/json' -d '{body}'");
    }
    command
}
