//! Logging for every function: one JSON object per line with the event's fields at the top level,
//! which is what CloudWatch Logs Insights queries field by field (`filter event = "released"`), and
//! the Lambda request ID of the invocation it belongs to (`filter requestId = "…"`), so every line
//! of one invocation can be found from an error report or the REPORT line.
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls), else
//! `RUST_LOG`, else INFO. (`lambda_runtime::tracing::init_default_subscriber` switches to JSON only
//! when `AWS_LAMBDA_LOG_FORMAT=JSON`, and nests the fields; this keeps them flat and always JSON.)
//! Lambda adds its own timestamp to every line, so none is printed here.
//!
//! Why a formatter of our own: `lambda_runtime` (1.x, `layers/trace.rs`) opens a span
//! `Lambda runtime invoke` with the field `requestId` around every invocation, and
//! tracing-subscriber's JSON formatter either drops span fields (`with_current_span(false)`) or
//! nests them under `span`/`spans`, under whatever span is innermost (the SDK opens its own). This
//! formatter looks the request ID up in the event's span scope and writes it flat, next to
//! `level` and the event's own fields.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The span field in which `lambda_runtime` carries the invocation's request ID; also the key it
/// is written under, the name Lambda itself uses in its JSON log format.
pub const REQUEST_ID: &str = "requestId";

/// Keys the formatter writes itself. An event field with one of these names is written as
/// `field_<name>` instead, so that it never hides the severity or the request ID.
const RESERVED: [&str; 2] = ["level", REQUEST_ID];

/// Installs the JSON subscriber, writing to stdout, and logs which lockreaper version starts (the
/// workspace version, the one `make package` names its artefacts with). A second call (tests)
/// keeps the first subscriber and logs nothing.
pub fn init_json_logging() {
    if subscriber(std::io::stdout).try_init().is_ok() {
        tracing::info!(event = "start", version = VERSION);
    }
}

/// lockreaper's version: `[workspace.package] version`, inherited by every crate.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The subscriber `init_json_logging` installs, writing to `writer` (tests capture it).
pub fn subscriber<W>(writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    tracing_subscriber::registry()
        .with(filter)
        .with(RequestIdLayer)
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(FlatJson)
                .with_writer(writer),
        )
}

/// The request ID of the `Lambda runtime invoke` span, kept in that span's extensions.
struct RequestId(String);

/// Remembers the `requestId` field of any span that has one.
struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut found = FindRequestId(None);
        attrs.record(&mut found);
        if let (Some(request_id), Some(span)) = (found.0, ctx.span(id)) {
            span.extensions_mut().insert(RequestId(request_id));
        }
    }
}

struct FindRequestId(Option<String>);

impl Visit for FindRequestId {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == REQUEST_ID {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == REQUEST_ID {
            // `requestId = &ctx.request_id` records a `&String` through `record_debug`'s
            // default path in some tracing versions; Debug of a string quotes it.
            let text = format!("{value:?}");
            let unquoted = text
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(&text);
            self.0 = Some(unquoted.to_owned());
        }
    }
}

/// One flat JSON object per event: `level`, `requestId` when inside an invocation, then the
/// event's fields (`message` for the text).
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        line.insert("level".into(), event.metadata().level().as_str().into());
        let request_id = ctx.event_scope().and_then(|scope| {
            scope
                .from_root()
                .find_map(|span| span.extensions().get::<RequestId>().map(|r| r.0.clone()))
        });
        if let Some(request_id) = request_id {
            line.insert(REQUEST_ID.into(), request_id.into());
        }
        event.record(&mut Fields(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        let key = if RESERVED.contains(&name) {
            format!("field_{name}")
        } else {
            name.to_owned()
        };
        self.0.insert(key, value);
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines(captured: &Captured) -> Vec<Value> {
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn every_line_of_an_invocation_carries_its_request_id_flat() {
        let captured = Captured::default();
        tracing::subscriber::with_default(subscriber(captured.clone()), || {
            tracing::info!(event = "before-any-invocation");
            // Exactly the span lambda_runtime 1.x opens around each invocation (layers/trace.rs).
            let request_id = String::from("8f1d3c2e-0000-4000-8000-000000000001");
            let invoke = tracing::info_span!("Lambda runtime invoke", requestId = &request_id);
            let _in_invoke = invoke.enter();
            // The SDK opens spans of its own inside the invocation; the ID must survive them.
            let sdk = tracing::info_span!("invoke", rpc.service = "DynamoDB");
            let _in_sdk = sdk.enter();
            tracing::warn!(
                event = "released",
                state_path = "b/k",
                hold_seconds = 42u64,
                "done"
            );
        });
        let lines = lines(&captured);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["event"], "before-any-invocation");
        assert!(lines[0].get(REQUEST_ID).is_none(), "{}", lines[0]);
        assert_eq!(
            lines[1]["requestId"],
            "8f1d3c2e-0000-4000-8000-000000000001"
        );
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["event"], "released");
        assert_eq!(lines[1]["state_path"], "b/k");
        assert_eq!(lines[1]["hold_seconds"], 42);
        assert_eq!(lines[1]["message"], "done");
    }

    #[test]
    fn a_field_named_like_a_reserved_key_never_hides_the_severity() {
        let captured = Captured::default();
        tracing::subscriber::with_default(subscriber(captured.clone()), || {
            tracing::info!(
                event = "lock-judged",
                level = "propose-unlock",
                requestId = "forged"
            );
        });
        let lines = lines(&captured);
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["field_level"], "propose-unlock");
        assert!(lines[0].get(REQUEST_ID).is_none(), "{}", lines[0]);
        assert_eq!(lines[0]["field_requestId"], "forged");
    }
}
