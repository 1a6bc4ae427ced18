//! Running a function through the real Lambda Runtime API, and feeding it real stream records.
//!
//! - [`LambdaWatch::start`] runs `cargo lambda watch` (cargo-lambda from `infra/.venv/bin`) for one
//!   package on a free port, with the emulator's environment plus the function's variables (passed
//!   with `--env-file` from a scratch directory outside the package, so nothing there triggers a
//!   rebuild; `--ignore-changes` besides, so edits elsewhere in the workspace never restart it).
//!   [`LambdaWatch::invoke`] runs `cargo lambda invoke <package> --data-file <file>`, exactly as a
//!   developer would. The watch process (and the function it runs) is in its own process group,
//!   ended on drop — and also when the test process dies, however it dies: a small shell guard
//!   reads our pipe and ends the group when it closes.
//! - [`stream_records`] reads every DynamoDB Streams record of a table from the emulator and shapes
//!   it exactly as Lambda's event source mapping delivers it (see
//!   `infra/fixtures/terraform/stream-records.json`); [`stream_event`] wraps records as
//!   `{"Records": [...]}`.
//! - [`create_ledger_table`] creates lockreaper's ledger table as the SAM template does.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, Record, ShardIteratorType};
use serde_json::{json, Map, Value};

use crate::{repo_root, Emulator, TestEnv};

/// What `cargo lambda watch` logs when the function process ends.
const FUNCTION_EXITED: &str = "command exited";

/// How long to wait for `cargo lambda watch` to listen (it builds nothing before the first invoke).
const LISTEN_TIMEOUT: Duration = Duration::from_secs(120);

/// `cargo lambda watch` serving one package on a free port.
pub struct LambdaWatch {
    pub port: u16,
    /// The scratch directory with the env file, the payloads and `watch.log`.
    pub dir: PathBuf,
    child: Child,
    /// The guard's stdin: closing it (drop, or this process dying) ends the process group.
    guard: Option<ChildStdin>,
}

/// A value as cargo-lambda's env-file (dotenv) parser reads it back unchanged: plain when it is
/// plain, single-quoted (literal) otherwise, double-quoted with escapes if it holds a `'`.
fn env_file_value(v: &str) -> String {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:/,@=+*".contains(c))
    {
        v.to_owned()
    } else if !v.contains('\'') {
        format!("'{v}'")
    } else {
        format!(
            "\"{}\"",
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('$', "\\$")
        )
    }
}

/// PATH with `infra/.venv/bin` first, so `cargo lambda` is the pinned cargo-lambda 1.9.2.
fn tool_path() -> String {
    let venv = repo_root().join("infra/.venv/bin");
    assert!(
        venv.join("cargo-lambda").exists(),
        "{}/cargo-lambda does not exist: run `make tools`",
        venv.display()
    );
    format!(
        "{}:{}",
        venv.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

impl LambdaWatch {
    /// Starts `cargo lambda watch` for `package` with the emulator's environment plus `env` (later
    /// entries win), and waits until it listens. The function itself is built and started by the
    /// first invoke.
    pub async fn start<K, V>(package: &str, env: impl IntoIterator<Item = (K, V)>) -> LambdaWatch
    where
        K: Into<String>,
        V: Into<String>,
    {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir()
            .join("lockreaper-tests")
            .join(format!("watch-{package}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();

        let mut vars: Vec<(String, String)> = Emulator::shared().env();
        vars.push(("AWS_LAMBDA_LOG_FORMAT".to_owned(), "JSON".to_owned()));
        vars.extend(env.into_iter().map(|(k, v)| (k.into(), v.into())));
        let mut env_file = String::new();
        for (k, v) in &vars {
            assert!(!v.contains('\n'), "environment value of {k} has a newline");
            env_file.push_str(&format!("{k}={}\n", env_file_value(v)));
        }
        let env_path = dir.join("function.env");
        std::fs::write(&env_path, env_file).unwrap();
        std::fs::write(
            dir.join("test-env.txt"),
            std::env::vars()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect::<String>(),
        )
        .unwrap();
        let log_path = dir.join("watch.log");
        let log = std::fs::File::create(&log_path).unwrap();

        let port = free_port();
        // The guard: start watch in the background (same process group as the shell, which is
        // a new group), wait for our pipe to close, then end the whole group.
        let script = r#"cargo lambda watch "$@" & cat >/dev/null; kill -TERM 0"#;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(["-p", package, "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .args(["--ignore-changes", "--env-file"])
            .arg(&env_path)
            .current_dir(repo_root())
            .env("PATH", tool_path())
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // Nothing of the test process's own AWS configuration may reach the function, and the
        // variables `cargo test` sets for a test binary must not reach the `cargo run` that watch
        // starts: build scripts that track them would rebuild half the dependency graph (ring,
        // rustls, the SDKs) on every start, and again for the next plain `cargo build`.
        for (name, _) in std::env::vars() {
            let from_cargo_test = (name.starts_with("CARGO") && name != "CARGO_HOME")
                || name.starts_with("RUSTUP_TOOLCHAIN")
                || matches!(
                    name.as_str(),
                    "LD_LIBRARY_PATH" | "RUST_RECURSION_COUNT" | "OUT_DIR"
                );
            if name.starts_with("AWS_") || from_cargo_test {
                command.env_remove(name);
            }
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start cargo lambda watch: {e}"));
        let guard = child.stdin.take();
        let mut watch = LambdaWatch {
            port,
            dir,
            child,
            guard,
        };

        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = watch.child.try_wait() {
                panic!(
                    "cargo lambda watch exited ({status}) before listening:\n{}",
                    watch.log()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "cargo lambda watch did not listen on port {port} within {LISTEN_TIMEOUT:?}:\n{}",
                watch.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        watch
    }

    /// Everything the watch process and the function printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("watch.log")).unwrap_or_default()
    }

    /// The metrics in the function's output so far, extracted from its EMF lines the way
    /// CloudWatch Logs extracts them from the log group Lambda sends stdout to.
    pub fn emf_metrics(&self) -> Vec<lockreaper_core::metrics::emf::ExtractedMetric> {
        match lockreaper_core::metrics::emf::read_output(&self.log()) {
            Ok(metrics) => metrics,
            Err(e) => panic!("the function wrote an invalid EMF document: {e}"),
        }
    }

    /// The function's JSON log lines so far (lines that parse as JSON objects).
    pub fn json_log(&self) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// Invokes the function with `payload` through `cargo lambda invoke --data-file`; the
    /// function's response, or the error `cargo lambda invoke` reported, or (with the whole log)
    /// the news that the function process exited instead of answering (an init error, a panic).
    pub async fn try_invoke(&self, package: &str, payload: &Value) -> Result<Value, String> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let data_file = self.dir.join(format!("payload-{n}.json"));
        std::fs::write(&data_file, serde_json::to_vec_pretty(payload).unwrap()).unwrap();
        let exits_before = self.log().matches(FUNCTION_EXITED).count();
        let (out_path, err_path) = (
            self.dir.join(format!("invoke-{n}.out")),
            self.dir.join(format!("invoke-{n}.err")),
        );
        let mut child = tokio::process::Command::new("cargo")
            .args(["lambda", "invoke", package])
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &self.port.to_string()])
            .arg("--data-file")
            .arg(&data_file)
            .args(["--output-format", "json"])
            .current_dir(repo_root())
            .env("PATH", tool_path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run cargo lambda invoke: {e}"))?;
        // A function that exits (a panic, an init error) leaves the invoke waiting forever:
        // watch for that in the log instead.
        let exited = async {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if self.log().matches(FUNCTION_EXITED).count() > exits_before {
                    // Let the last lines reach the log.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    return;
                }
            }
        };
        let status = tokio::select! {
            status = child.wait() => Some(status),
            () = exited => None,
        };
        let Some(status) = status else {
            let _ = child.kill().await; // kills and reaps
            return Err(format!(
                "the function exited instead of answering:\n{}",
                self.log()
            ));
        };
        let status = status.map_err(|e| format!("cargo lambda invoke: {e}"))?;
        let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
        if !status.success() {
            return Err(format!(
                "cargo lambda invoke failed ({status}):\n{stdout}\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            ));
        }
        serde_json::from_str(&stdout)
            .map_err(|e| format!("the response is not JSON ({e}): {stdout}"))
    }

    /// [`Self::try_invoke`], panicking (with the function's log) on failure.
    pub async fn invoke(&self, package: &str, payload: &Value) -> Value {
        match self.try_invoke(package, payload).await {
            Ok(v) => v,
            Err(e) => panic!("{e}\n--- watch log ---\n{}", self.log()),
        }
    }
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        // Closing the guard's stdin ends the group; TERM the group as well, then reap.
        drop(self.guard.take());
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &group])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
        let _ = self.child.wait();
        let _ = std::io::stderr().flush();
    }
}

/// Creates lockreaper's ledger table: `pk` (S) hash key, `sk` (S) range key, on demand (the TTL
/// attribute `expires_at` needs no definition).
pub async fn create_ledger_table(env: &TestEnv, table: &str) {
    use lockreaper_aws::ledger_schema::{PK, SK};
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    env.aws
        .dynamodb()
        .create_table()
        .table_name(table)
        .attribute_definitions(attribute(PK))
        .attribute_definitions(attribute(SK))
        .key_schema(key(PK, KeyType::Hash))
        .key_schema(key(SK, KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create ledger table {table}: {e:?}"));
}

/// Every DynamoDB Streams record of `table` (all shards, from `TRIM_HORIZON`), shaped as Lambda's
/// event source mapping delivers them: `eventSourceARN` added, `ApproximateCreationDateTime` as
/// integer epoch seconds, images in DynamoDB JSON, everything else as GetRecords returned it.
pub async fn stream_records(env: &TestEnv, table: &str) -> Vec<Value> {
    let stream_arn = env
        .aws
        .dynamodb()
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe table {table}: {e:?}"))
        .table
        .and_then(|t| t.latest_stream_arn)
        .unwrap_or_else(|| panic!("table {table} has no stream"));
    let streams = aws_sdk_dynamodbstreams::Client::new(&env.aws.sdk);
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let out = streams
            .describe_stream()
            .stream_arn(&stream_arn)
            .set_exclusive_start_shard_id(start.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("describe stream {stream_arn}: {e:?}"));
        let description = out.stream_description.unwrap();
        shards.extend(
            description
                .shards
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| s.shard_id),
        );
        match description.last_evaluated_shard_id {
            Some(id) => start = Some(id),
            None => break,
        }
    }
    let mut records = Vec::new();
    for shard in shards {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&stream_arn)
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get shard iterator {shard}: {e:?}"))
            .shard_iterator;
        while let Some(it) = iterator.take() {
            let out = streams
                .get_records()
                .shard_iterator(it)
                .limit(1000)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get records of {shard}: {e:?}"));
            let page = out.records.unwrap_or_default();
            if page.is_empty() {
                break; // an open shard always has a next iterator; no records means caught up
            }
            records.extend(page.iter().map(|r| lambda_record(r, &stream_arn)));
            iterator = out.next_shard_iterator;
        }
    }
    records
}

/// `{"Records": records}`: a DynamoDB stream event as Lambda delivers it.
pub fn stream_event(records: impl IntoIterator<Item = Value>) -> Value {
    json!({ "Records": records.into_iter().collect::<Vec<_>>() })
}

fn lambda_record(r: &Record, stream_arn: &str) -> Value {
    let change = r.dynamodb.as_ref().expect("stream record without dynamodb");
    let mut dynamodb = Map::new();
    if let Some(t) = change.approximate_creation_date_time {
        dynamodb.insert("ApproximateCreationDateTime".into(), json!(t.secs()));
    }
    for (name, image) in [
        ("Keys", &change.keys),
        ("NewImage", &change.new_image),
        ("OldImage", &change.old_image),
    ] {
        if let Some(image) = image {
            dynamodb.insert(
                name.into(),
                Value::Object(
                    image
                        .iter()
                        .map(|(k, v)| (k.clone(), attribute(v)))
                        .collect(),
                ),
            );
        }
    }
    if let Some(seq) = &change.sequence_number {
        dynamodb.insert("SequenceNumber".into(), json!(seq));
    }
    if let Some(size) = change.size_bytes {
        dynamodb.insert("SizeBytes".into(), json!(size));
    }
    if let Some(view) = &change.stream_view_type {
        dynamodb.insert("StreamViewType".into(), json!(view.as_str()));
    }
    let mut record = Map::new();
    record.insert("eventID".into(), json!(r.event_id));
    record.insert(
        "eventName".into(),
        json!(r.event_name.as_ref().map(|n| n.as_str())),
    );
    record.insert("eventVersion".into(), json!(r.event_version));
    record.insert("eventSource".into(), json!(r.event_source));
    record.insert("awsRegion".into(), json!(r.aws_region));
    record.insert("dynamodb".into(), Value::Object(dynamodb));
    if let Some(identity) = &r.user_identity {
        record.insert(
            "userIdentity".into(),
            json!({"type": identity.r#type, "principalId": identity.principal_id}),
        );
    }
    record.insert("eventSourceARN".into(), json!(stream_arn));
    Value::Object(record)
}

/// A stream AttributeValue in DynamoDB JSON (`{"S": "..."}`, `{"N": "1"}`, `{"B": "<base64>"}`, ...).
fn attribute(v: &StreamValue) -> Value {
    use aws_smithy_types::base64::encode;
    match v {
        StreamValue::S(s) => json!({ "S": s }),
        StreamValue::N(n) => json!({ "N": n }),
        StreamValue::B(b) => json!({ "B": encode(b.as_ref()) }),
        StreamValue::Ss(ss) => json!({ "SS": ss }),
        StreamValue::Ns(ns) => json!({ "NS": ns }),
        StreamValue::Bs(bs) => {
            json!({ "BS": bs.iter().map(|b| encode(b.as_ref())).collect::<Vec<_>>() })
        }
        StreamValue::Bool(b) => json!({ "BOOL": b }),
        StreamValue::Null(n) => json!({ "NULL": n }),
        StreamValue::L(l) => json!({ "L": l.iter().map(attribute).collect::<Vec<_>>() }),
        StreamValue::M(m) => json!({
            "M": m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect::<Map<_, _>>()
        }),
        other => panic!("unknown stream attribute value {other:?}"),
    }
}
