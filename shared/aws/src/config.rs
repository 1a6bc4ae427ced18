//! Building SDK clients from the standard AWS environment.
//!
//! Everything comes from what every AWS SDK reads (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`
//! and the per-service `AWS_ENDPOINT_URL_<SERVICE>`), so the same binary talks to AWS in Lambda and
//! to a local emulator on a laptop. The one extra setting is [`S3_FORCE_PATH_STYLE`]: emulators on
//! `localhost` cannot serve virtual-hosted bucket names (`bucket.localhost`).

use aws_config::{BehaviorVersion, SdkConfig};

/// Environment variable: `true` to address S3 as `endpoint/bucket/key` (emulators); default false.
pub const S3_FORCE_PATH_STYLE: &str = "S3_FORCE_PATH_STYLE";

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
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Ok(Aws { sdk, s3_path_style })
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

    pub fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.sdk)
    }

    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
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
