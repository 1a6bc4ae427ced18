//! The reaper Lambda: wiring only. The sweep lives in `lib.rs`; configuration in the README.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use lockreaper_aws::{load_signing_key, Aws};
use lockreaper_core::config::Env;
use reaper::{Reaper, ReaperConfig, SweepOutcome};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lockreaper_aws::logging::init_json_logging();
    let mut env = Env::new(std::env::vars());
    let config = ReaperConfig::from_env(&mut env);
    let config = env.finish(config)?;
    let aws = Aws::from_env().await?;
    let signing_key = load_signing_key(&aws.secrets(), &config.approval_secret_arn).await?;
    let reaper = Reaper::new(&aws, config, signing_key);
    let reaper = &reaper;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            // A deadline already past at the start means the runtime gave none (local tools): no limit.
            let deadline = event
                .context
                .deadline()
                .duration_since(std::time::SystemTime::now())
                .ok()
                .map(|left| std::time::Instant::now() + left);
            let outcome: SweepOutcome = reaper.sweep(chrono::Utc::now(), deadline).await;
            // The invocation result is the bounded summary (a Lambda response is capped at 6 MB).
            Ok::<_, Error>(outcome.summary())
        },
    ))
    .await
}
