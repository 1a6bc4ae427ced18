//! Issue 11 item 10: every AWS call has a timeout and bounded retries. An endpoint that accepts
//! connections and never answers (a hung connection) must fail the call within the operation
//! timeout, not hang until Lambda kills the function.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{Credentials, Region};
use lockreaper_aws::config::{loader, ATTEMPT_TIMEOUT, OPERATION_TIMEOUT};

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_connection_fails_the_call_within_the_operation_timeout() {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept every connection and keep it open, silent.
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let sdk = loader()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .load()
        .await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);

    let started = Instant::now();
    // Without SDK timeouts the call would wait forever; the outer bound turns that into a failure.
    let result = tokio::time::timeout(
        OPERATION_TIMEOUT + Duration::from_secs(30),
        dynamodb.list_tables().send(),
    )
    .await
    .expect("the call hung: no SDK operation timeout");
    let took = started.elapsed();
    assert!(result.is_err(), "a silent endpoint cannot answer");
    assert!(
        took >= ATTEMPT_TIMEOUT,
        "gave up before one attempt timed out: {took:?}"
    );
    assert!(
        took < OPERATION_TIMEOUT + Duration::from_secs(3),
        "the call outlived the operation timeout: {took:?}"
    );
    let error = lockreaper_aws::AwsError::from_sdk(result.unwrap_err(), "list tables", "-");
    assert_eq!(
        error.kind,
        lockreaper_aws::AwsErrorKind::Transient,
        "a timeout is transient: {error}"
    );
    hold.abort();
}
