//! Logging for every function: one JSON object per line with the event's fields at the top level,
//! which is what CloudWatch Logs Insights queries field by field (`filter event = "released"`).
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls), else
//! `RUST_LOG`, else INFO. (`lambda_runtime::tracing::init_default_subscriber` switches to JSON only
//! when `AWS_LAMBDA_LOG_FORMAT=JSON`, and nests the fields; this keeps them flat and always JSON.)
//! Lambda adds its own timestamp to every line, so none is printed here.

use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// Installs the JSON subscriber. A second call (tests) keeps the first one.
pub fn init_json_logging() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_writer(std::io::stdout)
        .with_env_filter(filter)
        .try_init();
}
