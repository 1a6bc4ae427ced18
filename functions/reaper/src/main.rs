//! The reaper: on an EventBridge schedule, finds every lock in the configured tables and buckets
//! and reports each with its age. Configuration: `LOCK_TABLES`, `LOCK_BUCKETS` (see README).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use lockreaper_aws::inventory::take_inventory;
use lockreaper_aws::Aws;
use lockreaper_core::config::{Env, LockSources};
use lockreaper_core::report::SweepReport;

struct Reaper {
    sources: LockSources,
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
}

impl Reaper {
    async fn sweep(&self, _event: LambdaEvent<EventBridgeEvent>) -> Result<SweepReport, Error> {
        let inventory = take_inventory(
            &self.dynamodb,
            &self.s3,
            &self.sources.tables,
            &self.sources.buckets,
        )
        .await;
        let report = inventory.report(chrono::Utc::now());
        for lock in &report.locks {
            tracing::info!(event = "lock", lock = %serde_json::to_string(lock)?, "lock found");
        }
        for bad in &report.unparseable {
            tracing::warn!(event = "unparseable-lock", reason = %bad, "unparseable lock: inspect by hand");
        }
        for err in &report.unreachable {
            tracing::error!(event = "unreachable", reason = %err, "could not read a lock source");
        }
        Ok(report)
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let mut env = Env::new(std::env::vars());
    let sources = LockSources::from_env(&mut env);
    let sources = env.finish(sources)?;
    let aws = Aws::from_env().await?;
    let reaper = Reaper {
        sources,
        dynamodb: aws.dynamodb(),
        s3: aws.s3(),
    };
    let reaper = &reaper;
    lambda_runtime::run(service_fn(
        move |event| async move { reaper.sweep(event).await },
    ))
    .await
}
