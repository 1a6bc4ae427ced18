#!/usr/bin/env python3
"""`make deploy-local`: deploy the real template.yaml, unchanged, to a local AWS emulator and prove
that it is wired: no AWS account, no Docker.

What it does, one narrated line per step:
  1. starts ministack (the emulator that runs `provided.al2023` functions as local processes) on a
     free loopback port, with all its files in a fresh temporary directory;
  2. creates what the template expects to exist already: a Terraform lock table with a
     NEW_AND_OLD_IMAGES stream, a versioned state bucket sending its events to EventBridge, and a
     bucket for `sam deploy` artefacts;
  3. builds the three functions (x86_64: arm64 binaries cannot run on this machine) in one release
     build laid out as `sam build` lays out its output (infra/sam/local_build.py; cargo skips it when
     nothing changed, e.g. after `make demo`);
  4. `sam deploy` of the built template with only --parameter-overrides (the lock table, its
     stream, the state bucket, an e-mail, an approvals publisher, S3EventsEnabled=true);
  5. asserts that the ledger table (keys, on-demand, TTL, PITR), topics, subscriptions, queues,
     functions (runtime, architecture, JSON logging, the exact environment variable names), the
     stream event source mapping, force-unlock's on-failure destination, the schedule rule, the
     S3 events rule (its pattern names exactly the state bucket; lock-metrics its target, with
     retries and a dead-letter queue), the secret, alarms (Throttles of each function, IteratorAge of lock-metrics, ...), dashboard and
     log groups exist and are wired to each other;
  6. proves the functions fire: a lock written to the lock table runs the deployed lock-metrics
     (its log group and the ledger show it); a `.tflock` written to the state bucket as Terraform
     writes it (PutObject, If-None-Match: *), then the state object, then the lock file's deletion
     run it through ministack's S3 → EventBridge delivery (acquired, state write in the ledger,
     released with its hold time; EMF metrics with LockKind=terraform-s3-lockfile); a garbage approval published to the approvals topic
     runs the deployed force-unlock, which publishes a rejection to the alert topic (read through
     an SQS queue subscribed to it);
  7. end to end: invokes the deployed reaper as the schedule would, applies template.yaml's chat
     buttons (Approve unlock, Deny, Snooze 2h) to the alert it publishes (every variable path
     resolves, every criterion holds, each press publishes what force-unlock parses), "presses"
     Approve unlock by publishing exactly what its command publishes, and checks that force-unlock
     released exactly that lock and lock-metrics counted a forced release;
  8. updates the stack with AutoExpire=true: the reaper's role gains its delete policy; then pulls
     the kill switch (UnlocksPaused=true) with named roles and a permissions boundary
     (RoleNamePrefix, PermissionsBoundary, CAPABILITY_NAMED_IAM): no role keeps a delete of a lock;
  9. `sam delete` removes the stack (the ledger table is retained on purpose);
then stops the emulator (and every function process it started) and removes the temporary directory.

Exit status 0 only if every step passed. Needs `make deploy-tools` (infra/.venv-deploy, with
ministack in its own venv inside it: ministack pins a botocore that aws-sam-cli cannot share).

Options: --keep (leave the emulator running at the end and print its endpoint; Ctrl-C stops it),
--skip-build (reuse .aws-sam/build-x86_64 without asking cargo whether it is current),
--from-dist DIR (`make deploy-local-dist`: deploy `make package`'s dist/template-x86_64.yaml and its zips,
checked against SHA256SUMS, with no build — the release files alone make a working stack).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import chatbot_buttons  # noqa: E402  (infra/sam/chatbot_buttons.py, shared with test_template.py)
import local_build  # noqa: E402  (one release build of the functions and the CLI, laid out as `sam build` does)
import emf_reader  # noqa: E402  (metrics read back from EMF log lines, as CloudWatch Logs extracts them)

DEPLOY_VENV = ROOT / "infra" / ".venv-deploy"
SAM = DEPLOY_VENV / "bin" / "sam"
MINISTACK = DEPLOY_VENV / "ministack" / "bin" / "python"  # ministack's own venv (see requirements-ministack.txt)
MINISTACK_RUN = ROOT / "infra" / "sam" / "ministack_run.py"  # ministack, with one gap closed (see there)

BUILD_DIR = local_build.BUILD_DIR
FIXTURE_LOCK = ROOT / "infra" / "fixtures" / "terraform" / "dynamodb-lock-item.json"
FIXTURE_LOCK_FILE = ROOT / "infra" / "fixtures" / "terraform" / "lockfile-body.json"
SCHEDULED_EVENT = ROOT / "infra" / "events" / "scheduled-event.json"

REGION = "us-east-1"
STACK = "lockreaper-local"
ACCOUNT = "000000000000"  # ministack's default account

# The environment contract (template.yaml's comment block; the functions' config parsers).
EXPECTED_ENV = {
    "reaper": {
        "LOCK_TABLES", "LOCK_BUCKETS", "WARN_AFTER", "EXPIRE_AFTER", "REMIND_EVERY", "AUTO_EXPIRE",
        "LOCK_POLICY", "APPROVAL_TTL", "DRY_RUN", "ALERT_TOPIC_ARN", "APPROVAL_TOPIC_ARN",
        "APPROVAL_SECRET_ARN", "LEDGER_TABLE", "METRICS_NAMESPACE", "DEPLOYMENT_NAME", "SCAN_SEGMENTS",
        "UNLOCKS_PAUSED", "STATE_BUCKETS",
    },
    "lock-metrics": {"LEDGER_TABLE", "METRICS_NAMESPACE"},
    "force-unlock": {"LEDGER_TABLE", "ALERT_TOPIC_ARN", "APPROVAL_SECRET_ARN", "APPROVER_ALLOW_LIST", "UNLOCKS_PAUSED", "STATE_BUCKETS"},
}

BOLD, RED, GREEN, RESET = (
    ("\033[1m", "\033[31m", "\033[32m", "\033[0m") if sys.stdout.isatty() else ("",) * 4
)
T0 = time.monotonic()


class Failed(Exception):
    pass


def step(n: int, text: str) -> None:
    print(f"{BOLD}[{n}] {text}{RESET}  (+{time.monotonic() - T0:.1f}s)", flush=True)


def ok(text: str) -> None:
    print(f"    {GREEN}ok{RESET} {text}", flush=True)


def gap(text: str) -> None:
    """Something the emulator cannot show; template.yaml's side of it is checked by test_template.py."""
    print(f"    -- emulator gap: {text}", flush=True)


def check(condition: bool, what: str, detail: object = "") -> None:
    if not condition:
        raise Failed(f"{what}" + (f": {detail}" if detail != "" else ""))
    ok(what)


def wait_for(what: str, probe, timeout: float = 90.0, interval: float = 0.5):
    """Polls `probe` until it returns something truthy; fails naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as e:  # noqa: BLE001 - the emulator may not be ready yet; report the last error
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise Failed(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


# ---------------------------------------------------------------------------------------------
# the emulator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: own process group (so one killpg ends ministack and every function
    process it spawned), and SIGTERM when this script dies, however it dies."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Ministack:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / "ministack.log", "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUST_LOG"))}
        env.update(
            BIND_HOST="127.0.0.1",
            GATEWAY_PORT=str(self.port),  # ministack reads its port from here (default 4566)
            MINISTACK_REGION=REGION,
            LOG_LEVEL=os.environ.get("DEPLOY_LOCAL_LOG_LEVEL", "WARNING"),  # INFO or DEBUG to see ministack work
            # Everything ministack writes (PID file, code caches, function work dirs, S3 data)
            # goes under tempfile.gettempdir(), i.e. TMPDIR, or the two dirs below.
            TMPDIR=str(workdir),
            STATE_DIR=str(workdir / "state"),
            S3_DATA_DIR=str(workdir / "s3"),
            PERSIST_STATE="0",
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            # Inherited by the function processes ministack starts. For `provided.*` functions
            # ministack passes on its own AWS_ENDPOINT_URL (and sets none otherwise: the SDK would
            # then call real AWS); S3_FORCE_PATH_STYLE is the one emulator-only lockreaper setting.
            AWS_ENDPOINT_URL=self.endpoint,
            S3_FORCE_PATH_STYLE="true",
        )
        self.proc = subprocess.Popen(
            [str(MINISTACK), str(MINISTACK_RUN)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

    def wait_ready(self) -> None:
        def healthy():
            if self.proc.poll() is not None:
                raise Failed(f"ministack exited with {self.proc.returncode}; see {self.log.name}")
            with urllib.request.urlopen(f"{self.endpoint}/_ministack/health", timeout=2) as r:
                return r.status == 200

        wait_for("ministack to answer", healthy, timeout=30, interval=0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:  # anything of its group still there (function processes)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


# ---------------------------------------------------------------------------------------------
# AWS side


def aws_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        SAM_CLI_TELEMETRY="0",
        # SAM's rust-cargolambda build runs `cargo lambda`, which finds zig with the first python3
        # on PATH: this venv's, where cargo-lambda and ziglang are installed.
        PATH=f"{DEPLOY_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def clients(endpoint: str):
    import boto3  # from infra/.venv-deploy (aws-sam-cli's dependency)

    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION
    )

    class C:
        def __getattr__(self, name):
            client = session.client(name, endpoint_url=endpoint)
            setattr(self, name, client)
            return client

    return C()


def run(cmd: list[str], env: dict[str, str], log: Path) -> float:
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    took = time.monotonic() - started
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        raise Failed(f"`{' '.join(cmd[:3])} …` failed ({proc.returncode}) after {took:.0f}s:\n{tail}")
    return took


def sqs_messages(aws, queue_url: str) -> list[dict]:
    out = aws.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    messages = []
    for m in out.get("Messages", []):
        aws.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        envelope = json.loads(m["Body"])
        messages.append(envelope)
    return messages


def log_lines(aws, group: str) -> list[str]:
    lines: list[str] = []
    try:
        streams = aws.logs.describe_log_streams(logGroupName=group)["logStreams"]
    except aws.logs.exceptions.ResourceNotFoundException:
        return lines
    for s in streams:
        events = aws.logs.get_log_events(logGroupName=group, logStreamName=s["logStreamName"], startFromHead=True)
        lines += [e["message"] for e in events["events"]]
    return lines


def json_lines_with(lines: list[str], **fields) -> list[dict]:
    found = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and all(obj.get(k) == v for k, v in fields.items()):
            found.append(obj)
    return found


# ---------------------------------------------------------------------------------------------


def doctor_checks_the_roles(aws, env: dict[str, str], outputs: dict[str, str], tables: list[str], bucket: str) -> None:
    """`lockreaper doctor`'s role check (iam:SimulatePrincipalPolicy, evaluated by ministack's policy
    evaluator) against the deployed stack: every function OK; then an inline Deny of one needed
    action on force-unlock's role must FAIL exactly that function and action; the Deny is removed."""
    cli = local_build.target_dir() / "release" / local_build.CLI_BINARY
    check(cli.exists(), f"the release CLI {cli} exists", cli)
    roles = {"reaper": "ReaperRoleArn", "lock-metrics": "LockMetricsRoleArn", "force-unlock": "ForceUnlockRoleArn"}
    settings = {
        **env,
        "LOCK_TABLES": ",".join(tables), "LOCK_BUCKETS": bucket, "STATE_BUCKETS": bucket,
        "LEDGER_TABLE": outputs["LedgerTableName"], "ALERT_TOPIC_ARN": outputs["AlertTopicArn"],
        "APPROVAL_TOPIC_ARN": outputs["ApprovalTopicArn"], "APPROVAL_SECRET_ARN": outputs["SigningSecretArn"],
        "REAPER_ROLE_ARN": outputs["ReaperRoleArn"], "LOCK_METRICS_ROLE_ARN": outputs["LockMetricsRoleArn"],
        "FORCE_UNLOCK_ROLE_ARN": outputs["ForceUnlockRoleArn"], "S3_FORCE_PATH_STYLE": "true",
    }

    def doctor() -> dict[str, dict]:
        out = subprocess.run([str(cli), "doctor", "--json"], env=settings, capture_output=True, text=True, timeout=120)
        check(out.returncode in (0, 2), "lockreaper doctor --json ran", out.stderr[-2000:])
        report = json.loads(out.stdout)
        return {r["function"]: r for r in report["roles"]}

    reports = doctor()
    check(sorted(reports) == sorted(roles), "doctor simulated the three functions' roles", sorted(reports))
    for function, r in reports.items():
        check(r["error"] is None and r["simulated"] > 0 and r["denied"] == [], f"doctor: {function}'s role allows all {r['simulated']} permissions it needs", r)
    role_name = outputs["ForceUnlockRoleArn"].rsplit("/", 1)[-1]
    table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{tables[0]}"
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": table_arn}]}
    aws.iam.put_role_policy(RoleName=role_name, PolicyName="deploy-local-deny", PolicyDocument=json.dumps(deny))
    try:
        reports = doctor()
    finally:
        aws.iam.delete_role_policy(RoleName=role_name, PolicyName="deploy-local-deny")
    denied = [(d["action"], d["resource"], d["decision"]) for d in reports["force-unlock"]["denied"]]
    check(denied == [("dynamodb:DeleteItem", table_arn, "explicit_deny")], "with an inline Deny, doctor FAILs force-unlock on exactly dynamodb:DeleteItem of the lock table (explicit deny)", denied)
    others = {f: r["denied"] for f, r in reports.items() if f != "force-unlock"}
    check(others == {"reaper": [], "lock-metrics": []}, "and only force-unlock", others)
    reports = doctor()
    check(reports["force-unlock"]["denied"] == [], "the Deny removed, force-unlock's role is OK again", reports["force-unlock"])


def dist_template(dist: Path) -> Path:
    """`make package`'s x86_64 template in `dist`, after checking every file against SHA256SUMS and
    every function's CodeUri against a zip holding an x86_64 bootstrap (package.py's own check)."""
    sys.path.insert(0, str(ROOT / "infra" / "scripts"))
    import hashlib

    import package  # noqa: E402  (infra/scripts/package.py: the zip check lives there, once)

    sums = dist / "SHA256SUMS"
    if not sums.is_file():
        raise Failed(f"{sums} is missing: run `make package` first")
    for line in sums.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        got = hashlib.sha256((dist / name).read_bytes()).hexdigest()
        check(got == digest, f"{name} matches SHA256SUMS", f"{got} != {digest}")
    template = dist / "template-x86_64.yaml"
    if not template.is_file():
        raise Failed(f"{template} is missing: run `make package` (both architectures)")
    for logical_id in local_build.FUNCTIONS:
        zip_path = dist / package.zip_name(package.workspace_version(), logical_id, "x86_64")
        check(f"CodeUri: {zip_path.name}" in template.read_text(), f"{logical_id}'s CodeUri is {zip_path.name}")
        try:
            package.check_zip(zip_path, "x86_64")
        except (package.PackageFailed, OSError) as e:
            raise Failed(f"{zip_path.name}: {e}") from None
    return template


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the emulator running at the end")
    parser.add_argument("--skip-build", action="store_true", help="reuse .aws-sam/build-x86_64")
    parser.add_argument(
        "--from-dist", type=Path, metavar="DIR",
        help="deploy the release files `make package` wrote (DIR/template-x86_64.yaml and its zips, "
             "checked against DIR/SHA256SUMS) instead of building: proves the packaged template is complete",
    )
    args = parser.parse_args()

    for tool, hint in ((SAM, "aws-sam-cli"), (MINISTACK, "ministack")):
        if not tool.exists():
            print(f"{RED}{tool} is missing ({hint}); run `make deploy-tools` first{RESET}", file=sys.stderr)
            return 2

    workdir = Path(tempfile.mkdtemp(prefix="lockreaper-deploy-local-"))
    emulator: Ministack | None = None
    passed = False

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        step(1, "starting ministack on a free loopback port (files in a temporary directory)")
        emulator = Ministack(workdir)
        emulator.wait_ready()
        ok(f"ministack answers at {emulator.endpoint} (work dir {workdir})")
        aws = clients(emulator.endpoint)
        env = aws_env(emulator.endpoint)
        suffix = uuid.uuid4().hex[:8]

        step(2, "creating what the template expects to exist: lock table with stream, state bucket, deploy bucket")
        lock_table = f"tf-locks-{suffix}"
        state_bucket = f"tfstate-{suffix}"
        deploy_bucket = f"sam-artifacts-{suffix}"
        aws.dynamodb.create_table(
            TableName=lock_table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        stream_arn = aws.dynamodb.describe_table(TableName=lock_table)["Table"]["LatestStreamArn"]
        # A second (Gyro) lock table exercises the second slot of every list parameter.
        gyro_table = f"gyro-locks-{suffix}"
        aws.dynamodb.create_table(
            TableName=gyro_table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "LockKey", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "LockKey", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        gyro_stream_arn = aws.dynamodb.describe_table(TableName=gyro_table)["Table"]["LatestStreamArn"]
        for bucket in (state_bucket, deploy_bucket):
            aws.s3.create_bucket(Bucket=bucket)
        aws.s3.put_bucket_versioning(Bucket=state_bucket, VersioningConfiguration={"Status": "Enabled"})
        # S3-native locking's events (S3EventsEnabled=true): the bucket sends its object events to
        # EventBridge, as `aws_s3_bucket_notification { eventbridge = true }` turns on.
        aws.s3.put_bucket_notification_configuration(
            Bucket=state_bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        ok(f"lock tables {lock_table}, {gyro_table} (streams), buckets {state_bucket} (versioned, EventBridge on), {deploy_bucket}")

        deploy_template = BUILD_DIR / "template.yaml"
        if args.from_dist:
            step(3, f"the release files in {args.from_dist} (x86_64: they run as local processes here), no build")
            deploy_template = dist_template(args.from_dist.resolve())
            ok(f"{deploy_template.name}: every file matches SHA256SUMS, every CodeUri is a zip with an x86_64 bootstrap")
        else:
            step(3, "building the functions, x86_64 (they run as local processes here): one release build")
        if args.from_dist:
            pass
        elif args.skip_build and (BUILD_DIR / "template.yaml").exists():
            ok(f"reusing {BUILD_DIR.relative_to(ROOT)}")
        else:
            with open(workdir / "build.log", "w") as build_log:
                try:
                    built = local_build.build(log=build_log)
                except local_build.BuildFailed as e:
                    tail = "\n".join((workdir / "build.log").read_text().splitlines()[-40:])
                    raise Failed(f"{e}\n{tail}") from None
            ok(f"built three bootstraps into {BUILD_DIR.relative_to(ROOT)} in {built['seconds']:.0f}s")
        for fn in ("ReaperFunction", "LockMetricsFunction", "ForceUnlockFunction"):
            if args.from_dist:
                break
            bootstrap = BUILD_DIR / fn / "bootstrap"
            check(bootstrap.exists() and b"\x7fELF" == bootstrap.read_bytes()[:4], f"{fn}/bootstrap is an ELF binary")

        step(4, "sam deploy of the unchanged template, with --parameter-overrides only")
        approver = f"arn:aws:iam::{ACCOUNT}:role/on-call"
        overrides = {
            "Architecture": "x86_64",
            "LockTables": f"{lock_table},{gyro_table}",
            "LockTableStreamArns": f"{stream_arn},{gyro_stream_arn}",
            "StateBuckets": state_bucket,
            "AlertEmail": "ops@example.com",
            "ApprovalPublisherArns": approver,
            # ministack cannot create an alarm on a metric query: leaves out OldestLockAgeAlarm only.
            "LocalEmulator": "true",
            # The state bucket's S3 events to lock-metrics (S3LockEventsRule), proven in step 6.
            "S3EventsEnabled": "true",
        }
        def deploy(params: dict[str, str], log: str, capability: str = "CAPABILITY_IAM") -> float:
            return run(
                [
                    str(SAM), "deploy",
                    "--template-file", str(deploy_template),
                    "--stack-name", STACK,
                    "--s3-bucket", deploy_bucket,
                    "--region", REGION,
                    "--capabilities", capability,
                    "--no-confirm-changeset", "--no-fail-on-empty-changeset", "--no-progressbar",
                    "--parameter-overrides", *[f"{k}={v}" for k, v in params.items()],
                ],
                env,
                workdir / log,
            )

        took = deploy(overrides, "sam-deploy.log")
        stack = aws.cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
        check(stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE"), f"stack {STACK} deployed in {took:.0f}s", stack["StackStatus"])
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        doctor_checks_the_roles(aws, env, outputs, [lock_table, gyro_table], state_bucket)
        resources = {
            r["LogicalResourceId"]: r
            for r in aws.cloudformation.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
        }
        failed = {k: r["ResourceStatus"] for k, r in resources.items() if not r["ResourceStatus"].endswith("_COMPLETE")}
        check(not failed, f"all {len(resources)} stack resources complete", failed)
        skipped = {"ChatApprovePolicy", "ChatRole", "ApproveUnlockAction", "SlackChannel", "ReaperAutoExpirePolicy"}
        check(not (skipped & resources.keys()), "chat and auto-expiry resources are off without their parameters")
        check("OldestLockAgeAlarm" not in resources, "LocalEmulator=true left out only the metric-query alarm")

        step(5, "asserting every resource exists and is wired")
        ledger = outputs["LedgerTableName"]
        table = aws.dynamodb.describe_table(TableName=ledger)["Table"]
        check(
            [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [("pk", "HASH"), ("sk", "RANGE")],
            f"ledger {ledger}: keys pk (HASH), sk (RANGE)",
            table["KeySchema"],
        )
        check(table.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST", "ledger: on-demand", table.get("BillingModeSummary"))
        # ministack 1.5.33's CloudFormation ignores these two table properties (its DynamoDB API
        # supports them): check them when it applies them, else say so.
        ttl = aws.dynamodb.describe_time_to_live(TableName=ledger)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") == "DISABLED":
            gap("ministack's CloudFormation ignores TimeToLiveSpecification (ledger TTL on expires_at)")
        else:
            check(ttl.get("AttributeName") == "expires_at", "ledger: TTL on expires_at", ttl)
        pitr = aws.dynamodb.describe_continuous_backups(TableName=ledger)["ContinuousBackupsDescription"]
        if pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED":
            gap("ministack's CloudFormation ignores PointInTimeRecoverySpecification (ledger PITR)")
        else:
            ok("ledger: point-in-time recovery")

        alert_topic, approval_topic = outputs["AlertTopicArn"], outputs["ApprovalTopicArn"]
        topics = {t["TopicArn"] for t in aws.sns.list_topics()["Topics"]}
        check({alert_topic, approval_topic} <= topics, "alert and approvals topics exist")
        check(approval_topic.endswith(f":{STACK}-ok"), "approvals topic is named after the stack", approval_topic)
        command = outputs["ChatApproveCommand"]
        check(command == f"sns publish --topic-arn {approval_topic} --message $token", "ChatApproveCommand output", command)
        policy = json.loads(aws.sns.get_topic_attributes(TopicArn=approval_topic)["Attributes"]["Policy"])
        deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
        check(
            deny and approver in json.dumps(deny[0]["Condition"]),
            "approvals topic policy denies publishing to all but the named publishers",
            policy,
        )

        functions: dict[str, dict] = {}
        lam = getattr(aws, "lambda")
        for name, key in (("reaper", "ReaperFunctionName"), ("lock-metrics", "LockMetricsFunctionName"), ("force-unlock", "ForceUnlockFunctionName")):
            functions[name] = lam.get_function(FunctionName=outputs[key])["Configuration"]
        for name, conf in functions.items():
            check(
                conf["Runtime"] == "provided.al2023" and conf["Handler"] == "bootstrap" and conf["Architectures"] == ["x86_64"],
                f"{name}: provided.al2023, bootstrap, x86_64",
                (conf["Runtime"], conf["Handler"], conf["Architectures"]),
            )
            logging = conf.get("LoggingConfig", {})
            check(
                logging.get("LogFormat") == "JSON" and logging.get("LogGroup") == f"/aws/lambda/{conf['FunctionName']}",
                f"{name}: JSON logs to /aws/lambda/{conf['FunctionName']}",
                logging,
            )
            names = set(conf.get("Environment", {}).get("Variables", {}))
            check(names == EXPECTED_ENV[name], f"{name}: environment is exactly {sorted(EXPECTED_ENV[name])}", names ^ EXPECTED_ENV[name])
        reaper_env = functions["reaper"]["Environment"]["Variables"]
        check(
            reaper_env["LOCK_TABLES"] == f"{lock_table},{gyro_table}"
            and reaper_env["LOCK_BUCKETS"] == f"{state_bucket}/"
            and reaper_env["APPROVAL_TOPIC_ARN"] == approval_topic
            and reaper_env["ALERT_TOPIC_ARN"] == alert_topic
            and reaper_env["LEDGER_TABLE"] == ledger
            and reaper_env["APPROVAL_SECRET_ARN"] == outputs["SigningSecretArn"]
            and reaper_env["AUTO_EXPIRE"] == "false",
            "reaper: tables, buckets, topics, ledger and secret wired",
            reaper_env,
        )
        role_name = functions["force-unlock"]["Role"].rsplit("/", 1)[-1]
        role_policy = json.dumps(aws.iam.get_role_policy(RoleName=role_name, PolicyName="force-unlock")["PolicyDocument"])
        check(
            f":table/{lock_table}\"" in role_policy and f":table/{gyro_table}\"" in role_policy and ".tflock" in role_policy,
            "force-unlock's role names both lock tables and *.tflock in the state bucket",
            role_policy,
        )
        groups = {g["logGroupName"]: g for g in aws.logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{STACK}-")["logGroups"]}
        for conf in functions.values():
            group = groups.get(f"/aws/lambda/{conf['FunctionName']}", {})
            check(int(group.get("retentionInDays") or 0) == 30, f"log group /aws/lambda/{conf['FunctionName']} with 30-day retention", group)

        secret = aws.secretsmanager.get_secret_value(SecretId=outputs["SigningSecretArn"])["SecretString"]
        check(len(secret) == 64, "signing secret generated: 64 characters")
        if not secret.isalnum():
            gap("ministack's CloudFormation ignores GenerateSecretString.ExcludePunctuation")

        queues = {}
        for key in ("StreamFailureQueueUrl", "UnlockFailureQueueUrl"):
            attrs = aws.sqs.get_queue_attributes(QueueUrl=outputs[key], AttributeNames=["QueueArn"])["Attributes"]
            queues[key] = attrs["QueueArn"]
        check(len(queues) == 2, "stream-failure and unlock-failure queues exist")

        mappings = lam.list_event_source_mappings(FunctionName=outputs["LockMetricsFunctionName"])["EventSourceMappings"]
        check(
            sorted(m["EventSourceArn"] for m in mappings) == sorted([stream_arn, gyro_stream_arn]),
            "two stream mappings to lock-metrics, one per configured stream (slots 1 and 2)",
            mappings,
        )
        m = next(m for m in mappings if m["EventSourceArn"] == stream_arn)
        check(
            m.get("FunctionResponseTypes") == ["ReportBatchItemFailures"]
            and m.get("BisectBatchOnFunctionError") is True
            and int(m.get("MaximumRetryAttempts", -1)) == 5  # parameter values may read back as strings
            and m.get("StartingPosition") == "TRIM_HORIZON"
            and int(m.get("BatchSize", 0)) == 100,
            "mapping: ReportBatchItemFailures, bisect, 5 retries, TRIM_HORIZON, batch 100",
            m,
        )
        check(
            m.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") == queues["StreamFailureQueueUrl"],
            "mapping: on-failure destination is the stream-failure queue",
            m.get("DestinationConfig"),
        )
        invoke_config = lam.get_function_event_invoke_config(FunctionName=outputs["ForceUnlockFunctionName"], Qualifier="$LATEST")
        check(
            int(invoke_config.get("MaximumRetryAttempts", -1)) == 2
            and invoke_config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") == queues["UnlockFailureQueueUrl"],
            "force-unlock: 2 retries, then the unlock-failure queue",
            invoke_config,
        )

        subs = aws.sns.list_subscriptions_by_topic(TopicArn=approval_topic)["Subscriptions"]
        check(
            any(s["Protocol"] == "lambda" and s["Endpoint"] == functions["force-unlock"]["FunctionArn"] for s in subs),
            "approvals topic → force-unlock subscription",
            subs,
        )
        subs = aws.sns.list_subscriptions_by_topic(TopicArn=alert_topic)["Subscriptions"]
        check(any(s["Protocol"] == "email" and s["Endpoint"] == "ops@example.com" for s in subs), "alert topic → e-mail subscription", subs)

        rules = aws.events.list_rule_names_by_target(TargetArn=functions["reaper"]["FunctionArn"])["RuleNames"]
        check(len(rules) == 1, "one EventBridge rule targets the reaper", rules)
        rule = aws.events.describe_rule(Name=rules[0])
        check(rule["ScheduleExpression"] == "rate(5 minutes)" and rule["State"] == "ENABLED", "schedule rate(5 minutes), enabled", rule)
        # S3EventsEnabled=true: one rule sends the state bucket's object events to lock-metrics. Its
        # bucket list is one `!If [HasStateBucketN, <bucket>, !Ref AWS::NoValue]` per slot: only the
        # configured bucket may remain (an empty or null entry would be a pattern AWS rejects).
        s3_rules = aws.events.list_rule_names_by_target(TargetArn=functions["lock-metrics"]["FunctionArn"])["RuleNames"]
        check(len(s3_rules) == 1, "one EventBridge rule targets lock-metrics (S3LockEventsRule)", s3_rules)
        s3_rule = aws.events.describe_rule(Name=s3_rules[0])
        pattern = json.loads(s3_rule["EventPattern"])
        expected_pattern = {
            "source": ["aws.s3"],
            "detail-type": ["Object Created", "Object Deleted"],
            "detail": {"bucket": {"name": [state_bucket]}},
        }
        check(
            pattern == expected_pattern and s3_rule["State"] == "ENABLED",
            f"S3 events rule: Object Created/Deleted of aws.s3, bucket {state_bucket} only, enabled",
            s3_rule,
        )
        s3_failures = aws.sqs.get_queue_attributes(
            QueueUrl=resources["S3EventFailureQueue"]["PhysicalResourceId"], AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        targets = aws.events.list_targets_by_rule(Rule=s3_rules[0])["Targets"]
        check(
            len(targets) == 1
            and targets[0]["Arn"] == functions["lock-metrics"]["FunctionArn"]
            and targets[0].get("DeadLetterConfig", {}).get("Arn") == s3_failures
            and int(targets[0].get("RetryPolicy", {}).get("MaximumRetryAttempts", -1)) == 185
            and int(targets[0].get("RetryPolicy", {}).get("MaximumEventAgeInSeconds", -1)) == 86400,
            "S3 events rule → lock-metrics, 185 retries within a day, then S3EventFailureQueue",
            targets,
        )
        metrics_invoke = lam.get_function_event_invoke_config(FunctionName=outputs["LockMetricsFunctionName"], Qualifier="$LATEST")
        check(
            int(metrics_invoke.get("MaximumRetryAttempts", -1)) == 2
            and metrics_invoke.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") == s3_failures,
            "lock-metrics (asynchronous invocations: S3 events): 2 retries, then S3EventFailureQueue",
            metrics_invoke,
        )

        alarms = {a["AlarmName"]: a for a in aws.cloudwatch.describe_alarms(MaxRecords=100)["MetricAlarms"]}
        wanted = [
            "ReaperSilentAlarm", "SweepErrorsAlarm", "ReaperErrorsAlarm", "LockMetricsErrorsAlarm", "ForceUnlockErrorsAlarm",
            "StreamFailureQueueAlarm", "UnlockFailureQueueAlarm", "S3EventFailureQueueAlarm",
            "StreamIteratorAgeAlarm", "ReaperThrottlesAlarm", "LockMetricsThrottlesAlarm", "ForceUnlockThrottlesAlarm",
        ]
        physical = {k: resources[k]["PhysicalResourceId"] for k in wanted}
        check(all(p in alarms for p in physical.values()), f"{len(wanted)} alarms exist", sorted(set(physical.values()) - alarms.keys()))
        silent = alarms[physical["ReaperSilentAlarm"]]
        check(silent["TreatMissingData"] == "breaching" and silent["MetricName"] == "SweepErrors", "reaper-stopped alarm treats missing data as breaching", silent)

        def watches(logical: str) -> tuple:
            a = alarms[physical[logical]]
            return a["Namespace"], a["MetricName"], [(d["Name"], d["Value"]) for d in a["Dimensions"]], a["Statistic"], a["ComparisonOperator"], a["Threshold"]

        function_names = {name: functions[name]["FunctionName"] for name in functions}
        # The one IteratorAge alarm watches the function both deployed stream mappings invoke.
        mapped = {m["FunctionArn"] for m in lam.list_event_source_mappings(FunctionName=function_names["lock-metrics"])["EventSourceMappings"]}
        check(mapped == {functions["lock-metrics"]["FunctionArn"]}, "the stream mappings invoke lock-metrics", mapped)
        check(
            watches("StreamIteratorAgeAlarm") == ("AWS/Lambda", "IteratorAge", [("FunctionName", function_names["lock-metrics"])], "Maximum", "GreaterThanThreshold", 600000.0),
            "stream-lag alarm: IteratorAge of lock-metrics, Maximum > 600,000 ms (the default 600 s)",
            watches("StreamIteratorAgeAlarm"),
        )
        for name, logical in (("reaper", "ReaperThrottlesAlarm"), ("lock-metrics", "LockMetricsThrottlesAlarm"), ("force-unlock", "ForceUnlockThrottlesAlarm")):
            check(
                watches(logical) == ("AWS/Lambda", "Throttles", [("FunctionName", function_names[name])], "Sum", "GreaterThanThreshold", 0.0),
                f"throttles alarm: Throttles of {name}, Sum > 0",
                watches(logical),
            )
        check(all(alarms[p]["AlarmActions"] == [alert_topic] for p in physical.values()), "every alarm notifies the alert topic")
        dashboard = aws.cloudwatch.get_dashboard(DashboardName=resources["Dashboard"]["PhysicalResourceId"])
        body = json.loads(dashboard["DashboardBody"])
        check(
            len(body["widgets"]) == 6 and all(m in dashboard["DashboardBody"] for m in ("LockHoldSeconds", "Throttles", "IteratorAge")),
            "dashboard with 6 widgets (locks, age, hold time, releases, errors and throttles, stream lag)",
        )

        step(6, "proving the functions fire: a lock → lock-metrics; a garbage approval → force-unlock")
        capture = aws.sqs.create_queue(QueueName=f"alerts-capture-{suffix}")["QueueUrl"]
        capture_arn = aws.sqs.get_queue_attributes(QueueUrl=capture, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        aws.sns.subscribe(TopicArn=alert_topic, Protocol="sqs", Endpoint=capture_arn)

        item = json.loads(FIXTURE_LOCK.read_text())  # a lock item as real Terraform writes it
        info = json.loads(item["Info"]["S"])
        state_key = "network/terraform.tfstate"
        lock_path = f"{state_bucket}/{state_key}"
        info.update(
            ID=str(uuid.uuid4()),
            Path=lock_path,
            Created=(datetime.now(timezone.utc) - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )
        item = {"LockID": {"S": lock_path}, "Info": {"S": json.dumps(info, separators=(",", ":"))}}
        aws.dynamodb.put_item(TableName=lock_table, Item=item)
        metrics_group = f"/aws/lambda/{functions['lock-metrics']['FunctionName']}"
        acquired = wait_for(
            "lock-metrics to log the acquired lock",
            lambda: json_lines_with(log_lines(aws, metrics_group), event="acquired", lock_id=info["ID"]),
            timeout=90,
        )
        ok(f"lock-metrics ran: {metrics_group} has {{event: acquired, lock_id: {info['ID'][:8]}…, path: {acquired[0].get('path')}}}")
        # Metrics are EMF lines in the same log group: read them as CloudWatch Logs extracts them.
        namespace = functions["lock-metrics"]["Environment"]["Variables"]["METRICS_NAMESPACE"]
        lock_dims = {"LockTable": lock_table, "LockKind": "terraform-dynamodb"}

        def emf_sum(name: str) -> float:
            return emf_reader.metric_sum(emf_reader.read_lines(log_lines(aws, metrics_group)), namespace, name, lock_dims)

        acquired_count = wait_for("LocksAcquired in lock-metrics' EMF log lines", lambda: emf_sum("LocksAcquired"), timeout=90)
        check(acquired_count == 1, f"EMF in {metrics_group}: {namespace}/LocksAcquired = 1 for the one lock", acquired_count)
        claims = aws.dynamodb.query(
            TableName=ledger,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"stream#{lock_table}"}},
        )["Items"]
        check(len(claims) >= 1, f"lock-metrics wrote its stream claim to the ledger (pk stream#{lock_table})", claims)

        # The second event source: an S3-native lock file, written as Terraform writes it
        # (PutObject with If-None-Match: *), reaches the deployed lock-metrics through the bucket's
        # EventBridge notifications and the stack's S3LockEventsRule; then the state write and the
        # release. A state key of its own, so the reaper's judgement of the lock above is untouched.
        s3_state_key = "s3-native/terraform.tfstate"
        s3_lock_key = f"{s3_state_key}.tflock"
        s3_dims = {"LockTable": state_bucket, "LockKind": "terraform-s3-lockfile"}
        s3_lock_created = datetime.now(timezone.utc)
        body = json.loads(FIXTURE_LOCK_FILE.read_text())
        body.update(
            ID=str(uuid.uuid4()),
            Path=f"{state_bucket}/{s3_state_key}",
            Created=s3_lock_created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )
        aws.s3.put_object(
            Bucket=state_bucket, Key=s3_lock_key, IfNoneMatch="*", ContentType="application/json",
            Body=json.dumps(body, separators=(",", ":")).encode(),
        )
        s3_acquired = wait_for(
            "lock-metrics to log the lock file's acquisition (S3 event through EventBridge)",
            lambda: json_lines_with(log_lines(aws, metrics_group), event="acquired", table=state_bucket, key=s3_lock_key),
            timeout=90,
        )
        check(
            s3_acquired[0].get("kind") == "terraform-s3-lockfile" and s3_acquired[0].get("path") == f"{state_bucket}/{s3_state_key}",
            f"the deployed lock-metrics ran on the S3 event: {{event: acquired, kind: terraform-s3-lockfile, key: {s3_lock_key}}}",
            s3_acquired[0],
        )
        s3_sum = lambda name: emf_reader.metric_sum(emf_reader.read_lines(log_lines(aws, metrics_group)), namespace, name, s3_dims)  # noqa: E731
        check(s3_sum("LocksAcquired") == 1, f"EMF: {namespace}/LocksAcquired = 1 for LockTable={state_bucket}, LockKind=terraform-s3-lockfile", s3_sum("LocksAcquired"))
        aws.s3.put_object(Bucket=state_bucket, Key=s3_state_key, Body=b'{"version": 4, "serial": 1}', ContentType="application/json")
        written = wait_for(
            "lock-metrics to record the state write in the ledger",
            lambda: aws.dynamodb.get_item(
                TableName=ledger, Key={"pk": {"S": f"state#{state_bucket}/{s3_state_key}"}, "sk": {"S": "last-write"}}, ConsistentRead=True
            ).get("Item"),
            timeout=90,
        )
        check(
            datetime.fromisoformat(written["written_at"]["S"].replace("Z", "+00:00")) > s3_lock_created,
            f"ledger: the state write after the lock (liveness evidence, state#{state_bucket}/{s3_state_key} at {written['written_at']['S']})",
            written,
        )
        aws.s3.delete_object(Bucket=state_bucket, Key=s3_lock_key)  # Terraform's unlock: unconditional
        s3_released = wait_for(
            "lock-metrics to log the lock file's release",
            lambda: json_lines_with(log_lines(aws, metrics_group), event="released", table=state_bucket, key=s3_lock_key),
            timeout=90,
        )
        check(
            s3_released[0].get("release") == "normal" and isinstance(s3_released[0].get("hold_seconds"), int),
            f"lock-metrics logged the release: normal, held {s3_released[0].get('hold_seconds')} s",
            s3_released[0],
        )
        check(
            s3_sum("LocksReleased") == 1 and s3_sum("StateWrites") == 1 and s3_sum("LocksAcquired") == 1,
            f"EMF (LockKind=terraform-s3-lockfile): LocksAcquired = 1, StateWrites = 1, LocksReleased = 1",
            {n: s3_sum(n) for n in ("LocksAcquired", "StateWrites", "LocksReleased")},
        )
        check(
            not aws.sqs.receive_message(QueueUrl=resources["S3EventFailureQueue"]["PhysicalResourceId"], WaitTimeSeconds=0).get("Messages"),
            "S3EventFailureQueue is empty (no S3 event failed)",
        )

        aws.sns.publish(TopicArn=approval_topic, Message="approve lr1.this-is-not-a-token")
        rejected = wait_for(
            "force-unlock's rejection on the alert topic",
            lambda: [m for m in sqs_messages(aws, capture) if "ApprovalRejected" in m.get("Message", "")],
            timeout=90,
        )
        chat = json.loads(rejected[0]["Message"])
        ok(f"force-unlock ran and answered on the alert topic: {chat['metadata'].get('eventType')}: {chat['content'].get('title', '')[:70]}")

        step(7, "end to end: the reaper proposes, the approval token is published, force-unlock releases the lock")
        event = SCHEDULED_EVENT.read_text()
        result = lam.invoke(FunctionName=functions["reaper"]["FunctionName"], Payload=event.encode())
        payload = json.loads(result["Payload"].read() or b"null")
        check(result.get("FunctionError") is None, "the deployed reaper ran a sweep", payload)
        judged = [lock for lock in (payload or {}).get("locks", []) if lock.get("lock_id") == info["ID"]]
        check(judged and judged[0].get("proposal_id"), "the reaper judged the 5-hour-old lock stale and proposed an unlock", payload)
        alert = wait_for(
            "the reaper's alert with an approval token",
            lambda: [
                json.loads(m["Message"])
                for m in sqs_messages(aws, capture)
                if "approvalToken" in m.get("Message", "")
            ],
            timeout=60,
        )[0]
        token = alert["metadata"]["additionalContext"]["approvalToken"]
        check(len(token) == 58 and " " not in token, f"alert carries a 58-character approval token ({token[:10]}…)")
        # The chat buttons, as Chatbot would apply template.yaml's custom actions to this alert:
        # every variable path resolves in it, every criterion holds (the topic it names is this
        # stack's), and each press would publish what force-unlock's parser expects.
        from cfnlint.decode import decode  # infra/.venv-deploy (cfn-lint is aws-sam-cli's dependency)

        template, problems = decode(str(ROOT / "template.yaml"))
        check(not problems, "template.yaml parses", problems)
        presses = {}
        for logical, action in chatbot_buttons.custom_actions(template).items():
            pressed, why = chatbot_buttons.press(action, alert, {"ApprovalTopic": approval_topic})
            check(pressed is not None, f"the {logical} button's variables resolve in the deployed reaper's alert", why)
            message = pressed.argument("--message")
            presses[message.split()[0] if " " in message else "approve"] = pressed  # a bare token approves
        expected = {"approve": token, "deny": f"deny {token}", "snooze": f"snooze {token} 2h"}
        got = {action: p.argument("--message") for action, p in presses.items()}
        check(got == expected, "Approve unlock / Deny / Snooze 2h would publish `<token>`, `deny <token>`, `snooze <token> 2h`", got)
        check(all(p.argument("--topic-arn") == approval_topic for p in presses.values()), "…to this stack's approvals topic")
        # Press "Approve unlock": publish exactly what its substituted command publishes.
        approve = presses["approve"]
        aws.sns.publish(TopicArn=approve.argument("--topic-arn"), Message=approve.argument("--message"))
        wait_for(
            "force-unlock to delete the lock item",
            lambda: "Item" not in aws.dynamodb.get_item(TableName=lock_table, Key={"LockID": {"S": lock_path}}, ConsistentRead=True),
            timeout=90,
        )
        ok(f"the lock {lock_path} is gone from {lock_table}")
        unlocked = wait_for(
            "force-unlock's result on the alert topic",
            lambda: [json.loads(m["Message"]) for m in sqs_messages(aws, capture) if "LockUnlocked" in m.get("Message", "")],
            timeout=60,
        )
        ok(f"result published: {unlocked[0]['metadata'].get('eventType')}")
        forced = wait_for(
            "lock-metrics to count the REMOVE as a forced release",
            lambda: json_lines_with(log_lines(aws, metrics_group), event="released", lock_id=info["ID"]),
            timeout=90,
        )
        check(forced[0].get("release") == "forced", "lock-metrics logged the release as forced", forced[0])
        forced_count = wait_for("ForcedReleases in lock-metrics' EMF log lines", lambda: emf_sum("ForcedReleases"), timeout=90)
        check(
            forced_count == 1 and emf_sum("LocksReleased") == 1,
            f"EMF in {metrics_group}: {namespace}/ForcedReleases = 1, LocksReleased = 1",
            forced_count,
        )

        step(8, "stack update: AutoExpire=true gives the reaper delete rights, and only then")
        reaper_role = functions["reaper"]["Role"].rsplit("/", 1)[-1]
        before = aws.iam.list_role_policies(RoleName=reaper_role)["PolicyNames"]
        check("reaper-auto-expire" not in before, "with AutoExpire=false the reaper role has no delete policy", before)
        took = deploy({**overrides, "AutoExpire": "true"}, "sam-deploy-update.log")
        status = aws.cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
        check(status == "UPDATE_COMPLETE", f"stack updated in {took:.0f}s", status)
        after = aws.iam.list_role_policies(RoleName=reaper_role)["PolicyNames"]
        check("reaper-auto-expire" in after, "the reaper role gained its auto-expiry policy", after)
        doc = json.dumps(aws.iam.get_role_policy(RoleName=reaper_role, PolicyName="reaper-auto-expire")["PolicyDocument"])
        check("dynamodb:DeleteItem" in doc and "*.tflock" in doc, "…DeleteItem on the lock tables, DeleteObject on *.tflock", doc)
        env_now = lam.get_function_configuration(FunctionName=functions["reaper"]["FunctionName"])["Environment"]["Variables"]
        check(env_now["AUTO_EXPIRE"] == "true", "and the reaper's AUTO_EXPIRE=true")

        # The kill switch, deployed as an operator would pull it (a parameter update, no rebuild),
        # together with the org guardrails that need CAPABILITY_NAMED_IAM.
        prefix = f"lr-{STACK}"[:40]
        boundary = f"arn:aws:iam::000000000000:policy/{prefix}-boundary"
        took = deploy(
            {**overrides, "AutoExpire": "true", "UnlocksPaused": "true", "RoleNamePrefix": prefix, "PermissionsBoundary": boundary},
            "sam-deploy-paused.log",
            "CAPABILITY_NAMED_IAM",
        )
        stack = aws.cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
        check(stack["StackStatus"] == "UPDATE_COMPLETE", f"UnlocksPaused=true, RoleNamePrefix, PermissionsBoundary deployed in {took:.0f}s (CAPABILITY_NAMED_IAM)", stack["StackStatus"])
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        role_names = {key: outputs[key].rsplit("/", 1)[-1] for key in ("ReaperRoleArn", "LockMetricsRoleArn", "ForceUnlockRoleArn")}
        check(
            role_names == {"ReaperRoleArn": f"{prefix}-reaper", "LockMetricsRoleArn": f"{prefix}-lock-metrics", "ForceUnlockRoleArn": f"{prefix}-force-unlock"},
            "the roles carry the prefix names, and their ARNs are outputs",
            role_names,
        )
        for key, role in role_names.items():
            got = aws.iam.get_role(RoleName=role)["Role"].get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
            if got is None:
                print(f"    -- emulator gap: ministack does not report {role}'s PermissionsBoundary (checked in test_guardrails.py)", flush=True)
            else:
                check(got == boundary, f"{role} has the permissions boundary", got)
            statements = [
                st
                for name in aws.iam.list_role_policies(RoleName=role)["PolicyNames"]
                for st in aws.iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]["Statement"]
            ]

            def listed(value) -> list:
                return value if isinstance(value, list) else [value]

            lock_tables = {f":table/{lock_table}", f":table/{gyro_table}"}
            deletes = [
                st for st in statements
                if "s3:DeleteObject" in listed(st["Action"])
                or ("dynamodb:DeleteItem" in listed(st["Action"]) and any(r.endswith(t) for r in listed(st["Resource"]) for t in lock_tables))
            ]
            check(statements, f"{role}: its inline policies read back", statements)
            check(not deletes, f"{role}: no delete of a lock item or lock file while paused", deletes)
        for name in ("reaper", "force-unlock"):
            env_now = lam.get_function_configuration(FunctionName=functions[name]["FunctionName"])["Environment"]["Variables"]
            check(env_now.get("UNLOCKS_PAUSED") == "true", f"{name}: UNLOCKS_PAUSED=true")

        step(9, "sam delete removes the stack (the ledger table is retained)")
        took = run(
            [str(SAM), "delete", "--stack-name", STACK, "--region", REGION, "--no-prompts", "--s3-bucket", deploy_bucket],
            env,
            workdir / "sam-delete.log",
        )
        gone = [s for s in aws.cloudformation.list_stacks()["StackSummaries"] if s["StackName"] == STACK and s["StackStatus"] != "DELETE_COMPLETE"]
        check(not gone, f"stack deleted in {took:.0f}s", gone)
        remaining = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
        check(not remaining & {c["FunctionName"] for c in functions.values()}, "the functions are gone", remaining)
        check(ledger in aws.dynamodb.list_tables()["TableNames"], "the ledger table is retained (DeletionPolicy: Retain)")

        passed = True
        print(f"\n{GREEN}{BOLD}deploy-local passed{RESET} in {time.monotonic() - T0:.0f}s", flush=True)
        if args.keep:
            print(f"emulator left running at {emulator.endpoint}; Ctrl-C stops it", flush=True)
            while True:
                time.sleep(3600)
        return 0
    except Failed as e:
        print(f"\n{RED}{BOLD}deploy-local FAILED:{RESET} {e}", file=sys.stderr, flush=True)
        print(f"(logs kept in {workdir}: ministack.log, sam-build.log, sam-deploy.log)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if passed:  # --keep, then Ctrl-C
            return 0
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - an unexpected error is a failed check too, with its traceback
        import traceback

        traceback.print_exc()
        print(f"\n{RED}{BOLD}deploy-local FAILED{RESET} (unexpected error above; logs kept in {workdir})", file=sys.stderr)
        return 1
    finally:
        if emulator is not None:
            emulator.stop()
        # Keep the logs of a failed run for reading; remove everything after a pass.
        if passed:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    code = main()
    sys.exit(code)
