"""The chat buttons of template.yaml (`AWS::Chatbot::CustomAction`) applied to a notification the
way Amazon Q Developer in chat applications (ex-AWS Chatbot) applies them: resolve each attachment's
variables in the notification, draw the button only if every criterion holds, and on a press
substitute the variables into `CommandText`. Used by test_template.py (against fixture alerts the
reaper's code rendered) and deploy_local.py (against the alert the deployed reaper published).

The variable path syntax is the one working public deployments use, `event.<key>.<key>…` from the
notification's root (e.g. `event.metadata.additionalContext.approvalToken`); the API reference
(CustomActionAttachment.Variables: "The variables to extract from the notification") does not
spell it out. A path that does not resolve yields no value, so a `HAS_VALUE` criterion on it fails
and the button is not drawn: exactly the failure this module exists to catch.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

VARIABLE_ROOT = "event"
# API reference, CustomActionAttachment / CustomActionAttachmentCriteria / CustomActionDefinition
# (docs.aws.amazon.com/chatbot/latest/APIReference/API_CustomActionAttachment.html and siblings).
COMMAND_TEXT_MAX = 100
BUTTON_TEXT_MAX = 50
VARIABLES_MAX = 5
CRITERIA_MAX = 5
VARIABLE_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
VARIABLE_PATH = re.compile(r"[\x21-\x7F]{1,1024}")
OPERATORS = ("HAS_VALUE", "EQUALS")
NOTIFICATION_TYPE = "Custom"
# `$name` in CommandText (the API: "variables by prefixing with a dollar sign ($)").
COMMAND_VARIABLE = re.compile(r"\$([A-Za-z0-9_-]+)")


class Unresolvable(LookupError):
    """A variable path that names nothing in the notification."""


def resolve(path: str, notification: dict):
    """The value at `path` (`event.a.b`, list elements by index: `event.a.0`) in `notification`."""
    parts = path.split(".")
    if parts[0] != VARIABLE_ROOT or len(parts) < 2:
        raise Unresolvable(f"{path!r} does not start at the notification root `{VARIABLE_ROOT}.`")
    node = notification
    for depth, part in enumerate(parts[1:], start=1):
        where = ".".join(parts[:depth])
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise Unresolvable(f"{path!r}: {where} has no {part!r}")
    return node


def custom_actions(template: dict) -> dict[str, dict]:
    """Logical id → Properties of every AWS::Chatbot::CustomAction."""
    return {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == "AWS::Chatbot::CustomAction"}


@dataclass
class Press:
    """What one drawn button does when pressed."""

    button: str
    command: str  # CommandText with the variables substituted
    words: list[str]  # the command as the CLI parser splits it

    def argument(self, flag: str) -> str:
        at = self.words.index(flag)
        return self.words[at + 1]


def _value(value, refs: dict[str, str]) -> str:
    """A criterion's Value: a string, or `{"Ref": X}` looked up in `refs`."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return refs[value["Ref"]]
    return value


def press(action: dict, notification: dict, refs: dict[str, str]) -> tuple[Press | None, str]:
    """The press of `action`'s button on `notification`, or `(None, why it is not drawn)`.

    `refs` resolves `!Ref` in criterion values (the stack's own resources, e.g. ApprovalTopic)."""
    command = action["Definition"]["CommandText"]
    whys = []
    for attachment in action["Attachments"]:
        if attachment.get("NotificationType") != NOTIFICATION_TYPE:
            whys.append(f"attachment for NotificationType {attachment.get('NotificationType')!r}, not {NOTIFICATION_TYPE!r}")
            continue
        values, unresolved = {}, {}
        for name, path in attachment.get("Variables", {}).items():
            try:
                values[name] = resolve(path, notification)
            except Unresolvable as e:
                unresolved[name] = str(e)
        failed = []
        for c in attachment.get("Criteria", []):
            name, op = c["VariableName"], c["Operator"]
            value = values.get(name)
            if op == "HAS_VALUE" and not (isinstance(value, (str, int, float)) and str(value) != ""):
                failed.append(f"{name} HAS_VALUE: {unresolved.get(name, repr(value))}")
            elif op == "EQUALS" and (value is None or str(value) != _value(c.get("Value", ""), refs)):
                failed.append(f"{name} EQUALS {_value(c.get('Value', ''), refs)!r}: {unresolved.get(name, repr(value))}")
        if failed:
            whys.append("; ".join(failed))
            continue
        missing = set(COMMAND_VARIABLE.findall(command)) - set(values)
        if missing:
            whys.append(f"CommandText uses {sorted(missing)}, which the attachment does not resolve")
            continue
        line = COMMAND_VARIABLE.sub(lambda m: str(values[m.group(1)]), command)
        return Press(button=attachment.get("ButtonText", ""), command=line, words=shlex.split(line)), ""
    return None, " | ".join(whys) or "no attachment"
