"""The demo's Slack requests are made exactly as Slack makes them."""

import json
import sys
import unittest
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slack_demo  # noqa: E402


class Signature(unittest.TestCase):
    def test_slacks_documented_example(self):
        # docs.slack.dev/authentication/verifying-requests-from-slack, "Validating a request": this
        # secret, timestamp and body give this signature (the Rust verifier's test uses the same).
        body = (
            "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        ).encode()
        self.assertEqual(
            slack_demo.signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        )


MESSAGE = {
    "channel": "C0LOCKREAPR",
    "ts": "1741086927.000001",
    "text": "lock held",
    "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": ":lock: *Stale lock* on `acme/x` &lt;b&gt;"}},
        {"type": "actions", "block_id": "lockreaper-approval", "elements": [
            {"type": "button", "action_id": "lockreaper-approve", "value": "tok", "text": {"type": "plain_text", "text": "Approve unlock"}},
            {"type": "button", "action_id": "lockreaper-deny", "value": "tok", "text": {"type": "plain_text", "text": "Deny"}},
        ]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "Sent by lockreaper"}]},
    ],
}


class Press(unittest.TestCase):
    def test_block_actions_payload(self):
        body = slack_demo.block_actions_body(MESSAGE, "lockreaper-deny")
        form = urllib.parse.parse_qs(body.decode())
        self.assertEqual(list(form), ["payload"])
        payload = json.loads(form["payload"][0])
        self.assertEqual(payload["type"], "block_actions")
        self.assertEqual(payload["user"]["id"], slack_demo.USER)
        self.assertEqual(payload["user"]["team_id"], slack_demo.TEAM)
        self.assertEqual(payload["container"], {"type": "message", "message_ts": MESSAGE["ts"], "channel_id": MESSAGE["channel"], "is_ephemeral": False})
        [action] = payload["actions"]
        self.assertEqual((action["action_id"], action["block_id"], action["value"]), ("lockreaper-deny", "lockreaper-approval", "tok"))
        self.assertEqual(payload["message"]["blocks"], MESSAGE["blocks"])

    def test_a_button_that_is_not_there(self):
        with self.assertRaises(ValueError):
            slack_demo.block_actions_body(MESSAGE, "lockreaper-snooze-2h")

    def test_function_url_on_ministack(self):
        self.assertEqual(
            slack_demo.local_function_url("https://abcdef0123456789abcdef0123456789.lambda-url.us-east-1.on.aws/", "http://127.0.0.1:4566"),
            "http://127.0.0.1:4566/_aws/lambda-url/abcdef0123456789abcdef0123456789/",
        )
        with self.assertRaises(ValueError):
            slack_demo.local_function_url("https://example.com/", "http://127.0.0.1:4566")


class Render(unittest.TestCase):
    def test_as_a_channel_shows_it(self):
        self.assertEqual(
            slack_demo.render(MESSAGE),
            [":lock: Stale lock on `acme/x` <b>", "[ Approve unlock ]  [ Deny ]", "Sent by lockreaper"],
        )

    def test_mentions_become_names(self):
        self.assertEqual(slack_demo.mrkdwn_to_terminal(f"Approved by <@{slack_demo.USER}> at 14:02"), "Approved by @ana at 14:02")


if __name__ == "__main__":
    unittest.main()
