#!/usr/bin/env python3
"""Checks of infra/slack/manifest.yaml, the Slack app of the Slack app mode (issue 13):

    infra/.venv-deploy/bin/python -m unittest infra/slack/test_manifest.py

Slack validates a manifest only when an app is created from it, which needs a Slack workspace. So
the manifest is checked here against Slack's documented manifest format, written down below as a
JSON Schema of exactly the parts lockreaper's manifest uses (every object closed, so a misspelt or
unknown key fails as it does in Slack). Evidence: "App manifest reference"
(docs.slack.dev/reference/app-manifest) and Slack's own JSON Schema of it, github.com/slackapi/
manifest-schema, schemas/manifest.schema.1.0.0.json: `display_information` required with `name`
(1-35 characters) and `description` (1-140); `features.bot_user.display_name` required (1-80);
`oauth_config.scopes.bot` a list of scope names (each at most 50 characters); `settings.interactivity`
with `is_enabled` required and `request_url` matching `^https?://` (at most 3500 characters); the
settings booleans `org_deploy_enabled`, `socket_mode_enabled`, `token_rotation_enabled`; no
`additionalProperties` anywhere.

Then lockreaper's own rules: a bot user, the bot scopes exactly `chat:write` (chat.postMessage and
chat.update of its own messages) and `usergroups:read` (usergroups.users.list for the user-group
entries of ApproverAllowList), interactivity on and its Request URL a function URL (the template's
SlackInteractionsUrl output), and no events, slash commands, shortcuts or user scopes.
"""

from __future__ import annotations

import copy
import re
import unittest
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "infra/slack/manifest.yaml"

HTTP_URL = {"type": "string", "pattern": "^https?://", "maxLength": 3500}
SLACK_MANIFEST_SUBSET = {
    "type": "object",
    "additionalProperties": False,
    "required": ["display_information"],
    "properties": {
        "_metadata": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"major_version": {"type": "integer"}, "minor_version": {"type": "integer"}},
        },
        "display_information": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 35},
                "description": {"type": "string", "minLength": 1, "maxLength": 140},
                "background_color": {"type": "string", "pattern": "^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$"},
            },
        },
        "features": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "bot_user": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["display_name"],
                    "properties": {
                        "display_name": {"type": "string", "minLength": 1, "maxLength": 80},
                        "always_online": {"type": "boolean"},
                    },
                },
            },
        },
        "oauth_config": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "scopes": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"bot": {"type": "array", "items": {"type": "string", "maxLength": 50}, "maxItems": 255}},
                },
            },
        },
        "settings": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "interactivity": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["is_enabled"],
                    "properties": {"is_enabled": {"type": "boolean"}, "request_url": HTTP_URL},
                },
                "org_deploy_enabled": {"type": "boolean"},
                "socket_mode_enabled": {"type": "boolean"},
                "token_rotation_enabled": {"type": "boolean"},
            },
        },
    },
}
# A Lambda function URL: https://<url-id>.lambda-url.<region>.on.aws/ (Lambda Developer Guide,
# "Invoking Lambda function URLs", docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html).
FUNCTION_URL = re.compile(r"^https://[A-Za-z0-9-]+\.lambda-url\.[a-z0-9-]+\.on\.aws/$")


def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def problems(doc: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(SLACK_MANIFEST_SUBSET)
    return sorted(f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc))


class SlackAppManifest(unittest.TestCase):
    def test_the_manifest_has_slacks_documented_form(self):
        self.assertEqual(problems(manifest()), [])

    def test_the_schema_check_refuses_what_slack_refuses(self):
        # guards the check itself: each of these is refused by Slack's schema, so must be here
        bad = []
        for path, value in (
            (("display_information", "name"), "x" * 36),
            (("settings", "interactivity", "request_url"), "lambda-url.on.aws"),
            (("features", "bot_user", "display_nam"), "lockreaper"),
            (("settings", "event_subscription"), {}),
        ):
            doc = copy.deepcopy(manifest())
            node = doc
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            bad.append(doc)
        no_enabled = copy.deepcopy(manifest())
        del no_enabled["settings"]["interactivity"]["is_enabled"]
        bad.append(no_enabled)
        for doc in bad:
            with self.subTest(doc=doc):
                self.assertTrue(problems(doc))

    def test_a_bot_user_with_exactly_the_scopes_the_functions_use(self):
        doc = manifest()
        self.assertIn("display_name", doc["features"]["bot_user"])
        self.assertEqual(doc["oauth_config"]["scopes"], {"bot": ["chat:write", "usergroups:read"]})

    def test_interactivity_goes_to_the_function_url_and_nothing_else_is_asked_for(self):
        doc = manifest()
        interactivity = doc["settings"]["interactivity"]
        self.assertIs(interactivity["is_enabled"], True)
        self.assertRegex(interactivity["request_url"], FUNCTION_URL)
        self.assertNotIn("event_subscriptions", doc["settings"])
        self.assertIs(doc["settings"]["socket_mode_enabled"], False)
        self.assertEqual(set(doc["features"]), {"bot_user"})  # no slash_commands, shortcuts, app_home
        # the template's output the README tells the deployer to paste here
        template = (ROOT / "infra/sam/template.in.yaml").read_text()
        self.assertIn("  SlackInteractionsUrl:\n", template)
        self.assertIn("!GetAtt SlackInteractionsFunctionUrl.FunctionUrl", template)

    def test_the_setup_is_documented_where_the_manifest_says(self):
        readme = (ROOT / "infra/sam/README.md").read_text()
        section = readme.split("## The Slack app mode", 1)[1].split("\n## ", 1)[0]
        for needed in ("infra/slack/manifest.yaml", "SlackInteractionsUrl", "SlackBotTokenSecretArn", "SlackSigningSecretArn", "SlackAppChannelId", "/invite", "chat:write", "usergroups:read"):
            self.assertIn(needed, section)


if __name__ == "__main__":
    unittest.main()
