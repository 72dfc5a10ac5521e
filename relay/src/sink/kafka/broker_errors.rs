//! Why librdkafka cannot reach the brokers. It says so (a refused TCP connection, a failed TLS
//! handshake, a refused SASL login) only through its client context's error callback, while a
//! metadata request merely times out. This context keeps the latest reason, so that a failed connect
//! names it, and tells the settings errors that waiting will not cure from the passing ones.
//!
//! librdkafka retries a down broker every few tens of milliseconds and reports each attempt, through
//! both this callback and its log; the context logs each distinct reason once a minute instead, so
//! that a relay waiting for Kafka writes one line per session retry, as with the other brokers, and
//! logs none while connecting, where the failed connect names the latest reason.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// How long the same broker error stays quiet after it was logged.
const REPEAT_AFTER: Duration = Duration::from_secs(60);

/// The client context of the relay's producer and admin client.
#[derive(Clone, Default)]
pub struct BrokerErrors {
    latest: Arc<Mutex<Option<BrokerError>>>,
    /// The last reason logged, without librdkafka's attempt counters, and when.
    logged: Arc<Mutex<Option<(String, Instant)>>>,
    /// Until the brokers first answered, a failed connect reports the latest error itself.
    connected: Arc<AtomicBool>,
}

/// One error librdkafka reported about its connections to the brokers.
#[derive(Clone, Debug)]
pub struct BrokerError {
    code: Option<RDKafkaErrorCode>,
    reason: String,
}

impl BrokerErrors {
    pub fn latest(&self) -> Option<BrokerError> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The brokers answered: from now on their errors are logged as they come.
    pub fn connected(&self) {
        self.connected.store(true, Ordering::Relaxed);
    }

    /// Whether `reason` was not logged within [`REPEAT_AFTER`]; librdkafka's own "(after 0ms in state
    /// CONNECT, 3 identical error(s) suppressed)" tail does not make a reason new.
    fn first_in_a_while(&self, reason: &str) -> bool {
        let key = reason.split(" (after ").next().unwrap_or(reason).to_owned();
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match logged.as_ref() {
            Some((last, at)) if *last == key && now.duration_since(*at) < REPEAT_AFTER => false,
            _ => {
                *logged = Some((key, now));
                true
            }
        }
    }
}

impl BrokerError {
    /// A TLS or SASL failure: the broker answers, but the relay's settings do not suit it, so trying
    /// again with the same settings fails the same way. A server that refuses the client's
    /// certificate under TLS 1.3 does so after the client's side of the handshake, which librdkafka
    /// reports as a transport failure carrying OpenSSL's reason.
    pub fn is_settings_error(&self) -> bool {
        match self.code {
            Some(RDKafkaErrorCode::SSL | RDKafkaErrorCode::Authentication) => true,
            Some(RDKafkaErrorCode::BrokerTransportFailure) => self.reason.contains("SSL routines"),
            _ => false,
        }
    }
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)?;
        if self.is_settings_error() {
            f.write_str(" (check the TLS and SASL settings in kafka.properties)")?;
        }
        Ok(())
    }
}

impl ClientContext for BrokerErrors {
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        // "n/n brokers are down" follows each broker's own failure and would hide its reason.
        if code == Some(RDKafkaErrorCode::AllBrokersDown) {
            return;
        }
        if self.connected.load(Ordering::Relaxed) && self.first_in_a_while(reason) {
            // As rdkafka's default context does, so that errors after connect (a broker down) show.
            tracing::warn!(%error, reason, "kafka client error");
        }
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(BrokerError {
            code,
            reason: reason.to_owned(),
        });
    }

    /// librdkafka's log: its errors repeat what [`ClientContext::error`] reports, and its notices
    /// are for librdkafka's own debugging.
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Error | RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::debug!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::trace!(target: "librdkafka", facility, "{message}"),
        }
    }
}
