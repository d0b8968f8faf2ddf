//! The `-v` trace: the library's own wire trace (from the core, secrets
//! redacted), printed as it happens.

use std::io::{self, Write};

/// Prints the library's wire trace (`-v`): every line sent and every status
/// line received, in wire order, as `C: ...` and `S: ...` on stderr. The
/// lines come from the core with passwords and SASL responses already
/// `<redacted>`, so every runtime prints the same trace.
pub(crate) fn install_wire_trace() {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(WireTrace);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// A tracing layer writing the `pop3::wire` events' messages to stderr.
struct WireTrace;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WireTrace {
    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        metadata.target() == "pop3::wire"
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let mut err = io::stderr().lock();
        let _ = writeln!(err, "{}", message.0);
    }
}
