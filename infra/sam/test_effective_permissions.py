#!/usr/bin/env python3
"""What template.yaml grants and creates, per parameter set, compared with a recorded snapshot.

template.yaml is generated (infra/sam/template_gen.py) and its IAM is written with shared blocks, so a
change to the source or the generator can alter permissions without any one statement looking
different. This test resolves the template the way CloudFormation would for a few parameter sets
(conditions, `Fn::If`, `Fn::Sub`, `Fn::Select`/`Fn::Split`/`Fn::Join`, `AWS::NoValue`) and compares
the result with infra/sam/fixtures/effective_permissions.json, recorded from the hand-written
template before it was generated (commit f4a9590):

- per role, its effective permissions as single grants `Effect action resource condition`, from its
  inline policies, the `AWS::IAM::Policy` resources attached to it and its managed policies, so a
  statement's Sid, its order, or how grants are grouped into statements and policies does not
  matter, and any grant added, lost or widened does;
- the resources the stack creates, the stream mappings' sources, the reaper's LOCK_BUCKETS, and the
  approvals topic policy;
- per role, the environment of the function that runs as it (`environments`): what
  shared/core/tests/permissions_template.rs configures `lockreaper doctor`'s list of needed
  permissions (shared/core/src/permissions.rs) from, to check every one is granted here.

A deliberate change of what is deployed: run
    infra/.venv-deploy/bin/python infra/sam/test_effective_permissions.py --record
and review the fixture's diff like code.
"""

from __future__ import annotations

import json
import re
import sys
import unittest
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
SNAPSHOT = ROOT / "infra/sam/fixtures/effective_permissions.json"

PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "lockreaper",
}
NO_VALUE = object()


def stream(table: str) -> str:
    return f"arn:aws:dynamodb:eu-west-1:123456789012:table/{table}/stream/2026-11-23T19:38:34.588"


# The Slack app mode on (its channel and the two secrets the deployer creates).
SLACK_APP = {
    "SlackAppChannelId": "C0123ABCDEF",
    "SlackBotTokenSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lockreaper/slack-bot-token-AbCdEf",
    "SlackSigningSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lockreaper/slack-signing-secret-GhIjKl",
}

TABLES = ["tf-locks", "gyro.locks", "team_a-locks", "team-b", "legacy"]
BUCKETS = ["acme-tfstate", "acme.gyro", "team-a-state", "team-b-state", "legacy-state"]

# The combinations test_template.py's checks reason about: one of each, the five-slot maximum with
# every option on, tables only (no bucket grants at all), buckets only with a prefix and no lock-file
# search (LOCK_BUCKETS empty, yet the bucket grants stay), and a partial list (slots 3-5 off).
PARAMETER_SETS = {
    "one table, one bucket, defaults": {
        "LockTables": "tf-locks",
        "LockTableStreamArns": stream("tf-locks"),
        "StateBuckets": "acme-tfstate",
    },
    "five of each, prefix, auto-expire, Slack, Slack app, publishers": {
        "LockTables": ",".join(TABLES),
        "LockTableStreamArns": ",".join(stream(t) for t in TABLES),
        "StateBuckets": ",".join(BUCKETS),
        "StateKeyPrefix": "env/",
        "S3EventsEnabled": "true",
        "AutoExpire": "true",
        "SlackWorkspaceId": "T0123ABCDEF",
        "SlackChannelId": "C0123ABCDEF",
        **SLACK_APP,
        "ApprovalPublisherArns": "arn:aws:iam::123456789012:role/on-call,arn:aws:iam::123456789012:user/alice",
    },
    # issue 13: the Slack app mode alone (no e-mail, no Chatbot); test_guardrails adds the keys
    "Slack app mode alone": {
        "LockTables": "tf-locks",
        "StateBuckets": "acme-tfstate",
        "AlertEmail": "",
        **SLACK_APP,
    },
    "tables only, auto-expire": {
        "LockTables": "tf-locks,gyro.locks",
        "AutoExpire": "true",
    },
    "buckets only, prefix, no lock-file search": {
        "StateBuckets": "acme-tfstate,acme.gyro",
        "StateKeyPrefix": "prod/",
        "SearchLockFiles": "false",
        "LockTables": "tf-locks",
    },
    # issue 17: each entry its own prefix; a bare bucket takes the deprecated StateKeyPrefix and
    # `bucket/` means the whole bucket
    "per-bucket prefixes, one bare bucket with StateKeyPrefix, auto-expire": {
        "LockTables": "tf-locks",
        "StateBuckets": "acme-tfstate/network/,acme-tfstate/env:/prod/dns/,acme.gyro,team-a-state/",
        "StateKeyPrefix": "legacy/",
        "AutoExpire": "true",
    },
    "three tables, two streams, three buckets, auto-expire, local emulator": {
        "LockTables": ",".join(TABLES[:3]),
        "LockTableStreamArns": ",".join(stream(t) for t in TABLES[:2]),
        "StateBuckets": ",".join(BUCKETS[:3]),
        "AutoExpire": "true",
        "LocalEmulator": "true",
    },
}


class Resolver:
    """Evaluates a template's intrinsic functions for one parameter set, as CloudFormation would.
    A reference to a resource becomes `<Logical>` (`<Logical.Attr>` for GetAtt): what matters here is
    which resource a grant names, not its physical name."""

    def __init__(self, template: dict, overrides: dict[str, str]):
        self.t = template
        self.params: dict[str, object] = {}
        for name, p in template["Parameters"].items():
            value = overrides.get(name, p.get("Default"))
            if value is None:
                raise AssertionError(f"parameter {name} has no value")
            value = str(value)
            self.params[name] = value.split(",") if p["Type"] == "CommaDelimitedList" else value
        unknown = set(overrides) - set(self.params)
        if unknown:
            raise AssertionError(f"not parameters of the template: {unknown}")
        self.conditions: dict[str, bool] = {}
        for name in template["Conditions"]:
            self.condition(name)

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.t["Conditions"][name]))
        return self.conditions[name]

    def ref(self, name: str):
        if name in self.params:
            return self.params[name]
        if name in PSEUDO:
            return PSEUDO[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.t["Resources"]:
            return f"<{name}>"
        raise AssertionError(f"Ref to unknown {name}")

    def sub(self, text: str, variables: dict) -> str:
        def one(m: re.Match) -> str:
            key = m.group(1)
            if key in variables:
                return str(variables[key])
            if "." in key:
                return f"<{key}>"
            value = self.ref(key)
            if isinstance(value, list):
                raise AssertionError(f"${{{key}}} is a list")
            return str(value)

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def value(self, node):
        if isinstance(node, list):
            return [v for v in (self.value(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return f"<{arg[0]}.{arg[1]}>" if isinstance(arg, list) else f"<{arg}>"
            if key == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                return self.sub(arg[0], {k: self.value(v) for k, v in arg[1].items()})
            if key == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            if key == "Fn::Split":
                return self.value(arg[1]).split(arg[0])
            if key == "Fn::Join":
                return arg[0].join(str(x) for x in self.value(arg[1]))
            if key == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(x) for x in arg)
            if key == "Fn::Or":
                return any(self.value(x) for x in arg)
            if key == "Fn::FindInMap":
                return self.t["Mappings"][self.value(arg[0])][self.value(arg[1])][self.value(arg[2])]
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                raise AssertionError(f"{key} is not resolved by this test")
        return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not NO_VALUE}

    def present(self, logical: str) -> bool:
        c = self.t["Resources"][logical].get("Condition")
        return c is None or self.condition(c)


def as_list(x) -> list:
    return x if isinstance(x, list) else [x]


def grants(document: dict) -> set[str]:
    """One line per (effect, action, resource, condition) of a resolved policy document."""
    out = set()
    for s in as_list(document["Statement"]):
        condition = json.dumps(s.get("Condition", {}), sort_keys=True)
        principal = json.dumps(s["Principal"], sort_keys=True) if "Principal" in s else ""
        for action in as_list(s["Action"]):
            for resource in as_list(s["Resource"]):
                out.add(" ".join(x for x in (s["Effect"], principal, action, resource, condition) if x))
    return out


def effective(template: dict, overrides: dict[str, str]) -> dict:
    r = Resolver(template, overrides)
    res = {k: v for k, v in template["Resources"].items() if r.present(k)}
    roles: dict[str, set[str]] = {k: set() for k, v in res.items() if v["Type"] == "AWS::IAM::Role"}
    for logical in roles:
        props = r.value(res[logical]["Properties"])
        for policy in props.get("Policies", []):
            roles[logical] |= grants(policy["PolicyDocument"])
        for arn in props.get("ManagedPolicyArns", []):
            managed = arn.strip("<>")
            roles[logical] |= grants(r.value(res[managed]["Properties"]["PolicyDocument"]))
    for logical, v in res.items():
        if v["Type"] == "AWS::IAM::Policy":
            props = r.value(v["Properties"])
            for role in props["Roles"]:
                roles[role.strip("<>")] |= grants(props["PolicyDocument"])
    topic_policies = {
        logical: sorted(grants(r.value(v["Properties"]["PolicyDocument"])))
        for logical, v in res.items()
        if v["Type"] == "AWS::SNS::TopicPolicy"
    }
    mappings = sorted(
        r.value(v["Properties"]["EventSourceArn"]) for v in res.values() if v["Type"] == "AWS::Lambda::EventSourceMapping"
    )
    reaper_env = r.value(res["ReaperFunction"]["Properties"]["Environment"]["Variables"])
    environments = {
        f"{function}Role": r.value(res[f"{function}Function"]["Properties"]["Environment"]["Variables"])
        for function in ("Reaper", "LockMetrics", "ForceUnlock", "SlackNotifier", "SlackInteractions")
        if f"{function}Function" in res
    }
    return {
        "environments": environments,
        "resources": sorted(res),
        "roles": {k: sorted(v) for k, v in sorted(roles.items())},
        "topic_policies": topic_policies,
        "stream_mappings": mappings,
        "LOCK_TABLES": reaper_env["LOCK_TABLES"],
        "LOCK_BUCKETS": reaper_env["LOCK_BUCKETS"],
    }


def load_template() -> dict:
    template, matches = decode(str(TEMPLATE_PATH))
    if matches:
        raise AssertionError(f"template.yaml does not parse: {matches}")
    return template


def current() -> dict:
    template = load_template()
    return {name: effective(template, overrides) for name, overrides in PARAMETER_SETS.items()}


class EffectivePermissions(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.now = current()
        cls.recorded = json.loads(SNAPSHOT.read_text())

    def test_every_parameter_set_is_recorded(self):
        self.assertEqual(sorted(self.now), sorted(self.recorded))

    def test_same_grants_resources_and_wiring_as_recorded(self):
        for name in PARAMETER_SETS:
            for part in self.recorded[name]:
                with self.subTest(parameters=name, part=part):
                    self.assertEqual(self.now[name][part], self.recorded[name][part])

    def test_the_resolver_sees_the_slots(self):
        # guards the comparison itself: a resolver that dropped every slot would compare equal to a
        # snapshot recorded by the same resolver
        five = self.now["five of each, prefix, auto-expire, Slack, Slack app, publishers"]
        self.assertEqual(len(five["stream_mappings"]), 5)
        deletes = [g for g in five["roles"]["ForceUnlockRole"] if " dynamodb:DeleteItem " in g and "table/" in g]
        self.assertEqual(len(deletes), 5, deletes)
        self.assertEqual(len(five["LOCK_BUCKETS"].split(",")), 5)
        partial = self.now["three tables, two streams, three buckets, auto-expire, local emulator"]
        self.assertEqual(len(partial["stream_mappings"]), 2)
        reaper_tflock = [g for g in partial["roles"]["ReaperRole"] if "s3:DeleteObject" in g]
        self.assertEqual(len(reaper_tflock), 3, reaper_tflock)
        none = self.now["buckets only, prefix, no lock-file search"]
        self.assertEqual(none["LOCK_BUCKETS"], "")
        self.assertFalse(any("s3:DeleteObject" in g for g in none["roles"]["ReaperRole"]))
        self.assertEqual(len([g for g in none["roles"]["ForceUnlockRole"] if "s3:DeleteObject" in g]), 2)
        prefixed = self.now["per-bucket prefixes, one bare bucket with StateKeyPrefix, auto-expire"]
        self.assertEqual(
            prefixed["LOCK_BUCKETS"],
            "acme-tfstate/network/,acme-tfstate/env:/prod/dns/,acme.gyro/legacy/,team-a-state/",
        )
        for role in ("ReaperRole", "ForceUnlockRole"):
            with self.subTest(role=role):
                reads = sorted(g for g in prefixed["roles"][role] if " s3:GetObject " in g)
                self.assertEqual(
                    reads,
                    [
                        "Allow s3:GetObject arn:aws:s3:::acme-tfstate/env:/prod/dns/* {}",
                        "Allow s3:GetObject arn:aws:s3:::acme-tfstate/network/* {}",
                        "Allow s3:GetObject arn:aws:s3:::acme.gyro/legacy/* {}",
                        "Allow s3:GetObject arn:aws:s3:::team-a-state/* {}",
                    ],
                )
                deletes = sorted(g for g in prefixed["roles"][role] if " s3:DeleteObject " in g)
                self.assertEqual(
                    deletes,
                    [
                        "Allow s3:DeleteObject arn:aws:s3:::acme-tfstate/env:/prod/dns/*.tflock {}",
                        "Allow s3:DeleteObject arn:aws:s3:::acme-tfstate/network/*.tflock {}",
                        "Allow s3:DeleteObject arn:aws:s3:::acme.gyro/legacy/*.tflock {}",
                        "Allow s3:DeleteObject arn:aws:s3:::team-a-state/*.tflock {}",
                    ],
                )
                listing = {g for g in prefixed["roles"][role] if " s3:ListBucket " in g}
                self.assertEqual(
                    listing,
                    {f"Allow s3:ListBucket arn:aws:s3:::{b} {{}}" for b in ("acme-tfstate", "acme.gyro", "team-a-state")},
                )


# Properties that give a resource its physical name. A resource without one gets a name CloudFormation
# generates from the stack name, the logical ID and a random suffix (CloudFormation User Guide, "Name
# type"), which cannot collide.
NAME_PROPERTIES = (
    "TopicName", "LogGroupName", "RoleName", "FunctionName", "TableName", "QueueName", "Name",
    "ActionName", "ConfigurationName", "DashboardName", "AlarmName", "ManagedPolicyName",
)


class StackResolver(Resolver):
    """A Resolver for one stack name, where a Ref to a resource is its physical name: the name it is
    given, else one CloudFormation generates from the stack name."""

    def __init__(self, template: dict, overrides: dict[str, str], stack: str):
        self.stack = stack
        super().__init__(template, overrides)

    def ref(self, name: str):
        if name == "AWS::StackName":
            return self.stack
        if name in self.t["Resources"]:
            props = self.t["Resources"][name].get("Properties", {})
            for key in NAME_PROPERTIES:
                if key in props:
                    return self.value(props[key])
            return f"{self.stack}-{name}-GENERATED"
        return super().ref(name)

    def value(self, node):
        # an attribute of a resource belongs to that resource's physical name
        if isinstance(node, dict) and list(node) == ["Fn::GetAtt"]:
            logical, attribute = node["Fn::GetAtt"] if isinstance(node["Fn::GetAtt"], list) else node["Fn::GetAtt"].split(".", 1)
            return f"{self.ref(logical)}.{attribute}"
        return super().value(node)


def physical_names_and_alarm_selectors(template: dict, stack: str) -> dict[str, object]:
    r = StackResolver(template, PARAMETER_SETS["five of each, prefix, auto-expire, Slack, Slack app, publishers"], stack)
    out: dict[str, object] = {}
    for logical, v in template["Resources"].items():
        if not r.present(logical):
            continue
        props = v.get("Properties", {})
        for key in NAME_PROPERTIES:
            # a name left out (`AWS::NoValue`, e.g. RoleName without RoleNamePrefix) is generated
            if key in props and (name := r.value(props[key])) is not NO_VALUE:
                out[f"{logical}.{key}"] = name
        if v["Type"] == "AWS::CloudWatch::Alarm":
            p = r.value(props)
            # what the alarm reads: a metric (namespace, name, dimensions) or a metric query
            out[f"{logical} reads"] = json.dumps(
                p.get("Metrics") or [p.get("Namespace"), p.get("MetricName"), p.get("Dimensions")], sort_keys=True
            )
    return out


class TwoStacks(unittest.TestCase):
    """Issue 17: two stacks in one account and region, deployed with the same parameters (names left
    to their defaults), share no physical name (a second stack's create would fail on it) and no
    alarm reads the other stack's metrics."""

    def test_no_physical_name_or_alarm_selector_is_shared(self):
        template = load_template()
        blue = physical_names_and_alarm_selectors(template, "lockreaper-blue")
        green = physical_names_and_alarm_selectors(template, "lockreaper-green")
        self.assertEqual(sorted(blue), sorted(green))
        self.assertGreaterEqual(len([k for k in blue if k.endswith(" reads")]), 10)
        for key in ("ApprovalTopic.TopicName", "ReaperLogGroup.LogGroupName", "ReaperFunction.FunctionName", "Dashboard.DashboardName"):
            self.assertIn(key, blue)
        shared = {key: blue[key] for key in blue if blue[key] == green[key]}
        self.maxDiff = None
        self.assertEqual(shared, {})

    def test_the_alarms_read_the_stacks_own_namespace(self):
        template = load_template()
        selectors = physical_names_and_alarm_selectors(template, "lockreaper-blue")
        self.assertIn('SCHEMA(\\"LockReaper/lockreaper-blue\\", LockTable)', selectors["OldestLockAgeAlarm reads"])
        self.assertIn('"LockReaper/lockreaper-blue"', selectors["ReaperSilentAlarm reads"])


if __name__ == "__main__":
    if sys.argv[1:] == ["--record"]:
        SNAPSHOT.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
        print(f"recorded {SNAPSHOT.relative_to(ROOT)}")
    else:
        unittest.main()
