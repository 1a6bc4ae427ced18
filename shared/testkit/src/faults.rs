//! A seeded, deterministic fault-injecting HTTP/1.1 proxy between SDK clients and the emulator.
//!
//! Clients (or functions under test, through [`FaultProxy::env`]) get the proxy's URL as their
//! endpoint. For each request the proxy finds the service (the SigV4 credential scope in the
//! `Authorization` header) and the operation (`X-Amz-Target` for JSON protocols, `Action=` for the
//! query protocol, method + path + query for S3), and a table of [`Rule`]s decides whether to fault
//! it. A faulted request is answered with exactly what AWS sends for that failure (see
//! [`Fault`]), or its connection is reset, or its answer is delayed or lost; every other request is
//! forwarded to the emulator unchanged.
//!
//! Determinism: the decision for the k-th request of one (service, operation) is a pure function of
//! the seed, the rule and k, so the same seed and the same sequence of requests per operation give
//! the same faults, however requests to *different* operations interleave.
//!
//! Limits, on purpose: S3 is recognised in path style only (the tests and the emulator setup force
//! `S3_FORCE_PATH_STYLE`), and `Expect: 100-continue` is not honoured (the SDK sends it only for
//! large uploads, which lockreaper never makes).

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockreaper_aws::Aws;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to a request a rule selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The service's own throttling answer; the request is not applied:
    /// - DynamoDB: 400 `ProvisionedThroughputExceededException` (JSON `__type`);
    /// - S3: 503 `SlowDown` (XML `<Error>`);
    /// - SNS, CloudWatch (query protocol): 400 `Throttling` (XML `<ErrorResponse>`);
    /// - Secrets Manager: 400 `ThrottlingException` (JSON).
    ///
    /// Every one of these codes is in the Rust SDK's `THROTTLING_ERRORS` (aws-runtime
    /// `src/retries/classifiers.rs`: "Throttling", "ThrottlingException",
    /// "ProvisionedThroughputExceededException", "SlowDown"), so the SDK retries them with
    /// throttling backoff; botocore's `_retry.json` lists the same codes with status 400 (and 503).
    Throttle,
    /// DynamoDB only: 400 `ThrottlingException` with DynamoDB's `com.amazon.coral.availability`
    /// namespace (what DynamoDB sends when the request rate, not a table's capacity, is exceeded).
    DynamoDbThrottlingException,
    /// The service's 500; the request is not applied: DynamoDB `InternalServerError`, S3
    /// `InternalError`, SNS `InternalError`, CloudWatch and Secrets Manager `InternalServiceError`.
    /// The SDK retries it by status (aws-smithy-runtime `TRANSIENT_ERROR_STATUS_CODES`: 500, 502,
    /// 503, 504).
    InternalError,
    /// S3 only: 403 `AccessDenied` ("Access Denied"), what S3 answers when a role or bucket policy
    /// refuses the request — and, for GetObject/HeadObject of a key that does not exist, when the
    /// caller lacks `s3:ListBucket` (S3 API reference, HeadObject "Permissions"). Not retried: the
    /// SDK classifies 403 as neither throttling nor transient.
    AccessDenied,
    /// The request is read, not forwarded, and the TCP connection is reset (RST). The SDK sees an
    /// I/O error, which aws-smithy-http-client's `to_connector_error` classifies as `io` and the
    /// retry classifier as transient.
    ConnectionReset,
    /// The request is forwarded (so it is applied), and its answer held back this long before it
    /// is sent: past an SDK attempt timeout, the SDK retries a request that already happened.
    DelayedAnswer(Duration),
    /// The request is forwarded and applied, the emulator's answer read in full, and then the
    /// connection is reset instead of answering: the SDK retries a write that already happened
    /// (a conditional write then fails its own condition).
    LostAnswer,
}

impl Fault {
    fn is_transport(self) -> bool {
        matches!(
            self,
            Fault::ConnectionReset | Fault::DelayedAnswer(_) | Fault::LostAnswer
        )
    }
}

/// One line of the rule table: fault `share` (0.0–1.0) of the requests to `service` /
/// `operation` (`"*"` for any) with `fault`.
#[derive(Debug, Clone)]
pub struct Rule {
    service: String,
    operation: String,
    share: f64,
    fault: Fault,
    at_most: Option<u64>,
    after: u64,
}

impl Rule {
    /// `service` is the SigV4 signing name: `dynamodb`, `s3`, `sns`, `monitoring` (CloudWatch),
    /// `secretsmanager`, or `"*"` (transport faults only: an answer's shape depends on the
    /// service). Panics on a share outside 0.0–1.0 or an answer the service does not send: a
    /// wrong rule table is a bug in the test.
    pub fn new(service: &str, operation: &str, share: f64, fault: Fault) -> Rule {
        assert!(
            (0.0..=1.0).contains(&share),
            "fault share {share} for {service}/{operation} is not between 0.0 and 1.0"
        );
        if !fault.is_transport() {
            assert!(
                service != "*" && aws_error(service, fault).is_some(),
                "{fault:?} has no AWS answer for service {service:?}; use one of dynamodb, s3, \
                 sns, monitoring, secretsmanager (DynamoDbThrottlingException: dynamodb only)"
            );
        }
        Rule {
            service: service.to_owned(),
            operation: operation.to_owned(),
            share,
            fault,
            at_most: None,
            after: 0,
        }
    }

    /// Leaves the first `n` requests of each matching (service, operation) alone (e.g. a
    /// proposal's claim, to fault the completion written after it).
    pub fn after(mut self, n: u64) -> Rule {
        self.after = n;
        self
    }

    /// Faults at most `n` requests in all (e.g. only the first attempt of a write).
    pub fn at_most(mut self, n: u64) -> Rule {
        self.at_most = Some(n);
        self
    }

    fn matches(&self, service: &str, operation: &str) -> bool {
        (self.service == "*" || self.service == service)
            && (self.operation == "*" || self.operation == operation)
    }
}

/// What the proxy did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub service: String,
    pub operation: String,
    /// `None`: forwarded untouched; otherwise the fault's label (the AWS error code sent, or
    /// `ConnectionReset`, `DelayedAnswer`, `LostAnswer`).
    pub fault: Option<String>,
}

#[derive(Default)]
struct Tally {
    /// Requests seen per (service, operation): also the index k of the next one.
    requests: BTreeMap<(String, String), u64>,
    /// How often each rule fired (for `at_most`).
    fired: Vec<u64>,
    /// Requests faulted per (service, operation, fault label).
    faulted: BTreeMap<(String, String, String), u64>,
    decisions: Vec<Decision>,
}

struct Shared {
    seed: u64,
    rules: Vec<Rule>,
    upstream: String,
    tally: Mutex<Tally>,
}

impl Shared {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        // A panic while holding the lock cannot leave the counters half-updated in a way that
        // matters more than losing them; keep counting.
        self.tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides (and records) what to do with the next request to `service`/`operation`.
    fn decide(&self, service: &str, operation: &str) -> Option<Fault> {
        let mut tally = self.tally();
        let key = (service.to_owned(), operation.to_owned());
        let k = *tally.requests.get(&key).unwrap_or(&0);
        tally.requests.insert(key, k + 1);
        if tally.fired.len() < self.rules.len() {
            tally.fired.resize(self.rules.len(), 0);
        }
        let mut chosen = None;
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.matches(service, operation) {
                continue;
            }
            if rule.at_most.is_some_and(|n| tally.fired[i] >= n) || k < rule.after {
                continue;
            }
            if unit_draw(self.seed, i as u64, service, operation, k) < rule.share {
                tally.fired[i] += 1;
                chosen = Some(rule.fault);
                break;
            }
        }
        let label = chosen.map(|f| fault_label(service, f).to_owned());
        if let Some(label) = &label {
            *tally
                .faulted
                .entry((service.to_owned(), operation.to_owned(), label.clone()))
                .or_insert(0) += 1;
        }
        tally.decisions.push(Decision {
            service: service.to_owned(),
            operation: operation.to_owned(),
            fault: label,
        });
        chosen
    }
}

/// The proxy: listens on a local port until dropped.
pub struct FaultProxy {
    url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:<port>`, the emulator).
    pub async fn start(upstream: &str, seed: u64, rules: Vec<Rule>) -> FaultProxy {
        let upstream = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind a local port for the fault proxy");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Shared {
            seed,
            rules,
            upstream,
            tally: Mutex::new(Tally::default()),
        });
        let for_task = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                tokio::spawn(serve(client, for_task.clone()));
            }
        });
        FaultProxy {
            url: format!("http://127.0.0.1:{port}"),
            shared,
            task,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same SDK configuration as `base` (credentials, region, retry policy, S3 addressing),
    /// pointed at this proxy.
    pub fn aws(&self, base: &Aws) -> Aws {
        Aws {
            sdk: base.sdk.to_builder().endpoint_url(&self.url).build(),
            s3_path_style: base.s3_path_style,
        }
    }

    /// As [`FaultProxy::aws`], with the timeouts and bounded retries every function's clients have
    /// (`lockreaper_aws::config::timeout_config` / `retry_config`, what `Aws::from_env` loads in
    /// Lambda), so an in-process handler under test retries a fault exactly as it would deployed.
    pub fn function_aws(&self, base: &Aws) -> Aws {
        Aws {
            sdk: base
                .sdk
                .to_builder()
                .endpoint_url(&self.url)
                .timeout_config(lockreaper_aws::config::timeout_config())
                .retry_config(lockreaper_aws::config::retry_config())
                .build(),
            s3_path_style: base.s3_path_style,
        }
    }

    /// Environment for a child process (a function under `cargo lambda watch`): `base` (e.g.
    /// [`crate::Emulator::env`]) with `AWS_ENDPOINT_URL` pointing at this proxy.
    pub fn env(&self, base: Vec<(String, String)>) -> Vec<(String, String)> {
        let mut env: Vec<_> = base
            .into_iter()
            .filter(|(k, _)| k != "AWS_ENDPOINT_URL")
            .collect();
        env.push(("AWS_ENDPOINT_URL".to_owned(), self.url.clone()));
        env
    }

    /// Requests faulted, per (service, operation, fault label).
    pub fn faulted(&self) -> BTreeMap<(String, String, String), u64> {
        self.shared.tally().faulted.clone()
    }

    /// Requests faulted for one (service, operation, fault label).
    pub fn faulted_count(&self, service: &str, operation: &str, label: &str) -> u64 {
        let key = (service.to_owned(), operation.to_owned(), label.to_owned());
        *self.shared.tally().faulted.get(&key).unwrap_or(&0)
    }

    /// All requests faulted.
    pub fn total_faulted(&self) -> u64 {
        self.shared.tally().faulted.values().sum()
    }

    /// Requests seen (faulted or not), per (service, operation).
    pub fn requests(&self) -> BTreeMap<(String, String), u64> {
        self.shared.tally().requests.clone()
    }

    /// Requests seen for one (service, operation).
    pub fn request_count(&self, service: &str, operation: &str) -> u64 {
        let key = (service.to_owned(), operation.to_owned());
        *self.shared.tally().requests.get(&key).unwrap_or(&0)
    }

    /// Every decision, in the order requests arrived.
    pub fn decisions(&self) -> Vec<Decision> {
        self.shared.tally().decisions.clone()
    }

    /// A table of requests seen and faulted per (service, operation), for a test's output.
    pub fn report(&self) -> String {
        let tally = self.shared.tally();
        let mut out = format!(
            "{:<16} {:<28} {:>8} {:>8}  faults\n",
            "service", "operation", "requests", "faulted"
        );
        for ((service, operation), seen) in &tally.requests {
            let faults: Vec<String> = tally
                .faulted
                .iter()
                .filter(|((s, o, _), _)| s == service && o == operation)
                .map(|((_, _, label), n)| format!("{label} x{n}"))
                .collect();
            let faulted: u64 = tally
                .faulted
                .iter()
                .filter(|((s, o, _), _)| s == service && o == operation)
                .map(|(_, n)| n)
                .sum();
            out.push_str(&format!(
                "{service:<16} {operation:<28} {seen:>8} {faulted:>8}  {}\n",
                faults.join(", ")
            ));
        }
        out
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic draws

/// FNV-1a: a stable string hash (std's `DefaultHasher` is not guaranteed stable across releases).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A number in [0, 1) determined by the seed, the rule, the operation and the request's index.
fn unit_draw(seed: u64, rule: u64, service: &str, operation: &str, k: u64) -> f64 {
    let mut h = splitmix64(seed);
    for part in [rule, fnv1a(service), fnv1a(operation), k] {
        h = splitmix64(h ^ part);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

// ---------------------------------------------------------------------------------------------
// The wire shapes of AWS errors

struct AwsErrorAnswer {
    status: u16,
    reason: &'static str,
    code: &'static str,
    /// JSON protocols: the `__type` AWS sends (DynamoDB namespaces it; the SDKs keep what follows
    /// `#`: botocore `parsers.py` `_do_error_parse`, "com.aws.dynamodb.vAPI#ProvisionedThroughput
    /// ExceededException", and aws-smithy-json's error metadata parser do the same).
    json_type: &'static str,
    message: &'static str,
    /// Query protocol `<Type>`: `Sender` for throttling, `Receiver` for the service's own failure.
    sender: bool,
}

/// The error AWS answers `service` with for `fault`, or `None` if it sends no such answer.
fn aws_error(service: &str, fault: Fault) -> Option<AwsErrorAnswer> {
    let e = |status, reason, code, json_type, message, sender| AwsErrorAnswer {
        status,
        reason,
        code,
        json_type,
        message,
        sender,
    };
    Some(match (service, fault) {
        // DynamoDB: JSON 1.0, 400 with the namespaced `__type`. The low-level response shown in
        // the developer guide's "Error handling with DynamoDB" (docs.aws.amazon.com/amazondynamodb/
        // latest/developerguide/Programming.Errors.html): `HTTP/1.1 400 Bad Request`,
        // `x-amzn-RequestId`, `Content-Type: application/x-amz-json-1.0`,
        // `{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":...}`.
        ("dynamodb", Fault::Throttle) => e(
            400,
            "Bad Request",
            "ProvisionedThroughputExceededException",
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. \
             Consider increasing your provisioning level with the UpdateTable API.",
            true,
        ),
        ("dynamodb", Fault::DynamoDbThrottlingException) => e(
            400,
            "Bad Request",
            "ThrottlingException",
            "com.amazon.coral.availability#ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
            true,
        ),
        ("dynamodb", Fault::InternalError) => e(
            500,
            "Internal Server Error",
            "InternalServerError",
            "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "Internal server error",
            false,
        ),
        // S3: REST-XML `<Error>` documents; "503 Slow Down / Please reduce your request rate." and
        // "500 InternalError / We encountered an internal error. Please try again." are the
        // S3 API reference's "Error responses" list (S3 "Error best practices": retry both).
        ("s3", Fault::Throttle) => e(
            503,
            "Slow Down",
            "SlowDown",
            "",
            "Please reduce your request rate.",
            true,
        ),
        ("s3", Fault::InternalError) => e(
            500,
            "Internal Server Error",
            "InternalError",
            "",
            "We encountered an internal error. Please try again.",
            false,
        ),
        // "AccessDenied / Access Denied / 403 Forbidden": the S3 API reference's error code list.
        ("s3", Fault::AccessDenied) => {
            e(403, "Forbidden", "AccessDenied", "", "Access Denied", true)
        }
        // Query protocol: `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>`;
        // `Throttling` / 400 is botocore `_retry.json`'s "throttling" policy.
        ("sns" | "monitoring", Fault::Throttle) => e(
            400,
            "Bad Request",
            "Throttling",
            "Throttling",
            "Rate exceeded",
            true,
        ),
        ("sns", Fault::InternalError) => e(
            500,
            "Internal Server Error",
            "InternalError",
            "InternalError",
            "Request could not be processed",
            false,
        ),
        ("monitoring", Fault::InternalError) => e(
            500,
            "Internal Server Error",
            "InternalServiceError",
            "InternalServiceError",
            "Internal service error",
            false,
        ),
        // Secrets Manager: JSON 1.1; throttling is the AWS-wide `ThrottlingException`.
        ("secretsmanager", Fault::Throttle) => e(
            400,
            "Bad Request",
            "ThrottlingException",
            "ThrottlingException",
            "Rate exceeded",
            true,
        ),
        ("secretsmanager", Fault::InternalError) => e(
            500,
            "Internal Server Error",
            "InternalServiceError",
            "InternalServiceError",
            "An error occurred on the server side.",
            false,
        ),
        _ => return None,
    })
}

fn fault_label(service: &str, fault: Fault) -> &'static str {
    match fault {
        Fault::ConnectionReset => "ConnectionReset",
        Fault::DelayedAnswer(_) => "DelayedAnswer",
        Fault::LostAnswer => "LostAnswer",
        _ => aws_error(service, fault).map_or("unknown", |e| e.code),
    }
}

/// CRC-32 (IEEE) of the body: DynamoDB sends it as `x-amz-crc32`, and botocore checks it
/// (`_retry.json`, dynamodb "crc32" policy).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

/// The full HTTP answer AWS sends for `fault` to this request.
fn error_answer(service: &str, fault: Fault, request: &Head, request_id: u64) -> Vec<u8> {
    let Some(err) = aws_error(service, fault) else {
        // Rule::new only admits answers a service sends.
        return Vec::new();
    };
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let id = format!("{:016X}", splitmix64(request_id));
    let mut headers: Vec<(String, String)> = vec![("Date".into(), date)];
    let body: String;
    let json_content_type = request
        .header("content-type")
        .filter(|ct| ct.starts_with("application/x-amz-json"))
        .map(str::to_owned);
    if service == "s3" {
        headers.push(("x-amz-request-id".into(), id.clone()));
        headers.push((
            "x-amz-id-2".into(),
            format!("{:016x}{:016x}", splitmix64(request_id ^ 1), request_id),
        ));
        // A HEAD answer has no body (RFC 9110 §9.3.2); the SDK then classifies by status alone.
        if request.method() == "HEAD" {
            body = String::new();
        } else {
            headers.push(("Content-Type".into(), "application/xml".into()));
            body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code>\
                 <Message>{}</Message><RequestId>{id}</RequestId><HostId>{}</HostId></Error>",
                err.code, err.message, request_id
            );
        }
    } else if let Some(content_type) = json_content_type {
        body = serde_json::json!({ "__type": err.json_type, "message": err.message }).to_string();
        headers.push(("x-amzn-RequestId".into(), id));
        headers.push(("Content-Type".into(), content_type));
        if service == "dynamodb" {
            headers.push(("x-amz-crc32".into(), crc32(body.as_bytes()).to_string()));
        }
        if matches!(service, "sns" | "monitoring") {
            // A JSON request to a query-compatible service: AWS adds the query error code.
            let kind = if err.sender { "Sender" } else { "Receiver" };
            headers.push(("x-amzn-query-error".into(), format!("{};{kind}", err.code)));
        }
    } else {
        let namespace = match service {
            "sns" => "http://sns.amazonaws.com/doc/2010-03-31/",
            _ => "http://monitoring.amazonaws.com/doc/2010-08-01/",
        };
        let kind = if err.sender { "Sender" } else { "Receiver" };
        body = format!(
            "<ErrorResponse xmlns=\"{namespace}\"><Error><Type>{kind}</Type><Code>{}</Code>\
             <Message>{}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>",
            err.code, err.message
        );
        headers.push(("x-amzn-RequestId".into(), id));
        headers.push(("Content-Type".into(), "text/xml".into()));
    }
    let mut out = format!("HTTP/1.1 {} {}\r\n", err.status, err.reason);
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    out.push_str(&body);
    out.into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Recognising the service and operation

/// The service from a SigV4 `Authorization` header:
/// `AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, ...`.
fn credential_scope_service(authorization: &str) -> Option<&str> {
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    let parts: Vec<&str> = scope.split('/').collect();
    match parts.as_slice() {
        [_, _, _, service, "aws4_request"] => Some(service),
        _ => None,
    }
}

/// `name`'s value in a form or query string (`a=1&Action=Publish`).
fn form_value<'a>(form: &'a str, name: &str) -> Option<&'a str> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// The S3 operation of a path-style request.
fn s3_operation(method: &str, target: &str, copy_source: bool) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // The Rust SDK (and the S3 model's URIs) name most object operations: `?x-id=GetObject`.
    if let Some(op) = form_value(query, "x-id").filter(|op| !op.is_empty()) {
        return op.to_owned();
    }
    let has = |name: &str| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(name))
    };
    let path = path.trim_start_matches('/');
    let (bucket, key) = match path.split_once('/') {
        Some((bucket, key)) => (bucket, key),
        None => (path, ""),
    };
    let op = match (method, bucket.is_empty(), key.is_empty()) {
        ("GET", true, _) => "ListBuckets",
        ("GET", false, true) if has("list-type") => "ListObjectsV2",
        ("GET", false, true) if has("versions") => "ListObjectVersions",
        ("GET", false, true) if has("versioning") => "GetBucketVersioning",
        ("GET", false, true) if has("location") => "GetBucketLocation",
        ("GET", false, true) if has("uploads") => "ListMultipartUploads",
        ("GET", false, true) if query.is_empty() => "ListObjects",
        ("GET", false, false) if has("tagging") => "GetObjectTagging",
        ("GET", false, false) if has("attributes") => "GetObjectAttributes",
        ("GET", false, false) => "GetObject",
        ("HEAD", false, true) => "HeadBucket",
        ("HEAD", false, false) => "HeadObject",
        ("PUT", false, true) if has("versioning") => "PutBucketVersioning",
        ("PUT", false, true) if query.is_empty() => "CreateBucket",
        ("PUT", false, false) if copy_source => "CopyObject",
        ("PUT", false, false) if has("partNumber") => "UploadPart",
        ("PUT", false, false) if has("tagging") => "PutObjectTagging",
        ("PUT", false, false) => "PutObject",
        ("DELETE", false, true) if query.is_empty() => "DeleteBucket",
        ("DELETE", false, false) if has("uploadId") => "AbortMultipartUpload",
        ("DELETE", false, false) => "DeleteObject",
        ("POST", false, true) if has("delete") => "DeleteObjects",
        ("POST", false, false) if has("uploads") => "CreateMultipartUpload",
        ("POST", false, false) if has("uploadId") => "CompleteMultipartUpload",
        _ => {
            let sub = query.split(['=', '&']).next().unwrap_or("");
            return format!(
                "{method} {}?{sub}",
                if key.is_empty() { "bucket" } else { "object" }
            );
        }
    };
    op.to_owned()
}

/// (service, operation) of a request.
fn identify(head: &Head, body: &[u8]) -> (String, String) {
    let target_header = head.header("x-amz-target");
    let service = head
        .header("authorization")
        .and_then(credential_scope_service)
        .map(str::to_owned)
        .or_else(|| {
            // Unsigned requests: the JSON target names the service's API.
            target_header.and_then(|t| {
                if t.starts_with("DynamoDB_") {
                    Some("dynamodb".to_owned())
                } else if t.starts_with("secretsmanager.") {
                    Some("secretsmanager".to_owned())
                } else {
                    None
                }
            })
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let method = head.method();
    let target = head.target();
    let operation = if let Some(t) = target_header {
        t.rsplit('.').next().unwrap_or(t).to_owned()
    } else if service == "s3" {
        s3_operation(method, target, head.header("x-amz-copy-source").is_some())
    } else {
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let form = std::str::from_utf8(body).unwrap_or("");
        form_value(query, "Action")
            .or_else(|| form_value(form, "Action"))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{method} {}", target.split('?').next().unwrap_or("")))
    };
    (service, operation)
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 framing

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;

struct Head {
    raw: Vec<u8>,
    start_line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: Vec<u8>) -> io::Result<Head> {
        let text = std::str::from_utf8(&raw).map_err(|_| invalid("HTTP head is not UTF-8"))?;
        let mut lines = text.split("\r\n");
        let start_line = lines.next().unwrap_or("").to_owned();
        let headers = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Ok(Head {
            start_line,
            headers,
            raw,
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Request: the method. Response: the protocol version.
    fn method(&self) -> &str {
        self.start_line.split(' ').next().unwrap_or("")
    }

    fn target(&self) -> &str {
        self.start_line.split(' ').nth(1).unwrap_or("")
    }

    fn status(&self) -> u16 {
        self.target().parse().unwrap_or(0)
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> io::Result<Option<usize>> {
        self.header("content-length")
            .map(|v| v.parse().map_err(|_| invalid("bad Content-Length")))
            .transpose()
    }

    fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Reads one message head; `None` on a clean end of stream before any byte of it.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<Head>> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let raw: Vec<u8> = buf.drain(..end + 4).collect();
            return Head::parse(raw).map(Some);
        }
        if buf.len() > MAX_HEAD {
            return Err(invalid("HTTP head over 64 KiB"));
        }
        if read_more(stream, buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
    }
}

/// A complete chunked body at the start of `buf`: (bytes it takes, decoded body).
fn parse_chunked(buf: &[u8]) -> io::Result<Option<(usize, Vec<u8>)>> {
    let mut pos = 0;
    let mut decoded = Vec::new();
    loop {
        let Some(line_end) = find(&buf[pos..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[pos..pos + line_end])
            .map_err(|_| invalid("chunk size line is not UTF-8"))?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
        pos += line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(end) = find(&buf[pos..], b"\r\n") else {
                    return Ok(None);
                };
                pos += end + 2;
                if end == 0 {
                    return Ok(Some((pos, decoded)));
                }
            }
        }
        if size > MAX_BODY {
            return Err(invalid("chunk over the body limit"));
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        decoded.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

/// Reads a body: (its bytes as sent, decoded).
async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    framing: Framing,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    match framing {
        Framing::Empty => Ok((Vec::new(), Vec::new())),
        Framing::Length(n) => {
            if n > MAX_BODY {
                return Err(invalid("body over the limit"));
            }
            while buf.len() < n {
                if read_more(stream, buf).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            let raw: Vec<u8> = buf.drain(..n).collect();
            Ok((raw.clone(), raw))
        }
        Framing::Chunked => loop {
            if let Some((used, decoded)) = parse_chunked(buf)? {
                let raw: Vec<u8> = buf.drain(..used).collect();
                return Ok((raw, decoded));
            }
            if buf.len() > MAX_BODY {
                return Err(invalid("body over the limit"));
            }
            if read_more(stream, buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        },
        Framing::UntilClose => {
            while read_more(stream, buf).await? > 0 {
                if buf.len() > MAX_BODY {
                    return Err(invalid("body over the limit"));
                }
            }
            let raw = std::mem::take(buf);
            Ok((raw.clone(), raw))
        }
    }
}

fn request_framing(head: &Head) -> io::Result<Framing> {
    if head.chunked() {
        return Ok(Framing::Chunked);
    }
    Ok(match head.content_length()? {
        Some(0) | None => Framing::Empty,
        Some(n) => Framing::Length(n),
    })
}

fn response_framing(request_method: &str, head: &Head) -> io::Result<Framing> {
    let status = head.status();
    if request_method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    if head.chunked() {
        return Ok(Framing::Chunked);
    }
    Ok(match head.content_length()? {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// The emulator's complete answer to one request, and whether the connection ends after it.
struct Answer {
    bytes: Vec<u8>,
    close: bool,
}

/// Sends one request to the emulator on a fresh connection and reads its whole answer.
async fn forward(upstream: &str, request: &[u8], method: &str) -> io::Result<Answer> {
    let mut up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    up.write_all(request).await?;
    let mut buf = Vec::new();
    let head = loop {
        let head = read_head(&mut up, &mut buf)
            .await?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        if head.status() == 100 {
            continue; // an interim answer: the final one follows
        }
        break head;
    };
    let framing = response_framing(method, &head)?;
    let (body, _) = read_body(&mut up, &mut buf, framing).await?;
    let close = framing == Framing::UntilClose || head.wants_close();
    let mut bytes = head.raw;
    bytes.extend_from_slice(&body);
    Ok(Answer { bytes, close })
}

/// Ends the connection with a TCP reset rather than an orderly close, as a failing network path
/// or load balancer does.
fn reset(client: TcpStream) {
    // SO_LINGER 0 makes close() send RST at once; it does not block (the blocking the deprecation
    // of `set_linger` warns about is for a non-zero linger).
    let _ = client.set_zero_linger();
    drop(client);
}

/// Serves one client connection: requests in sequence (HTTP/1.1 keep-alive).
async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let mut buf = Vec::new();
    loop {
        let Ok(Some(head)) = read_head(&mut client, &mut buf).await else {
            return;
        };
        let Ok(framing) = request_framing(&head) else {
            return;
        };
        let Ok((raw_body, body)) = read_body(&mut client, &mut buf, framing).await else {
            return;
        };
        let (service, operation) = identify(&head, &body);
        let fault = shared.decide(&service, &operation);
        let mut request = head.raw.clone();
        request.extend_from_slice(&raw_body);
        let client_closes = head.wants_close();
        let answer = match fault {
            Some(Fault::ConnectionReset) => {
                reset(client);
                return;
            }
            Some(Fault::LostAnswer) => {
                // Applied by the emulator, answer read in full, then never delivered.
                let _ = forward(&shared.upstream, &request, head.method()).await;
                reset(client);
                return;
            }
            Some(Fault::DelayedAnswer(delay)) => {
                let answer = forward(&shared.upstream, &request, head.method()).await;
                tokio::time::sleep(delay).await;
                answer
            }
            Some(answer_fault) => {
                let id = {
                    let tally = shared.tally();
                    tally.decisions.len() as u64 ^ shared.seed
                };
                Ok(Answer {
                    bytes: error_answer(&service, answer_fault, &head, id),
                    close: false,
                })
            }
            None => forward(&shared.upstream, &request, head.method()).await,
        };
        let Ok(answer) = answer else {
            return; // the emulator is unreachable: the client sees the connection close
        };
        if client.write_all(&answer.bytes).await.is_err() || answer.close || client_closes {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn the_service_comes_from_the_credential_scope() {
        let auth = "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/dynamodb/aws4_request, \
                    SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=abc";
        assert_eq!(credential_scope_service(auth), Some("dynamodb"));
        let auth = "AWS4-HMAC-SHA256 Credential=AKIA/20261130/eu-west-1/monitoring/aws4_request,SignedHeaders=host,Signature=x";
        assert_eq!(credential_scope_service(auth), Some("monitoring"));
        assert_eq!(credential_scope_service("Bearer x"), None);
        assert_eq!(credential_scope_service("Credential=a/b/c"), None);
    }

    #[test]
    fn s3_operations_are_recognised_from_method_path_and_query() {
        let cases = [
            ("GET", "/b/k.tflock?x-id=GetObject", "GetObject"),
            ("GET", "/b/env%3A/ws/k.tflock", "GetObject"),
            ("HEAD", "/b/k.tflock", "HeadObject"),
            ("HEAD", "/b", "HeadBucket"),
            ("DELETE", "/b/k.tflock?x-id=DeleteObject", "DeleteObject"),
            ("DELETE", "/b/k.tflock", "DeleteObject"),
            ("GET", "/b?list-type=2&prefix=x", "ListObjectsV2"),
            ("GET", "/b?versions&prefix=x", "ListObjectVersions"),
            ("PUT", "/b/k?x-id=PutObject", "PutObject"),
            ("PUT", "/b/k", "PutObject"),
            ("PUT", "/b", "CreateBucket"),
            ("PUT", "/b?versioning", "PutBucketVersioning"),
            ("POST", "/b?delete", "DeleteObjects"),
            ("GET", "/", "ListBuckets"),
        ];
        for (method, target, expected) in cases {
            assert_eq!(
                s3_operation(method, target, false),
                expected,
                "{method} {target}"
            );
        }
        assert_eq!(s3_operation("PUT", "/b/k", true), "CopyObject");
        assert_eq!(s3_operation("GET", "/b?policy", false), "GET bucket?policy");
    }

    fn head(text: &str) -> Head {
        Head::parse(text.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn json_and_query_operations_are_recognised() {
        let h = head(
            "POST / HTTP/1.1\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\nAuthorization: AWS4-HMAC-SHA256 Credential=t/20261130/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=s\r\n\r\n",
        );
        assert_eq!(identify(&h, b"{}"), ("dynamodb".into(), "GetItem".into()));
        let h = head(
            "POST / HTTP/1.1\r\nauthorization: AWS4-HMAC-SHA256 Credential=t/20261130/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=s\r\n\r\n",
        );
        assert_eq!(
            identify(&h, b"Action=Publish&Version=2010-03-31&TopicArn=x"),
            ("sns".into(), "Publish".into())
        );
        let h = head("POST / HTTP/1.1\r\nx-amz-target: secretsmanager.GetSecretValue\r\n\r\n");
        assert_eq!(
            identify(&h, b"{}"),
            ("secretsmanager".into(), "GetSecretValue".into())
        );
    }

    fn split_answer(bytes: &[u8]) -> (Head, String) {
        let end = find(bytes, b"\r\n\r\n").unwrap();
        let h = Head::parse(bytes[..end + 4].to_vec()).unwrap();
        (h, String::from_utf8(bytes[end + 4..].to_vec()).unwrap())
    }

    #[test]
    fn dynamodb_throttling_answer_has_the_namespaced_type_and_a_valid_crc() {
        let req = head("POST / HTTP/1.1\r\nContent-Type: application/x-amz-json-1.0\r\n\r\n");
        let (h, body) = split_answer(&error_answer("dynamodb", Fault::Throttle, &req, 1));
        assert_eq!(h.status(), 400);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            json["__type"],
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
        );
        assert_eq!(
            h.header("x-amz-crc32").unwrap(),
            crc32(body.as_bytes()).to_string()
        );
        assert_eq!(h.content_length().unwrap(), Some(body.len()));
        let (h, _) = split_answer(&error_answer("dynamodb", Fault::InternalError, &req, 1));
        assert_eq!(h.status(), 500);
    }

    #[test]
    fn s3_slowdown_is_a_503_xml_error_and_empty_for_head() {
        let req = head("GET /b/k HTTP/1.1\r\n\r\n");
        let (h, body) = split_answer(&error_answer("s3", Fault::Throttle, &req, 2));
        assert_eq!(h.status(), 503);
        assert!(body.contains("<Code>SlowDown</Code>"), "{body}");
        assert!(h.header("x-amz-request-id").is_some());
        let req = head("HEAD /b/k HTTP/1.1\r\n\r\n");
        let (h, body) = split_answer(&error_answer("s3", Fault::Throttle, &req, 2));
        assert_eq!((h.status(), body.as_str()), (503, ""));
    }

    #[test]
    fn query_throttling_is_an_error_response_document() {
        let req =
            head("POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n");
        let (h, body) = split_answer(&error_answer("sns", Fault::Throttle, &req, 3));
        assert_eq!(h.status(), 400);
        assert!(
            body.starts_with("<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>Sender</Type><Code>Throttling</Code>"),
            "{body}"
        );
    }

    #[test]
    #[should_panic(expected = "has no AWS answer")]
    fn an_answer_a_service_does_not_send_is_refused() {
        Rule::new("s3", "*", 1.0, Fault::DynamoDbThrottlingException);
    }

    #[test]
    fn draws_are_deterministic_and_follow_the_share() {
        let draws = |seed| -> Vec<f64> {
            (0..10_000)
                .map(|k| unit_draw(seed, 0, "dynamodb", "GetItem", k))
                .collect()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        let hit = draws(7).iter().filter(|&&u| u < 0.3).count();
        assert!((2_700..3_300).contains(&hit), "{hit} of 10000 under 0.3");
    }

    #[test]
    fn chunked_bodies_are_decoded_only_when_complete() {
        let body = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\nNEXT";
        let (used, decoded) = parse_chunked(body).unwrap().unwrap();
        assert_eq!(decoded, b"Wikipedia");
        assert_eq!(&body[used..], b"NEXT");
        assert!(parse_chunked(&body[..10]).unwrap().is_none());
        assert!(parse_chunked(b"zz\r\n").is_err());
    }
}
