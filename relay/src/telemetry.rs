//! Optional trace export (cargo feature `otlp`, off by default): one span per relayed event, a
//! child of the trace in the outbox row's `traceparent`, sent over OTLP/HTTP. The span marks the
//! broker's confirmation, so a service's trace shows when its event left the outbox.

#[cfg(feature = "otlp")]
pub use otlp::{init, Telemetry};

/// Whether spans are being exported; the pipeline only gathers what they need when they are.
pub fn exporting() -> bool {
    #[cfg(feature = "otlp")]
    return otlp::EXPORTING.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(feature = "otlp"))]
    false
}

/// Records that the broker confirmed an event.
#[cfg_attr(not(feature = "otlp"), allow(unused_variables))]
pub fn relayed(
    event_id: &str,
    destination: &str,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) {
    #[cfg(feature = "otlp")]
    otlp::relayed(event_id, destination, traceparent, tracestate);
}

#[cfg(feature = "otlp")]
mod otlp {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};

    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::Resource;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::registry::LookupSpan;

    pub(super) static EXPORTING: AtomicBool = AtomicBool::new(false);

    /// Keeps the exporter alive; dropping it flushes the spans not yet sent.
    pub struct Telemetry(SdkTracerProvider);

    impl Drop for Telemetry {
        fn drop(&mut self) {
            let _ = self.0.shutdown();
        }
    }

    /// The tracing layer that exports to `endpoint` (e.g. `http://collector:4318`), and its guard.
    pub fn init<S>(endpoint: &str) -> Result<(impl tracing_subscriber::Layer<S>, Telemetry), String>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .build()
            .map_err(|e| e.to_string())?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name("outbox-relay")
                    .build(),
            )
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("outbox-relay"));
        EXPORTING.store(true, Ordering::Relaxed);
        Ok((layer, Telemetry(provider)))
    }

    pub(super) fn relayed(
        event_id: &str,
        destination: &str,
        traceparent: Option<&str>,
        tracestate: Option<&str>,
    ) {
        let span = tracing::info_span!(target: "outbox_relay::telemetry", "outbox.relayed", event_id, destination);
        if let Some(traceparent) = traceparent {
            let mut carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
            if let Some(tracestate) = tracestate {
                carrier.insert("tracestate".to_owned(), tracestate.to_owned());
            }
            let _ = span.set_parent(TraceContextPropagator::new().extract(&carrier));
        }
        drop(span.enter());
    }
}
