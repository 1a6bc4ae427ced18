"""The Slack app mode's half of `make demo` and `make deploy-local`: a local Slack, a signed press.

Slack is not reachable here, so the deployed functions talk to the local stand-in of the Slack Web
API (`shared/slack-standin`, the same one the Rust tests use), run as a process: `slack-notifier`
posts and updates messages there, `slack-interactions` updates the pressed message there. What a
person does in Slack — press a button — is an interactivity request, made here exactly as Slack
makes it (docs.slack.dev/interactivity/handling-user-interaction): a POST of
`application/x-www-form-urlencoded` `payload=<JSON>` to the app's Request URL (the stack's
`SlackInteractionsUrl`, the function URL), signed with the app's signing secret
(docs.slack.dev/authentication/verifying-requests-from-slack: `X-Slack-Request-Timestamp` and
`X-Slack-Signature: v0=hex(HMAC-SHA256(secret, "v0:<timestamp>:<body>"))`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

# Slack IDs in Slack's own formats: a channel `C…`, a workspace `T…`, a user `U…`.
CHANNEL = "C0LOCKREAPR"
TEAM = "T0ACMECORP"
USER = "U0ANA1234"
USER_NAME = "ana"


def signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """`X-Slack-Signature` of `body` sent at `timestamp` (Slack's v0 scheme)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def block_actions_body(message: dict, action_id: str, user: str = USER, team: str = TEAM, name: str = USER_NAME) -> bytes:
    """The form body Slack POSTs when `user` presses the button `action_id` under `message`
    (a message as the stand-in holds it: channel, ts, text, blocks) — the `block_actions` payload's
    documented members (docs.slack.dev/reference/interaction-payloads/block_actions-payload)."""
    button = next(
        (e for b in message["blocks"] if b.get("type") == "actions" for e in b.get("elements", []) if e.get("action_id") == action_id),
        None,
    )
    if button is None:
        raise ValueError(f"no button {action_id!r} in the message at {message.get('ts')}")
    block_id = next(b.get("block_id") for b in message["blocks"] if button in b.get("elements", []))
    now = f"{time.time():.6f}"
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": name, "name": name, "team_id": team},
        "api_app_id": "A0LOCKREAPR",
        "token": "verification-token-deprecated",
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": message["channel"], "is_ephemeral": False},
        "trigger_id": f"{int(time.time())}.1234.abcdef",
        "team": {"id": team, "domain": "acme"},
        "channel": {"id": message["channel"], "name": "infra-locks"},
        "message": {"type": "message", "ts": message["ts"], "text": message.get("text") or "", "blocks": message["blocks"]},
        "response_url": f"https://hooks.slack.com/actions/{team}/1/x",
        "actions": [{
            "type": "button",
            "action_id": action_id,
            "block_id": block_id,
            "text": button.get("text"),
            "value": button.get("value"),
            "action_ts": now,
        }],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def press(url: str, signing_secret: str | None, body: bytes, timestamp: int | None = None) -> tuple[int, str]:
    """POSTs `body` to the Request URL as Slack would, signed with `signing_secret` (unsigned when
    None); the HTTP status and body of the answer."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts}
    if signing_secret is not None:
        headers["X-Slack-Signature"] = signature(signing_secret, ts, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def local_function_url(function_url: str, endpoint: str) -> str:
    """ministack's path form of a function URL (`https://<id>.lambda-url.<region>.on.aws/` is
    served at `<endpoint>/_aws/lambda-url/<id>/`)."""
    match = re.match(r"https://([a-z0-9-]+)\.lambda-url\.", function_url)
    if not match:
        raise ValueError(f"not a Lambda function URL: {function_url!r}")
    return f"{endpoint}/_aws/lambda-url/{match.group(1)}/"


def mrkdwn_to_terminal(text: str, bold: str = "", reset: str = "") -> str:
    """Slack mrkdwn as a terminal shows it: `*bold*`, `<@U…>` mentions as @names, entities decoded."""
    text = re.sub(r"<@([UW][A-Z0-9]+)>", lambda m: "@" + (USER_NAME if m.group(1) == USER else m.group(1)), text)
    text = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", lambda m: f"{bold}{m.group(1)}{reset}", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render(message: dict, bold: str = "", dim: str = "", green: str = "", reset: str = "") -> list[str]:
    """The lines a Slack channel shows for `message` (section text, buttons, context)."""
    lines: list[str] = []
    for block in message.get("blocks", []):
        kind = block.get("type")
        if kind == "section":
            lines += mrkdwn_to_terminal(block["text"]["text"], bold, reset).splitlines()
        elif kind == "actions":
            lines.append("  ".join(f"{green}[ {e['text']['text']} ]{reset}" for e in block.get("elements", [])))
        elif kind == "context":
            lines.append(dim + " · ".join(mrkdwn_to_terminal(e.get("text", "")) for e in block.get("elements", [])) + reset)
    return lines


class SlackStandIn:
    """The stand-in as a process: `<binary> --token T --channel C --state FILE` prints its base URL
    and keeps FILE holding every message "Slack" shows."""

    def __init__(self, binary: Path, workdir: Path, bot_token: str, channel: str = CHANNEL):
        self.state = workdir / "slack-messages.json"
        self.log = open(workdir / "slack-standin.log", "w")
        self.proc = subprocess.Popen(
            [str(binary), "--token", bot_token, "--channel", channel, "--state", str(self.state)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"the Slack stand-in did not start (said {line!r}; log {workdir / 'slack-standin.log'})")
        self.base_url = match.group(1)

    def messages(self) -> list[dict]:
        try:
            return json.loads(self.state.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return []  # not written yet, or caught mid-rename

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
