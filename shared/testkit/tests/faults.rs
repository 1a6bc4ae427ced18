//! The fault proxy against the emulator, with the SDK clients and retry policy the functions use
//! (`lockreaper_aws::Aws`, standard retries: 3 attempts): what the SDK does with each fault AWS
//! can send, and what the emulator holds afterwards.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use lockreaper_aws::{AwsError, AwsErrorKind};
use lockreaper_testkit::faults::{Decision, Fault, FaultProxy, Rule};
use lockreaper_testkit::TestEnv;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// A lock table with one Terraform-shaped lock, written straight to the emulator.
async fn table_with_lock(env: &TestEnv) -> String {
    let table = env.name("locks");
    env.create_lock_table(&table, "LockID").await;
    env.aws
        .dynamodb()
        .put_item()
        .table_name(&table)
        .item("LockID", s("state/app.tfstate"))
        .item("Info", s(r#"{"ID":"a","Path":"state/app.tfstate"}"#))
        .send()
        .await
        .unwrap();
    table
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_get_item_is_retried_by_the_sdk_and_succeeds() {
    let env = TestEnv::new("faults-throttled-get").await;
    let table = table_with_lock(&env).await;
    let proxy = FaultProxy::start(
        &env.emulator.endpoint,
        1,
        vec![Rule::new("dynamodb", "GetItem", 1.0, Fault::Throttle).at_most(1)],
    )
    .await;
    let dynamodb = proxy.aws(&env.aws).dynamodb();

    let out = dynamodb
        .get_item()
        .table_name(&table)
        .key("LockID", s("state/app.tfstate"))
        .send()
        .await
        .expect("the SDK retries a throttled GetItem");

    assert!(out.item.is_some_and(|i| i.contains_key("Info")));
    assert_eq!(
        proxy.faulted_count(
            "dynamodb",
            "GetItem",
            "ProvisionedThroughputExceededException"
        ),
        1,
        "{}",
        proxy.report()
    );
    assert_eq!(proxy.request_count("dynamodb", "GetItem"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_throttling_exhausts_the_sdk_retries_and_is_classified_transient() {
    let env = TestEnv::new("faults-throttled-out").await;
    let table = table_with_lock(&env).await;
    for (fault, code) in [
        (Fault::Throttle, "ProvisionedThroughputExceededException"),
        (Fault::DynamoDbThrottlingException, "ThrottlingException"),
        (Fault::InternalError, "InternalServerError"),
    ] {
        let proxy = FaultProxy::start(
            &env.emulator.endpoint,
            2,
            vec![Rule::new("dynamodb", "GetItem", 1.0, fault)],
        )
        .await;
        let result = proxy
            .aws(&env.aws)
            .dynamodb()
            .get_item()
            .table_name(&table)
            .key("LockID", s("state/app.tfstate"))
            .send()
            .await;
        let err = AwsError::from_sdk(result.unwrap_err(), "read lock", &table);

        assert_eq!(err.kind, AwsErrorKind::Transient, "{fault:?}: {err}");
        assert!(err.message.starts_with(code), "{fault:?}: {err}");
        // The SDK's standard retry policy: 3 attempts, every one of them faulted.
        assert_eq!(
            proxy.faulted_count("dynamodb", "GetItem", code),
            3,
            "{}",
            proxy.report()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_a_conditional_put_makes_the_retry_fail_its_own_condition() {
    let env = TestEnv::new("faults-lost-answer").await;
    let table = env.name("locks");
    env.create_lock_table(&table, "LockID").await;
    let proxy = FaultProxy::start(
        &env.emulator.endpoint,
        3,
        vec![Rule::new("dynamodb", "PutItem", 1.0, Fault::LostAnswer).at_most(1)],
    )
    .await;
    let info = r#"{"ID":"lost-answer","Path":"state/app.tfstate"}"#;

    // Terraform's lock acquisition: PutItem conditional on no lock being there.
    let result = proxy
        .aws(&env.aws)
        .dynamodb()
        .put_item()
        .table_name(&table)
        .item("LockID", s("state/app.tfstate"))
        .item("Info", s(info))
        .condition_expression("attribute_not_exists(LockID)")
        .send()
        .await;
    let err = AwsError::from_sdk(
        result.expect_err("the retried write finds its own first write"),
        "acquire lock",
        &table,
    );

    assert_eq!(err.kind, AwsErrorKind::ConditionFailed, "{err}");
    assert_eq!(proxy.faulted_count("dynamodb", "PutItem", "LostAnswer"), 1);
    assert_eq!(proxy.request_count("dynamodb", "PutItem"), 2);
    // Read past the proxy: the first attempt was applied.
    let item = env
        .aws
        .dynamodb()
        .get_item()
        .table_name(&table)
        .key("LockID", s("state/app.tfstate"))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the first write happened although its answer was lost");
    assert_eq!(item.get("Info"), Some(&s(info)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_reset_before_a_write_is_retried_and_the_write_happens_once() {
    let env = TestEnv::new("faults-reset").await;
    let table = env.name("locks");
    env.create_lock_table(&table, "LockID").await;
    let proxy = FaultProxy::start(
        &env.emulator.endpoint,
        4,
        vec![Rule::new("dynamodb", "PutItem", 1.0, Fault::ConnectionReset).at_most(1)],
    )
    .await;

    proxy
        .aws(&env.aws)
        .dynamodb()
        .put_item()
        .table_name(&table)
        .item("LockID", s("state/app.tfstate"))
        .item("Info", s(r#"{"ID":"reset"}"#))
        .condition_expression("attribute_not_exists(LockID)")
        .send()
        .await
        .expect("a reset request was never applied, so its retry's condition holds");

    assert_eq!(
        proxy.faulted_count("dynamodb", "PutItem", "ConnectionReset"),
        1
    );
    assert_eq!(proxy.request_count("dynamodb", "PutItem"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_slowdown_on_head_object_is_retried() {
    let env = TestEnv::new("faults-s3-slowdown").await;
    let bucket = env.name("state");
    env.create_state_bucket(&bucket).await;
    env.aws
        .s3()
        .put_object()
        .bucket(&bucket)
        .key("app.tfstate.tflock")
        .body(br#"{"ID":"s3-lock"}"#.to_vec().into())
        .send()
        .await
        .unwrap();
    let proxy = FaultProxy::start(
        &env.emulator.endpoint,
        5,
        vec![
            Rule::new("s3", "HeadObject", 1.0, Fault::Throttle).at_most(1),
            Rule::new("s3", "GetObject", 1.0, Fault::InternalError).at_most(1),
        ],
    )
    .await;
    let s3 = proxy.aws(&env.aws).s3();

    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("app.tfstate.tflock")
        .send()
        .await
        .expect("the SDK retries SlowDown");
    let body = s3
        .get_object()
        .bucket(&bucket)
        .key("app.tfstate.tflock")
        .send()
        .await
        .expect("the SDK retries InternalError")
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();

    assert!(head.e_tag.is_some());
    assert_eq!(&body[..], br#"{"ID":"s3-lock"}"#);
    assert_eq!(proxy.faulted_count("s3", "HeadObject", "SlowDown"), 1);
    assert_eq!(proxy.faulted_count("s3", "GetObject", "InternalError"), 1);
    assert_eq!(proxy.request_count("s3", "HeadObject"), 2);
    assert_eq!(proxy.request_count("s3", "GetObject"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn sns_throttling_is_retried() {
    let env = TestEnv::new("faults-query-throttling").await;
    let topic = env.topic_with_queue("alerts").await;
    let proxy = FaultProxy::start(
        &env.emulator.endpoint,
        6,
        vec![Rule::new("sns", "Publish", 1.0, Fault::Throttle).at_most(1)],
    )
    .await;
    let aws = proxy.aws(&env.aws);

    aws.sns()
        .publish()
        .topic_arn(&topic.topic_arn)
        .message("hello")
        .send()
        .await
        .expect("the SDK retries Throttling");

    assert_eq!(
        proxy.faulted_count("sns", "Publish", "Throttling"),
        1,
        "{}",
        proxy.report()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_secrets_manager_throttling_is_classified_transient() {
    let env = TestEnv::new("faults-secrets").await;
    let arn = env.create_secret("signing", "k").await;
    let proxy = FaultProxy::start(
        &env.emulator.endpoint,
        7,
        vec![Rule::new("secretsmanager", "*", 1.0, Fault::Throttle)],
    )
    .await;

    let result = proxy
        .aws(&env.aws)
        .secrets()
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await;
    let err = AwsError::from_sdk(result.unwrap_err(), "read secret", &arn);

    assert_eq!(err.kind, AwsErrorKind::Transient, "{err}");
    assert_eq!(
        proxy.faulted_count("secretsmanager", "GetSecretValue", "ThrottlingException"),
        3
    );
}

/// 30 GetItems through a proxy faulting about half of them: every decision, and what the SDK made
/// of it.
async fn get_items_under(env: &TestEnv, table: &str, seed: u64) -> (Vec<Decision>, Vec<bool>) {
    let proxy = FaultProxy::start(
        &env.emulator.endpoint,
        seed,
        vec![Rule::new("dynamodb", "GetItem", 0.5, Fault::Throttle)],
    )
    .await;
    // The SDK's retry policy with a 1 ms backoff: which requests are faulted does not depend on
    // how long the SDK waits between attempts, and 90 GetItems at the default backoff take a minute.
    let mut aws = proxy.aws(&env.aws);
    aws.sdk = aws
        .sdk
        .to_builder()
        .retry_config(RetryConfig::standard().with_initial_backoff(Duration::from_millis(1)))
        .build();
    let dynamodb = aws.dynamodb();
    let mut succeeded = Vec::new();
    for _ in 0..30 {
        let result = dynamodb
            .get_item()
            .table_name(table)
            .key("LockID", s("state/app.tfstate"))
            .send()
            .await;
        succeeded.push(result.is_ok());
    }
    (proxy.decisions(), succeeded)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_seed_gives_the_same_fault_sequence() {
    let env = TestEnv::new("faults-seeded").await;
    let table = table_with_lock(&env).await;

    let (first, first_outcomes) = get_items_under(&env, &table, 42).await;
    let (again, again_outcomes) = get_items_under(&env, &table, 42).await;
    let (other, _) = get_items_under(&env, &table, 43).await;

    assert_eq!(first, again);
    assert_eq!(first_outcomes, again_outcomes);
    let faulted = first.iter().filter(|d| d.fault.is_some()).count();
    assert!(
        faulted > 5 && faulted < first.len() - 5,
        "about half of {} requests faulted, not {faulted}",
        first.len()
    );
    let pattern = |ds: &[Decision]| ds.iter().map(|d| d.fault.is_some()).collect::<Vec<_>>();
    assert_ne!(pattern(&first), pattern(&other), "the seed decides");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_delayed_past_the_attempt_timeout_makes_the_sdk_retry_an_applied_write() {
    let env = TestEnv::new("faults-delayed").await;
    let table = env.name("locks");
    env.create_lock_table(&table, "LockID").await;
    let proxy = FaultProxy::start(
        &env.emulator.endpoint,
        8,
        vec![Rule::new(
            "dynamodb",
            "PutItem",
            1.0,
            Fault::DelayedAnswer(Duration::from_secs(3)),
        )
        .at_most(1)],
    )
    .await;
    let mut aws = proxy.aws(&env.aws);
    aws.sdk = aws
        .sdk
        .to_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(800))
                .build(),
        )
        .build();

    let result = aws
        .dynamodb()
        .put_item()
        .table_name(&table)
        .item("LockID", s("state/app.tfstate"))
        .item("Info", s(r#"{"ID":"delayed"}"#))
        .condition_expression("attribute_not_exists(LockID)")
        .send()
        .await;
    let err = AwsError::from_sdk(
        result.expect_err("the retry finds the write whose answer came too late"),
        "acquire lock",
        &table,
    );

    assert_eq!(err.kind, AwsErrorKind::ConditionFailed, "{err}");
    assert_eq!(
        proxy.faulted_count("dynamodb", "PutItem", "DelayedAnswer"),
        1
    );
    assert_eq!(proxy.request_count("dynamodb", "PutItem"), 2);
}
