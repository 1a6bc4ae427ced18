//! lock-metrics: DynamoDB Streams of lock tables → lock lifecycle metrics in CloudWatch (EMF lines on stdout).
//! Configuration (`LEDGER_TABLE`, `METRICS_NAMESPACE`): see README.md.

use lambda_runtime::{service_fn, Error};
use lock_metrics::{init_logging, Config, LockMetrics};
use lockreaper_aws::{Aws, EmfMetrics, Ledger};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env(std::env::vars())
        .inspect_err(|e| tracing::error!(error = %e, "lock-metrics cannot start"))?;
    let aws = Aws::from_env().await?;
    let function = LockMetrics::new(
        Ledger::new(aws.dynamodb(), config.ledger_table),
        EmfMetrics::stdout(config.namespace),
    );
    let function = &function;
    lambda_runtime::run(service_fn(move |event| function.handle(event))).await
}
