//! The state check against encrypted state objects, on the project's emulator (moto accepts and
//! reports `ServerSideEncryption: aws:kms` on PutObject/HeadObject).
//!
//! With SSE-KMS, S3's ETag is not the object's MD5 ("Objects encrypted by SSE-C or SSE-KMS have
//! ETags that are not an MD5 digest of their object data", S3 API reference, Object). moto keeps
//! an MD5 ETag even then, so these tests show that the decision comes from the encryption header
//! the emulator returns, not from the ETag's value: an ETag equal to the MD5 is still not trusted.

#![allow(clippy::unwrap_used)]

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use lockreaper_aws::state::StateObjects;
use lockreaper_core::StatePath;
use lockreaper_testkit::TestEnv;
use md5::{Digest, Md5};

const STATE: &[u8] = br#"{"version":4,"terraform_version":"1.15.5","serial":3,"lineage":"3f1c","outputs":{},"resources":[]}"#;

async fn put(
    env: &TestEnv,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    sse: Option<ServerSideEncryption>,
) -> StatePath {
    env.aws
        .s3()
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .set_server_side_encryption(sse)
        .send()
        .await
        .unwrap();
    StatePath::parse(&format!("{bucket}/{key}")).unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sse_kms_state_etag_is_not_taken_for_its_md5_but_the_read_digest_is_exact() {
    let env = TestEnv::new("sse-kms").await;
    let bucket = env.name("state");
    env.create_state_bucket(&bucket).await;
    let state = put(
        &env,
        &bucket,
        "kms/terraform.tfstate",
        STATE.to_vec(),
        Some(ServerSideEncryption::AwsKms),
    )
    .await;
    let objects = StateObjects::new(env.aws.s3());

    let head = objects.head(&state).await.unwrap().unwrap();
    assert_eq!(head.server_side_encryption.as_deref(), Some("aws:kms"));
    assert!(head.etag.is_some(), "{head:?}");
    assert_eq!(
        head.md5_from_etag(),
        None,
        "an SSE-KMS ETag must never count as the MD5 (here it even looks like one): {head:?}"
    );
    assert_eq!(
        objects.md5(&state).await.unwrap().as_deref(),
        Some(md5_hex(STATE).as_str()),
        "the digest read from the body is exact whatever the encryption"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_and_an_sse_s3_state_keep_their_md5_etag() {
    let env = TestEnv::new("sse-s3").await;
    let bucket = env.name("state");
    env.create_state_bucket(&bucket).await;
    let objects = StateObjects::new(env.aws.s3());
    for (key, sse) in [
        ("plain/terraform.tfstate", None),
        ("s3/terraform.tfstate", Some(ServerSideEncryption::Aes256)),
    ] {
        let state = put(&env, &bucket, key, STATE.to_vec(), sse.clone()).await;
        let head = objects.head(&state).await.unwrap().unwrap();
        assert_eq!(
            head.server_side_encryption.as_deref(),
            sse.as_ref().map(|s| s.as_str()),
            "{key}"
        );
        assert_eq!(
            head.md5_from_etag().as_deref(),
            Some(md5_hex(STATE).as_str()),
            "{key}: {head:?}"
        );
    }
}

/// A state far larger than one network buffer is hashed as it streams in: the digest of the
/// whole object, not of its first chunk.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_state_is_hashed_whole_while_streaming() {
    let env = TestEnv::new("large-state").await;
    let bucket = env.name("state");
    env.create_state_bucket(&bucket).await;
    // 12 MiB of varying bytes, so a digest of any part differs from the whole's.
    let body: Vec<u8> = (0..12 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let expected = md5_hex(&body);
    let state = put(
        &env,
        &bucket,
        "big/terraform.tfstate",
        body,
        Some(ServerSideEncryption::AwsKms),
    )
    .await;
    let objects = StateObjects::new(env.aws.s3());
    assert_eq!(
        objects.md5(&state).await.unwrap().as_deref(),
        Some(expected.as_str())
    );
    let head = objects.head(&state).await.unwrap().unwrap();
    assert_eq!(head.size, Some(12 * 1024 * 1024));
}
