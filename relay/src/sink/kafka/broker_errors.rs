//! Why librdkafka cannot reach the brokers. It says so (a refused TCP connection, a failed TLS
//! handshake, a refused SASL login) only through its client context's error callback, while a
//! metadata request merely times out. This context keeps the latest reason, so that a failed connect
//! names it, and tells the settings errors that waiting will not cure from the passing ones.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The client context of the relay's producer and admin client.
#[derive(Clone, Default)]
pub struct BrokerErrors {
    latest: Arc<Mutex<Option<BrokerError>>>,
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
        // As rdkafka's default context does, so that errors after connect (all brokers down) show.
        tracing::warn!(%error, reason, "kafka client error");
        let code = error.rdkafka_error_code();
        // "n/n brokers are down" follows each broker's own failure and would hide its reason.
        if code == Some(RDKafkaErrorCode::AllBrokersDown) {
            return;
        }
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(BrokerError {
            code,
            reason: reason.to_owned(),
        });
    }
}
