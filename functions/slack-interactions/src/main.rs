//! slack-interactions' Lambda binary: configuration (failing at init, naming the variable), the
//! Slack signing secret and the attestation key from Secrets Manager, clients built once, then the
//! runtime loop. Everything else is in the library, so that tests run the same handler.

use lambda_runtime::{service_fn, Error};
use slack_interactions::{init_logging, Config, SlackInteractions};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env(std::env::vars()).inspect_err(|e| {
        tracing::error!(event = "init-failed", reason = %e, "invalid configuration");
    })?;
    let aws = lockreaper_aws::Aws::from_env().await?;
    let handler = SlackInteractions::from_config(&aws, &config)
        .await
        .inspect_err(|e| tracing::error!(event = "init-failed", reason = %e, "cannot start"))?;
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event| async move {
        handler.handle(event).await
    }))
    .await
}
