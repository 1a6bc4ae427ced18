//! Building SDK clients from the standard AWS environment.
//!
//! Everything comes from what every AWS SDK reads (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`
//! and the per-service `AWS_ENDPOINT_URL_<SERVICE>`), so the same binary talks to AWS in Lambda and
//! to a local emulator on a laptop. The one extra setting is [`S3_FORCE_PATH_STYLE`]: emulators on
//! `localhost` cannot serve virtual-hosted bucket names (`bucket.localhost`).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};

/// Environment variable: `true` to address S3 as `endpoint/bucket/key` (emulators); default false.
pub const S3_FORCE_PATH_STYLE: &str = "S3_FORCE_PATH_STYLE";

/// Time to open a connection: a hung or unreachable endpoint fails fast.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt (request sent to response received); the SDK retries a timed-out attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole call, retries and back-off included: a hung connection can never eat a sweep's
/// deadline (the reaper stops starting locks 10 s before it; the functions run for 60–180 s).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(25);
/// Attempts per call (the first one included): the SDK's standard retry mode with its back-off.
pub const MAX_ATTEMPTS: u32 = 3;

/// The timeouts every client of every function has.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Bounded retries (standard mode: throttling and transient errors, exponential back-off).
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

/// The SDK's loader with lockreaper's timeouts and retries; everything else from the environment.
pub fn loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeout_config())
        .retry_config(retry_config())
}

/// The SDK configuration shared by every client of one process.
#[derive(Clone, Debug)]
pub struct Aws {
    pub sdk: SdkConfig,
    pub s3_path_style: bool,
}

impl Aws {
    /// Loads from the environment, as in Lambda.
    pub async fn from_env() -> Result<Self, String> {
        let s3_path_style = match std::env::var(S3_FORCE_PATH_STYLE) {
            Err(_) => false,
            Ok(v) => parse_bool(&v).ok_or_else(|| {
                format!("{S3_FORCE_PATH_STYLE}={v:?} is not a boolean; expected `true` or `false`")
            })?,
        };
        let sdk = loader().load().await;
        Ok(Aws { sdk, s3_path_style })
    }

    /// Loads from the standard AWS environment with a region, profile and endpoint URL applied on
    /// top (the CLI's `--region`, `--profile`, `--endpoint-url`); blank values are ignored.
    pub async fn with_overrides(
        region: Option<&str>,
        profile: Option<&str>,
        endpoint_url: Option<&str>,
        s3_path_style: bool,
    ) -> Self {
        let given = |v: Option<&str>| {
            v.map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = given(region) {
            loader = loader.region(aws_config::Region::new(region));
        }
        if let Some(profile) = given(profile) {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = given(endpoint_url) {
            loader = loader.endpoint_url(url);
        }
        Aws {
            sdk: loader.load().await,
            s3_path_style,
        }
    }

    /// Whether a region is configured (every call fails without one).
    pub fn has_region(&self) -> bool {
        self.sdk.region().is_some()
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk)
            .force_path_style(self.s3_path_style)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    pub fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk)
    }

    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

    #[cfg(feature = "iam")]
    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk)
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`), case-insensitive.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" | "" => Some(false),
        _ => None,
    }
}
