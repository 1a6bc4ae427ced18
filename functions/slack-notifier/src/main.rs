//! slack-notifier's Lambda binary: configuration (failing at init, naming every bad variable),
//! the bot token from Secrets Manager, clients built once, then the runtime loop. Everything else
//! is in the library, so that tests run the same handler.

use lambda_runtime::{service_fn, Error};
use slack_notifier::{init_logging, Config, SlackNotifier};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env(std::env::vars()).inspect_err(|e| {
        tracing::error!(event = "init-failed", reason = %e, "invalid configuration");
    })?;
    let aws = lockreaper_aws::Aws::from_env().await?;
    let notifier = SlackNotifier::from_config(&aws, &config)
        .await
        .inspect_err(|e| tracing::error!(event = "init-failed", reason = %e, "cannot start"))?;
    let notifier = &notifier;
    lambda_runtime::run(service_fn(move |event| async move {
        notifier.handle(event).await
    }))
    .await
}
