#!/usr/bin/env python3
"""Checks of template.yaml that cfn-lint cannot make: the contract with the Rust code and the rules
this project sets itself. Plain unittest; run with the deploy venv's Python (it has cfn-lint, whose
decoder reads the CloudFormation YAML tags):

    infra/.venv-deploy/bin/python -m unittest infra/sam/test_template.py

What is checked:
- the environment variables: every variable a function's Rust code reads is set by the template or
  deliberately left unset (listed below), and every variable the template sets is read somewhere;
- the template's comment block lists every variable it sets;
- the chat buttons (Approve unlock, Deny, Snooze 2h): the form working deployments use
  (NotificationType Custom, `event.metadata.additionalContext.<key>`), the API's limits, and that
  every variable path resolves in an alert the reaper's code rendered (infra/sam/fixtures/) and the
  pressed command publishes what force-unlock expects;
- deletes: only force-unlock (and the reaper under AutoExpireOn) may delete; S3 deletes only
  `*.tflock`; wildcard resources only where AWS allows nothing else;
- ledger writes: each role may write exactly the ledger item kinds (partition keys, through
  `dynamodb:LeadingKeys`) and use exactly the write actions its Rust code does, derived from the
  sources; audit records only appended, only by force-unlock and the auto-expiring reaper;
  force-unlock lists the state buckets as the reaper does (a missing object is 404, not 403);
- the slot lists: each list parameter admits at most SLOTS entries, and there are exactly SLOTS slots
  (SLOTS from infra/sam/template_gen.py, which writes them);
- the stream mappings' settings, the ledger table's schema, the ExpireAfter mapping, defaults;
- the alarms: each on the right metric, Throttles on every function, IteratorAge on the function the
  stream mappings feed (its threshold mapping, under the streams' 24 h), every alarm to the alert
  topic and with a runbook row in infra/sam/README.md, the dashboard's throttles and stream lag;
- samconfig.toml.example: its overrides, and every commented "# e.g." example used in place of its
  entry, are TOML, parse as SAM CLI parses them, pass the parameters' constraints and the template's
  Rules, and a LockPolicy passes the rules of the reaper's LOCK_POLICY parser.
"""

from __future__ import annotations

import json
import re
import sys
import unittest
from pathlib import Path

from cfnlint.decode import decode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chatbot_buttons  # noqa: E402  (infra/sam/chatbot_buttons.py, shared with deploy_local.py)
from template_gen import SLOTS  # noqa: E402  (the number of slots template.yaml is generated with)
from test_guardrails import VPC_ENI_ACTIONS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

# Read by the code but deliberately not set by the template (see its comment block).
UNSET_ON_PURPOSE = {
    "S3_FORCE_PATH_STYLE",  # emulators only; false (the default) in AWS
    "AWS_LAMBDA_LOG_LEVEL",  # set by Lambda from LoggingConfig.ApplicationLogLevel
    "RUST_LOG",  # fallback when AWS_LAMBDA_LOG_LEVEL is absent
}
# The functions every stack has.
FUNCTIONS = {
    "ReaperFunction": "reaper",
    "LockMetricsFunction": "lock-metrics",
    "ForceUnlockFunction": "force-unlock",
}
# The Slack app mode's functions (Condition HasSlackApp).
SLACK_APP_FUNCTIONS = {
    "SlackNotifierFunction": "slack-notifier",
    "SlackInteractionsFunction": "slack-interactions",
}
ALL_FUNCTIONS = {**FUNCTIONS, **SLACK_APP_FUNCTIONS}
# Variables of the deploy contract (issue 13) the template sets before the code that reads them is
# merged from a parallel branch: (crate, variable). Each entry fails the test once the crate reads
# the variable (then delete the entry), so the list cannot outlive its reason.
# The Slack app mode on (test_every_rule_passes_and_fails_as_documented, test_effective_permissions).
SLACK_APP = {
    "SlackAppChannelId": "C0123ABCDEF",
    "SlackBotTokenSecretArn": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:lockreaper/slack-bot-token-AbCdEf",
    "SlackSigningSecretArn": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:lockreaper/slack-signing-secret-GhIjKl",
}


def sam_transform(template: dict) -> dict:
    """SAM's own transform of the template (the SAM translator `sam build`/`sam deploy` use), for what
    it writes from a function's properties (FunctionUrlConfig: the URL and its permissions)."""
    import os

    from samtranslator.translator.transform import transform

    doc = json.loads(json.dumps(template, default=str))
    for r in doc["Resources"].values():
        if r["Type"] == "AWS::Serverless::Function":
            # `sam package` puts the built code in S3; the translator accepts only that form
            r["Properties"]["CodeUri"] = "s3://lockreaper-artifacts/" + r["Properties"]["CodeUri"]

    class NoManagedPolicies:  # the template names no SAM policy templates or managed policy names
        def load(self):
            return {}

    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    return transform(doc, {}, NoManagedPolicies())


def load_template() -> dict:
    template, matches = decode(str(TEMPLATE_PATH))
    if matches:
        raise AssertionError(f"template.yaml does not parse: {matches}")
    return template


def rust_sources(*dirs: str) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        files += [p for p in (ROOT / d).rglob("*.rs") if not p.name.endswith("_tests.rs")]
    return files


CONST = re.compile(r'const\s+([A-Z][A-Z0-9_]*)\s*:\s*&(?:\'static\s+)?str\s*=\s*"([A-Z][A-Z0-9_]{2,})"')
# A read is `Env`'s methods, `std::env::var`, or a crate's own helper given the `Env` first
# (`duration_var(env, NAME)`, slack-interactions' `arn(&mut env, Self::NAME, …)`).
READ = re.compile(
    r'(?:\.required|\.parsed|\.list|\.get|env::var|duration_var\(\s*env,|\b[a-z_]+\(\s*&mut\s+env\s*,)\s*\(?\s*'
    r'(?:"([A-Z][A-Z0-9_]{2,})"|(?:Self::|[A-Za-z_]+::)?([A-Z][A-Z0-9_]{2,})\b)'
)


# `Env::ledger_table()` / `Env::required_ledger_table()` (shared/core/src/config.rs): the one reader of
# LEDGER_TABLE, which every function calls.
LEDGER_TABLE_READ = re.compile(r"\.(?:required_)?ledger_table\(\s*\)")
# `Env::unlocks_paused()` (shared/core/src/config.rs): the one reader of the kill switch.
UNLOCKS_PAUSED_READ = re.compile(r"\.unlocks_paused\(\s*\)")


def env_reads(files: list[Path]) -> set[str]:
    """Environment variable names the code reads through `Env` or `std::env::var`."""
    consts: dict[str, str] = {}
    texts = []
    for f in files:
        text = f.read_text()
        texts.append(text)
        consts.update(CONST.findall(text))
    names: set[str] = set()
    for text in texts:
        if LEDGER_TABLE_READ.search(text):
            names.add("LEDGER_TABLE")
        if UNLOCKS_PAUSED_READ.search(text):
            names.add("UNLOCKS_PAUSED")
        for literal, const in READ.findall(text):
            if literal:
                names.add(literal)
            elif const in consts:
                names.add(consts[const])
    return names


def strings_in(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for n in node for s in strings_in(n)]
    if isinstance(node, dict):
        return [s for n in node.values() for s in strings_in(n)]
    return []


def statements(policy_document: dict) -> list[dict]:
    """Policy statements, with `Fn::If [cond, statement, NoValue]` unwrapped (cond kept)."""
    out = []
    for s in policy_document["Statement"]:
        if "Fn::If" in s:
            cond, yes, _ = s["Fn::If"]
            out.append({**yes, "_if": cond})
        else:
            out.append(s)
    return out


DURATION = re.compile(r"(?:[0-9]+[smhd])+")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> int:
    """A duration as shared/core's `parse_duration` reads it (`90m`, `1h30m`); ValueError otherwise."""
    text = text.strip()
    if not DURATION.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration such as 90m, 4h, 1d or 1h30m")
    return sum(int(n) * DURATION_UNITS[u] for n, u in re.findall(r"([0-9]+)([smhd])", text))


def lock_policy_entry_fields() -> dict[str, str]:
    """`PolicyEntry`'s fields and their JSON types, read from the Rust struct the reaper parses
    LOCK_POLICY into (shared/core/src/policy/env.rs), so a new or renamed field reaches this check."""
    policy_rs = (ROOT / "shared/core/src/policy/env.rs").read_text()
    m = re.search(r"#\[serde\(deny_unknown_fields\)\]\s*struct PolicyEntry \{(.*?)\n\}", policy_rs, re.S)
    if not m:
        raise AssertionError("policy.rs: `struct PolicyEntry` with deny_unknown_fields not found")
    json_types = {"String": "string", "Option<String>": "duration", "Option<bool>": "boolean"}
    fields = {name: json_types[ty] for name, ty in re.findall(r"^\s*(\w+): ([\w<>]+),", m.group(1), re.M)}
    if fields.get("path") != "string":
        raise AssertionError(f"policy.rs: PolicyEntry fields changed: {fields}")
    return fields


def lock_policy_problems(text: str, warn_after: str, expire_after: str) -> list[str]:
    """What the reaper's LOCK_POLICY parser (shared/core/src/policy/env.rs, `parse_lock_policy`) refuses
    in `text`, with the stack's WarnAfter/ExpireAfter as the globals. Empty means accepted."""
    if text == "":
        return []  # unset: no overrides
    fields = lock_policy_entry_fields()
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as e:
        return [f"not valid JSON: {e}"]
    if not isinstance(entries, list):
        return [f"a JSON {type(entries).__name__}, not an array"]
    problems = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"entry {i} is not an object")
            continue
        unknown = set(entry) - set(fields)
        if unknown:
            problems.append(f"entry {i}: unknown fields {sorted(unknown)}")
        if not isinstance(entry.get("path"), str) or not entry["path"].strip():
            problems.append(f"entry {i}: `path` missing or empty")
        optional = [f for f in fields if f != "path"]
        if not any(entry.get(f) is not None for f in optional):
            problems.append(f"entry {i} sets none of {optional}")
        durations = {}
        for field, kind in fields.items():
            value = entry.get(field)
            if value is None or field == "path":
                continue
            if kind == "boolean" and not isinstance(value, bool):
                problems.append(f"entry {i}: {field} is not a boolean")
            elif kind == "duration":
                try:
                    durations[field] = duration_seconds(value) if isinstance(value, str) else None
                except ValueError as e:
                    durations[field] = None
                    problems.append(f"entry {i}: {field}: {e}")
                    continue
                if not durations[field]:
                    problems.append(f"entry {i}: {field} {value!r} is not a duration longer than 0s")
        if durations and all(durations.values()):
            warn = durations.get("warn_after") or duration_seconds(warn_after)
            expire = durations.get("expire_after") or duration_seconds(expire_after)
            if expire < warn:
                problems.append(f"entry {i}: expire_after is shorter than warn_after")
    return problems


def rule_value(node, values: dict[str, str], params: dict):
    """A CloudFormation Rules expression, evaluated on parameter values (the `Rules` functions that
    need no AWS call). KeyError for a function this evaluator does not know."""
    if isinstance(node, (str, int, float, bool)):
        return str(node).lower() if isinstance(node, bool) else str(node)
    if isinstance(node, list):
        return [rule_value(n, values, params) for n in node]
    ((fn, args),) = node.items()
    if fn == "Ref":
        value = values.get(args, str(params[args].get("Default", "")))
        return value.split(",") if params[args]["Type"].startswith("CommaDelimitedList") else value
    args = rule_value(args, values, params)
    return {
        "Fn::And": lambda a: all(x == "true" or x is True for x in a),
        "Fn::Or": lambda a: any(x == "true" or x is True for x in a),
        "Fn::Not": lambda a: not (a[0] == "true" or a[0] is True),
        "Fn::Equals": lambda a: a[0] == a[1],
        "Fn::Contains": lambda a: a[1] in a[0],
        "Fn::EachMemberEquals": lambda a: all(x == a[1] for x in a[0]),
        "Fn::EachMemberIn": lambda a: all(x in a[1] for x in a[0]),
    }[fn](args)


def samconfig_overrides(text: str) -> dict[str, str]:
    """parameter_overrides of a samconfig.toml text as SAM CLI reads them (TOML, then SAM's own
    `Key=Value` parser, which splits at spaces and unquotes)."""
    import tomllib

    from samcli.cli.types import CfnParameterOverridesType

    deploy = tomllib.loads(text)["default"]["deploy"]["parameters"]
    return CfnParameterOverridesType().convert(deploy["parameter_overrides"], None, None)


# ---------------------------------------------------------------- ledger writes, from the Rust code
#
# Which ledger item kinds (partition keys) each function writes, derived from the sources so that
# the template's `dynamodb:LeadingKeys` grants cannot drift from the code:
# 1. the partition keys: the `*pk` builder functions of the ledger schema (shared/aws/src/ledger_schema.rs)
#    and of each ledger module (`fn lock_pk(..) -> String { format!("lock#{..}") }`), the schema's exact
#    keys (`pub const UNPARSEABLE_PK: &str = "unparseable";`) and literal keys
#    (`"pk", S(format!("audit#…"))`, `"pk", S("unparseable".to_owned())`);
# 2. per method: the DynamoDB write calls it makes (PutItem, UpdateItem, DeleteItem, BatchWriteItem,
#    TransactWriteItems) itself, through the module's own helpers (`self.put_if(..)`,
#    `self.decide(..)`) or through a field of another ledger type (the `Unlocker`'s
#    `self.ledger.record_forced_release_for_audit(..)`), and the keys it names; a method writes the
#    keys it names when it writes;
# 3. per function crate: which methods it calls on its `Ledger`, `Proposals`, `AlertStates` and
#    `Unlocker` fields.
# Keys are IAM patterns: a prefix `lock#` becomes `lock#*`, an exact key stays as it is.

LEDGER_MODULES = {
    "Ledger": "shared/aws/src/ledger.rs",
    "Proposals": "shared/aws/src/proposals.rs",
    "AlertStates": "shared/aws/src/alert_state.rs",
    "Unlocker": "shared/aws/src/unlock.rs",
    "SlackThreads": "shared/aws/src/slack_threads.rs",
}
DYNAMODB_WRITES = {
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    # IAM has no TransactWriteItems action: "Permissions for Put, Update, Delete, and Get actions are
    # governed by the permissions used for the underlying PutItem, UpdateItem, DeleteItem, and
    # GetItem operations" (DynamoDB Developer Guide, "Using IAM with DynamoDB transactions").
    # lockreaper's transactions hold Put actions only (test_transactions_hold_only_puts).
    "transact_write_items": "dynamodb:PutItem",
}
LEDGER_SCHEMA = "shared/aws/src/ledger_schema.rs"
KEY_CONST = re.compile(r'pub\s+const\s+(\w+_PK)\s*:\s*&str\s*=\s*"([a-z][a-z-]*)"\s*;')
WRITE_CALL = re.compile(r"\.\s*(" + "|".join(DYNAMODB_WRITES) + r")\s*\(\s*\)")
PK_BUILDER = re.compile(r'(pub\s+)?fn\s+(\w*pk)\s*\([^)]*\)\s*->\s*String\s*\{\s*format!\(\s*"([a-z]+#)')
LITERAL_PK = re.compile(
    r'"pk"\s*,\s*AttributeValue::S\(\s*(?:format!\(\s*"([a-z]+#)|"([a-z][a-z-]*)"\.to_owned\(\))'
)
FN = re.compile(r"\bfn\s+(\w+)")
SELF_CALL = re.compile(r"\b(?:self|Self)\s*(?:\.|::)\s*(\w+)\s*\(")


def rust_functions(text: str) -> dict[str, str]:
    """Each `fn` of a module (tests excluded) with its text up to the next `fn`."""
    text = text.split("#[cfg(test)]")[0]
    starts = list(FN.finditer(text))
    return {m.group(1): text[m.start() : (starts[i + 1].start() if i + 1 < len(starts) else len(text))] for i, m in enumerate(starts)}


def ledger_method_writes() -> dict[str, dict[str, tuple[set[str], set[str]]]]:
    """{type: {method: (key patterns written, DynamoDB write actions)}} of the ledger modules."""
    texts = {ty: (ROOT / path).read_text() for ty, path in LEDGER_MODULES.items()}
    schema = (ROOT / LEDGER_SCHEMA).read_text().split("#[cfg(test)]")[0]
    public_builders = {name: prefix + "*" for _, name, prefix in PK_BUILDER.findall(schema)}
    key_consts = dict(KEY_CONST.findall(schema))
    for text in texts.values():
        for public, name, prefix in PK_BUILDER.findall(text):
            if public:
                public_builders[name] = prefix + "*"
    named: dict[tuple[str, str], set[str]] = {}
    ops: dict[tuple[str, str], set[str]] = {}
    calls: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for ty, text in texts.items():
        builders = dict(public_builders)
        builders.update({name: prefix + "*" for public, name, prefix in PK_BUILDER.findall(text) if not public})
        fns = rust_functions(text)
        fields = {f: fty for f, fty in re.findall(r"\b(\w+)\s*:\s*(" + "|".join(LEDGER_MODULES) + r")\s*,", text) if fty != ty}
        for name, body in fns.items():
            keys = {p for b, p in builders.items() if b != name and re.search(rf"\b{b}\s*\(", body)}
            keys |= {(prefix + "*") if prefix else exact for prefix, exact in LITERAL_PK.findall(body)}
            keys |= {value for const, value in key_consts.items() if re.search(rf"\b{const}\b", body)}
            named[(ty, name)] = keys
            ops[(ty, name)] = {DYNAMODB_WRITES[c] for c in WRITE_CALL.findall(body)}
            own = {(ty, c) for c in SELF_CALL.findall(body) if c in fns and c != name}
            through = {(fty, m) for f, fty in fields.items() for m in re.findall(rf"\bself\s*\.\s*{f}\s*\.\s*(\w+)\s*\(", body)}
            calls[(ty, name)] = own | through
    writes = {k: (named[k] if ops[k] else set(), set(ops[k])) for k in named}
    changed = True
    while changed:  # through the modules' own helpers and other ledger types' methods, to a fixed point
        changed = False
        for k in writes:
            keys, actions = writes[k]
            for callee in calls[k]:
                if callee not in writes:
                    continue
                callee_keys, callee_actions = writes[callee]
                new_keys = keys | callee_keys | (named[k] if callee_actions else set())
                new_actions = actions | callee_actions
                if (new_keys, new_actions) != (keys, actions):
                    keys, actions, changed = new_keys, new_actions, True
            writes[k] = (keys, actions)
    out: dict[str, dict[str, tuple[set[str], set[str]]]] = {ty: {} for ty in LEDGER_MODULES}
    for (ty, name), w in writes.items():
        if w[1]:
            out[ty][name] = w
    return out


def crate_ledger_writes(crate_dir: str) -> dict[str, tuple[set[str], set[str]]]:
    """{ledger type: (key patterns, write actions)} a function crate writes through its fields."""
    methods = ledger_method_writes()
    text = "\n".join(p.read_text() for p in rust_sources(crate_dir))
    fields = re.findall(r"\b(\w+)\s*:\s*&?\s*(" + "|".join(LEDGER_MODULES) + r")\b", text)
    out: dict[str, tuple[set[str], set[str]]] = {}
    for field, ty in set(fields):
        for method in re.findall(rf"\b{field}\s*\.\s*(\w+)\s*\(", text):
            if method in methods[ty]:
                keys, actions = out.setdefault(ty, (set(), set()))
                keys |= methods[ty][method][0]
                actions |= methods[ty][method][1]
    return out

class Template(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = load_template()
        cls.res = cls.t["Resources"]
        cls.params = cls.t["Parameters"]

    # ---------------------------------------------------------------- environment contract

    def env_of(self, logical: str) -> dict:
        return self.res[logical]["Properties"]["Environment"]["Variables"]

    def test_every_variable_the_code_reads_is_set_or_unset_on_purpose(self):
        shared = ["shared/core/src", "shared/aws/src"]
        for logical, crate in ALL_FUNCTIONS.items():
            with self.subTest(function=crate):
                own = env_reads(rust_sources(f"functions/{crate}/src"))
                missing = own - set(self.env_of(logical)) - UNSET_ON_PURPOSE
                self.assertFalse(missing, f"{crate} reads {sorted(missing)}, which template.yaml does not set")
        # Shared configuration parsers: LockSources and StaleLockPolicy are the reaper's.
        shared_reads = env_reads(rust_sources(*shared))
        reaper = set(self.env_of("ReaperFunction"))
        self.assertFalse(shared_reads - reaper - UNSET_ON_PURPOSE, "shared code reads variables the reaper lacks")
        self.assertGreaterEqual(shared_reads, {"LOCK_TABLES", "LOCK_BUCKETS", "WARN_AFTER", "EXPIRE_AFTER", "AUTO_EXPIRE", "REMIND_EVERY", "LOCK_POLICY"})

    def test_every_variable_the_template_sets_is_read(self):
        everything = env_reads(rust_sources("functions", "shared/core/src", "shared/aws/src"))
        for logical, crate in ALL_FUNCTIONS.items():
            with self.subTest(function=crate):
                own = env_reads(rust_sources(f"functions/{crate}/src"))
                extra = set(self.env_of(logical)) - (own | (everything if crate == "reaper" else set()))
                self.assertFalse(extra, f"template sets {sorted(extra)} for {crate}, which its code never reads")

    def test_slack_app_mode_environment_is_the_deploy_contract(self):
        # Issue 13's contract (fixed by the lead), independent of the code: what each function is
        # given, and force-unlock's attestation key only with the Slack app mode.
        ref = lambda name: {"Ref": name}  # noqa: E731
        self.assertEqual(
            self.env_of("SlackNotifierFunction"),
            {
                "SLACK_BOT_TOKEN_SECRET_ARN": ref("SlackBotTokenSecretArn"),
                "SLACK_CHANNEL_ID": ref("SlackAppChannelId"),
                "SLACK_API_BASE_URL": ref("SlackApiBaseUrl"),
                "LEDGER_TABLE": ref("LedgerTable"),
            },
        )
        self.assertEqual(
            self.env_of("SlackInteractionsFunction"),
            {
                "SLACK_SIGNING_SECRET_ARN": ref("SlackSigningSecretArn"),
                "SLACK_ATTESTATION_SECRET_ARN": {"Fn::GetAtt": ["SlackAttestationSecret", "Id"]},
                "APPROVAL_TOPIC_ARN": ref("ApprovalTopic"),
                "SLACK_BOT_TOKEN_SECRET_ARN": ref("SlackBotTokenSecretArn"),
                "SLACK_API_BASE_URL": ref("SlackApiBaseUrl"),
                "APPROVER_ALLOW_LIST": ref("ApproverAllowList"),
            },
        )
        self.assertEqual(self.env_of("SlackInteractionsFunction")["APPROVER_ALLOW_LIST"], self.env_of("ForceUnlockFunction")["APPROVER_ALLOW_LIST"])
        self.assertEqual(
            self.env_of("ForceUnlockFunction")["SLACK_ATTESTATION_SECRET_ARN"],
            {"Fn::If": ["HasSlackApp", {"Fn::GetAtt": ["SlackAttestationSecret", "Id"]}, ref("AWS::NoValue")]},
        )
        self.assertEqual(self.params["SlackApiBaseUrl"]["Default"], "https://slack.com")
        secret = self.res["SlackAttestationSecret"]
        self.assertEqual((secret["Type"], secret["Condition"]), ("AWS::SecretsManager::Secret", "HasSlackApp"))
        self.assertEqual(secret["Properties"]["GenerateSecretString"], self.res["SigningSecret"]["Properties"]["GenerateSecretString"])
        for logical, r in self.res.items():
            if logical.startswith("Slack") and logical != "SlackChannel":
                with self.subTest(resource=logical):
                    self.assertEqual(r.get("Condition"), "HasSlackApp")
        for output in ("SlackInteractionsUrl", "SlackNotifierRoleArn", "SlackInteractionsRoleArn"):
            self.assertEqual(self.t["Outputs"][output]["Condition"], "HasSlackApp")
        self.assertEqual(self.t["Outputs"]["SlackInteractionsUrl"]["Value"], {"Fn::GetAtt": ["SlackInteractionsFunctionUrl", "FunctionUrl"]})

    def test_slack_notifier_is_subscribed_to_the_alert_topic_with_a_scoped_permission(self):
        sub = self.res["SlackNotifierSubscription"]["Properties"]
        self.assertEqual(sub, {"TopicArn": {"Ref": "AlertTopic"}, "Protocol": "lambda", "Endpoint": {"Fn::GetAtt": ["SlackNotifierFunction", "Arn"]}})
        perm = self.res["SlackNotifierPermission"]
        self.assertEqual(perm["Type"], "AWS::Lambda::Permission")
        self.assertEqual(
            perm["Properties"],
            {"FunctionName": {"Ref": "SlackNotifierFunction"}, "Action": "lambda:InvokeFunction", "Principal": "sns.amazonaws.com", "SourceArn": {"Ref": "AlertTopic"}},
        )
        # an asynchronous path: bounded retries, then an alarmed queue (as force-unlock's approvals)
        invoke = self.res["SlackNotifierFunction"]["Properties"]["EventInvokeConfig"]
        self.assertEqual(invoke["DestinationConfig"]["OnFailure"], {"Type": "SQS", "Destination": {"Fn::GetAtt": ["SlackNotifierFailureQueue", "Arn"]}})
        self.assertLessEqual(invoke["MaximumRetryAttempts"], 2)
        self.assertIn(
            {"Sid": "FailedDeliveries", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["SlackNotifierFailureQueue", "Arn"]}},
            self.role_statements()["SlackNotifierRole"],
        )

    def test_slack_interactions_function_url_is_public_with_the_documented_permissions(self):
        # "Control access to Lambda function URLs" (Lambda Developer Guide,
        # docs.aws.amazon.com/lambda/latest/dg/urls-auth.html): with AuthType NONE, "your function's
        # resource-based policy is always in effect and must grant public access before your
        # function URL can receive requests" - lambda:InvokeFunctionUrl to Principal "*" with
        # lambda:FunctionUrlAuthType NONE - and "Starting in October 2025, new function URLs will
        # require both lambda:InvokeFunctionUrl and lambda:InvokeFunction permissions". The template
        # says FunctionUrlConfig; SAM writes the URL and both permissions, so SAM's own transform
        # (the one `sam build`/`sam deploy` run) is run here and its output checked.
        fn = self.res["SlackInteractionsFunction"]["Properties"]
        self.assertEqual(fn["FunctionUrlConfig"], {"AuthType": "NONE", "InvokeMode": "BUFFERED"})
        out = sam_transform(self.t)["Resources"]
        urls = {k: v for k, v in out.items() if v["Type"] == "AWS::Lambda::Url"}
        self.assertEqual(set(urls), {"SlackInteractionsFunctionUrl"})  # the name SlackInteractionsUrl's GetAtt uses
        self.assertEqual(urls["SlackInteractionsFunctionUrl"]["Properties"]["AuthType"], "NONE")
        self.assertEqual(urls["SlackInteractionsFunctionUrl"]["Condition"], "HasSlackApp")
        public = {
            k: v["Properties"]
            for k, v in out.items()
            if v["Type"] == "AWS::Lambda::Permission" and v["Properties"].get("Principal") == "*"
        }
        for props in public.values():
            self.assertEqual(props["FunctionName"], {"Ref": "SlackInteractionsFunction"})
        by_action = {p["Action"]: p for p in public.values()}
        self.assertEqual(set(by_action), {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"})
        self.assertEqual(by_action["lambda:InvokeFunctionUrl"]["FunctionUrlAuthType"], "NONE")
        # the public InvokeFunction only through the URL, never a direct Invoke by anyone
        self.assertIs(by_action["lambda:InvokeFunction"]["InvokedViaFunctionUrl"], True)

    def test_slack_interactions_reads_the_function_url_payload_format_2_0(self):
        # "Request and response payloads" (docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html
        # #urls-payloads): a function URL's request follows the API Gateway HTTP API payload format
        # version 2.0 - `version: "2.0"`, `headers` with lower-case names, `body` (a string),
        # `isBase64Encoded`, `requestContext.http.method`; the response is `statusCode`, `headers`,
        # `body`. The endpoint's code must read exactly those fields, and its emulator test must
        # drive it with a 2.0 event.
        code = (ROOT / "functions/slack-interactions/src/lib.rs").read_text()
        for field in ('request["headers"]', 'request["body"]', 'request["isBase64Encoded"]', 'request["requestContext"]["http"]["method"]', '"statusCode"'):
            self.assertIn(field, code)
        for v1_only in ("httpMethod", "multiValueHeaders"):  # payload format 1.0 names
            self.assertNotIn(v1_only, code)
        self.assertIn('"version": "2.0"', (ROOT / "functions/slack-interactions/tests/interactions.rs").read_text())

    def test_slack_app_names_fit_the_name_limits(self):
        # A Lambda function name and an IAM role name are at most 64 characters; the stack name is
        # at most 51 (ReaperLogGroup's comment) and RoleNamePrefix at most 50 (its AllowedPattern).
        stack, prefix = "s" * 51, "p" * 50
        for logical in SLACK_APP_FUNCTIONS:
            name = self.res[logical]["Properties"]["FunctionName"]["Fn::Sub"].replace("${AWS::StackName}", stack)
            self.assertLessEqual(len(name), 64, logical)
        for logical in ("SlackNotifierRole", "SlackInteractionsRole"):
            name = self.res[logical]["Properties"]["RoleName"]["Fn::If"][1]["Fn::Sub"].replace("${RoleNamePrefix}", prefix)
            self.assertLessEqual(len(name), 64, logical)

    def test_comment_block_lists_every_variable(self):
        text = TEMPLATE_PATH.read_text()
        header = text.split("Metadata:")[0]
        for logical in ALL_FUNCTIONS:
            for name in self.env_of(logical):
                self.assertRegex(header, rf"#\s+{name}\s", f"{name} missing from the comment block")
        for name in UNSET_ON_PURPOSE:
            self.assertIn(name, header)

    # ---------------------------------------------------------------- functions

    def test_functions(self):
        globals_ = self.t.get("Globals", {}).get("Function", {})
        self.assertEqual(globals_["Runtime"], "provided.al2023")
        self.assertEqual(globals_["Handler"], "bootstrap")
        self.assertEqual(globals_["Architectures"], [{"Ref": "Architecture"}])
        self.assertEqual(self.params["Architecture"]["Default"], "arm64")
        self.assertEqual(sorted(self.params["Architecture"]["AllowedValues"]), ["arm64", "x86_64"])
        for logical, crate in ALL_FUNCTIONS.items():
            with self.subTest(function=crate):
                fn = self.res[logical]
                self.assertEqual(fn.get("Condition"), "HasSlackApp" if logical in SLACK_APP_FUNCTIONS else None)
                self.assertEqual(fn["Metadata"]["BuildMethod"], "rust-cargolambda")
                self.assertEqual(fn["Metadata"]["BuildProperties"]["Binary"], crate)
                props = fn["Properties"]
                self.assertEqual(props["CodeUri"], f"functions/{crate}")
                self.assertEqual(props["LoggingConfig"]["LogFormat"], "JSON")
                self.assertIn("Timeout", props)
                self.assertIn("MemorySize", props)
                group = self.res[props["LoggingConfig"]["LogGroup"]["Ref"]]
                self.assertEqual(group["Properties"]["RetentionInDays"], {"Ref": "LogRetentionDays"})

    def test_defaults(self):
        self.assertEqual(self.params["AutoExpire"]["Default"], "false")
        self.assertEqual(self.params["DryRun"]["Default"], "false")
        self.assertEqual(self.params["ScheduleExpression"]["Default"], "rate(5 minutes)")

    # ---------------------------------------------------------------- chat

    # The chat buttons. Evidence for the form (the API reference does not spell the variable path
    # syntax out): public CDK and Terraform projects that attach custom actions to custom
    # notifications use `NotificationType: Custom` with `event.metadata.additionalContext.<key>`
    # variables, e.g. a CDK approve/reject pair (CfnCustomAction "ApproveEcsDeployment" /
    # "RejectEcsDeployment", commandText `aws s3api put-object --bucket $bucketName --key
    # "$revisionId/approved"`) and a Terraform pair (awscc_chatbot_custom_action "approve" /
    # "rollback", variables A and P/R: one-letter names to save CommandText characters, i.e. the
    # 100-character limit counts the text as written). Limits: API reference,
    # docs.aws.amazon.com/chatbot/latest/APIReference/API_CustomActionDefinition.html (CommandText
    # 1..100), API_CustomActionAttachment.html (ButtonText 1..50, Variables ≤ 5, names
    # [A-Za-z0-9-_]+, paths [\x21-\x7F]{,1024}, Criteria 1..5), API_CustomActionAttachmentCriteria.html.

    BUTTONS = {  # logical id → (Rust constant for its ButtonText, action force-unlock must see)
        "ApproveUnlockAction": ("APPROVE_BUTTON", "approve"),
        "DenyUnlockAction": ("DENY_BUTTON", "deny"),
        "SnoozeUnlockAction": ("SNOOZE_BUTTON", "snooze"),
    }

    @staticmethod
    def fixture(name: str) -> dict:
        # Rendered by the reaper's own code (lock_alert → sns_message, the `https` key Chatbot reads);
        # shared/core's chat_fixture_alerts_are_current fails when they are not current.
        return json.loads((ROOT / "infra/sam/fixtures" / name).read_text())

    def alert_rs_const(self, name: str) -> str:
        alert_rs = (ROOT / "shared/core/src/messages/chatbot.rs").read_text()
        return re.search(rf'pub const {name}: &str = "([^"]+)";', alert_rs).group(1)

    def test_chat_buttons_have_the_working_form(self):
        actions = chatbot_buttons.custom_actions(self.t)
        self.assertEqual(set(actions), set(self.BUTTONS))
        token_key = self.alert_rs_const("APPROVAL_TOKEN_KEY")
        topic_key = self.alert_rs_const("APPROVAL_TOPIC_KEY")
        for logical, (button_const, _) in self.BUTTONS.items():
            with self.subTest(action=logical):
                self.assertEqual(self.res[logical].get("Condition"), "HasSlack")
                (attachment,) = actions[logical]["Attachments"]
                self.assertEqual(attachment["NotificationType"], "Custom")
                self.assertEqual(attachment["ButtonText"], self.alert_rs_const(button_const))
                self.assertEqual(
                    attachment["Variables"],
                    {
                        "token": f"event.metadata.additionalContext.{token_key}",
                        "topic": f"event.metadata.additionalContext.{topic_key}",
                    },
                )
                self.assertEqual(
                    attachment["Criteria"],
                    [
                        {"Operator": "HAS_VALUE", "VariableName": "token"},
                        {"Operator": "EQUALS", "VariableName": "topic", "Value": {"Ref": "ApprovalTopic"}},
                    ],
                )
        channel = self.res["SlackChannel"]["Properties"]
        self.assertEqual(
            channel["CustomizationResourceArns"],
            [{"Fn::GetAtt": [logical, "CustomActionArn"]} for logical in self.BUTTONS],
        )
        # The shell form of the approve button's command, for people without chat.
        approve = actions["ApproveUnlockAction"]["Definition"]["CommandText"]
        self.assertEqual(self.t["Outputs"]["ChatApproveCommand"]["Value"]["Fn::Sub"], approve.replace("$topic", "${ApprovalTopic}"))

    def test_chat_buttons_are_within_the_api_limits(self):
        for logical, action in chatbot_buttons.custom_actions(self.t).items():
            with self.subTest(action=logical):
                self.assertLessEqual(len(action["ActionName"]["Fn::Sub"].replace("${AWS::StackName}", "x" * 51)), 64)
                command = action["Definition"]["CommandText"]
                # A plain string: no !Sub, so its length is the same in every partition and region.
                self.assertIsInstance(command, str)
                self.assertLessEqual(len(command), chatbot_buttons.COMMAND_TEXT_MAX, command)
                for attachment in action["Attachments"]:
                    self.assertLessEqual(len(attachment["ButtonText"]), chatbot_buttons.BUTTON_TEXT_MAX)
                    variables, criteria = attachment["Variables"], attachment["Criteria"]
                    self.assertLessEqual(len(variables), chatbot_buttons.VARIABLES_MAX)
                    self.assertTrue(1 <= len(criteria) <= chatbot_buttons.CRITERIA_MAX)
                    for name, path in variables.items():
                        self.assertRegex(name, chatbot_buttons.VARIABLE_NAME)
                        self.assertRegex(path, chatbot_buttons.VARIABLE_PATH)
                    for c in criteria:
                        self.assertIn(c["Operator"], chatbot_buttons.OPERATORS)
                        self.assertIn(c["VariableName"], variables)
                    # Every variable the command uses is declared and guarded by a criterion, so
                    # a notification without it never shows a button that would run `$token`.
                    used = set(chatbot_buttons.COMMAND_VARIABLE.findall(command))
                    self.assertEqual(used, set(variables))
                    self.assertEqual({c["VariableName"] for c in criteria}, used)

    def test_chat_buttons_worst_case_substitution_is_one_well_formed_command(self):
        # The 100-character limit is on CommandText as written (validated by CreateCustomAction,
        # before any notification exists); the substituted command is longer by construction (the
        # token alone has 58 characters). What must hold at the longest values is that it is still
        # exactly `sns publish --topic-arn <topic> --message <message>`, the message intact.
        token_len = int(re.search(r"Token layout \((\d+) ASCII characters", (ROOT / "shared/core/src/approval.rs").read_text()).group(1))
        token = "lr1." + "A" * (token_len - 4)
        topic_max = int(re.search(r"\{1,(\d+)\}", self.params["ApprovalTopicName"]["AllowedPattern"]).group(1))
        # Longest partition (aws-us-gov) and region names (14 characters: ap-southeast-5, ...).
        arn = f"arn:aws-us-gov:sns:ap-southeast-5:123456789012:{'t' * topic_max}"
        alert = {"metadata": {"additionalContext": {"approvalToken": token, "approvalTopic": arn}}}
        expected = {"approve": token, "deny": f"deny {token}", "snooze": f"snooze {token} 2h"}
        for logical, (_, action) in self.BUTTONS.items():
            with self.subTest(action=logical):
                pressed, why = chatbot_buttons.press(chatbot_buttons.custom_actions(self.t)[logical], alert, {"ApprovalTopic": arn})
                self.assertIsNotNone(pressed, why)
                self.assertEqual(len(pressed.words), 6, pressed.words)
                self.assertEqual(pressed.words[:2], ["sns", "publish"])
                self.assertEqual(pressed.argument("--topic-arn"), arn)
                self.assertEqual(pressed.argument("--message"), expected[action])

    def test_chat_buttons_resolve_in_a_real_proposal_alert(self):
        alert = self.fixture("proposal-alert.chat.json")
        context = alert["metadata"]["additionalContext"]
        topic = context["approvalTopic"]
        token = context["approvalToken"]
        expected = {"approve": token, "deny": f"deny {token}", "snooze": f"snooze {token} 2h"}
        for logical, (_, action) in self.BUTTONS.items():
            with self.subTest(action=logical):
                props = chatbot_buttons.custom_actions(self.t)[logical]
                for attachment in props["Attachments"]:
                    for name, path in attachment["Variables"].items():
                        value = chatbot_buttons.resolve(path, alert)
                        self.assertIsInstance(value, str, f"{name} = {path}")
                        self.assertTrue(value and not re.search(r"[\s'\"]", value), f"{name} = {value!r}: one shell word")
                pressed, why = chatbot_buttons.press(props, alert, {"ApprovalTopic": topic})
                self.assertIsNotNone(pressed, f"the button would not be drawn: {why}")
                self.assertEqual(pressed.argument("--topic-arn"), topic)
                self.assertEqual(pressed.argument("--message"), expected[action])
                # Another stack's topic in the alert: no button (the EQUALS criterion).
                other, why = chatbot_buttons.press(props, alert, {"ApprovalTopic": topic + "-other"})
                self.assertIsNone(other)
                self.assertIn("EQUALS", why)

    def test_chat_buttons_are_not_drawn_without_an_offer(self):
        alert = self.fixture("warning-alert.chat.json")
        self.assertEqual(alert["metadata"]["eventType"], "LockWarning")
        for logical in self.BUTTONS:
            with self.subTest(action=logical):
                pressed, why = chatbot_buttons.press(chatbot_buttons.custom_actions(self.t)[logical], alert, {"ApprovalTopic": "x"})
                self.assertIsNone(pressed)
                self.assertIn("token HAS_VALUE", why)

    def test_variable_paths_resolve_or_fail_loudly(self):
        alert = {"metadata": {"additionalContext": {"approvalToken": "t"}, "relatedResources": ["a", "b"]}}
        self.assertEqual(chatbot_buttons.resolve("event.metadata.additionalContext.approvalToken", alert), "t")
        self.assertEqual(chatbot_buttons.resolve("event.metadata.relatedResources.1", alert), "b")
        for bad in (
            "$.metadata.additionalContext.approvalToken",  # the form this template used before
            "metadata.additionalContext.approvalToken",
            "event.metadata.additionalContext.approvaltoken",
            "event.metadata.relatedResources.2",
            "event.metadata.additionalContext.approvalToken.deeper",
        ):
            with self.subTest(path=bad), self.assertRaises(chatbot_buttons.Unresolvable):
                chatbot_buttons.resolve(bad, alert)

    def test_chat_channel_may_only_publish_approvals(self):
        for logical in ("ChatApprovePolicy", "ChatRole", "SlackChannel"):
            self.assertEqual(self.res[logical].get("Condition"), "HasSlack", logical)
        chat_policy = statements(self.res["ChatApprovePolicy"]["Properties"]["PolicyDocument"])
        # sns:Publish on the approvals topic, and with TopicKmsKeyArn the key use that publishing to
        # an encrypted topic needs (test_guardrails checks that grant's scope).
        self.assertEqual(
            [(s["Action"], s["Resource"], s.get("_if")) for s in chat_policy],
            [
                ("sns:Publish", {"Ref": "ApprovalTopic"}, None),
                (["kms:GenerateDataKey*", "kms:Decrypt"], {"Ref": "TopicKmsKeyArn"}, "HasTopicKey"),
            ],
        )
        channel = self.res["SlackChannel"]["Properties"]
        self.assertEqual(channel["GuardrailPolicies"], [{"Ref": "ChatApprovePolicy"}])
        self.assertEqual(channel["SnsTopicArns"], [{"Ref": "AlertTopic"}])

    def test_approval_token_fits_the_chat_variable(self):
        approval_rs = (ROOT / "shared/core/src/approval.rs").read_text()
        self.assertIn("58 ASCII characters", approval_rs)  # ≤ 1024 and [\x21-\x7F]: fits a variable

    def test_approvals_topic_denies_other_publishers(self):
        doc = self.res["ApprovalTopicPolicy"]["Properties"]["PolicyDocument"]
        deny = [s for s in doc["Statement"] if s["Effect"] == "Deny"]
        self.assertEqual(len(deny), 1)
        self.assertEqual((deny[0]["Principal"], deny[0]["Action"]), ("*", "sns:Publish"))
        text = json.dumps(deny[0]["Condition"]["ArnNotEquals"])
        self.assertIn("ChatRole", text)
        self.assertIn("ApprovalPublisherArns", text)
        # the Slack app's interactivity endpoint publishes approvals too
        self.assertIn('{"Fn::If": ["HasSlackApp", {"Fn::GetAtt": ["SlackInteractionsRole", "Arn"]}', text)

    # ---------------------------------------------------------------- IAM

    def role_statements(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for logical, r in self.res.items():
            if r["Type"] == "AWS::IAM::Role":
                out[logical] = [s for p in r["Properties"].get("Policies", []) for s in statements(p["PolicyDocument"])]
            elif r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                out[logical] = statements(r["Properties"]["PolicyDocument"])
        return out

    @staticmethod
    def actions(s: dict) -> list[str]:
        a = s["Action"]
        return a if isinstance(a, list) else [a]

    def test_only_force_unlock_deletes_and_only_locks(self):
        for logical, stmts in self.role_statements().items():
            for s in stmts:
                deletes = [a for a in self.actions(s) if a in ("dynamodb:DeleteItem", "s3:DeleteObject")]
                if not deletes:
                    continue
                on_ledger = s["Resource"] == {"Fn::GetAtt": ["LedgerTable", "Arn"]}
                with self.subTest(role=logical, sid=s.get("Sid")):
                    if on_ledger:
                        continue  # lockreaper's own table
                    self.assertIn(logical, ("ForceUnlockRole", "ReaperAutoExpirePolicy"))
                    if logical == "ReaperAutoExpirePolicy":
                        self.assertEqual(self.res[logical]["Condition"], "AutoExpireOn")
                    # the kill switch removes every delete of a lock (test_guardrails resolves it)
                    self.assertIn(s.get("_if"), ("MayDeleteLockItems", "MayDeleteLockFiles"), s.get("Sid"))
                    if "s3:DeleteObject" in deletes:
                        arns = [x for x in strings_in(s["Resource"]) if x.startswith("arn:")]
                        self.assertTrue(arns and all(a.endswith("*.tflock") for a in arns), arns)

    def test_wildcard_resources_only_where_aws_allows_nothing_else(self):
        # The ENI actions of a function in a VPC: AWSLambdaVPCAccessExecutionRole grants them on "*"
        # and DescribeNetworkInterfaces "only works if it's allowed on all resources" (Lambda
        # Developer Guide, configuration-vpc); they are present only with SubnetIds (test_guardrails).
        allowed = {"dynamodb:ListStreams"} | set(VPC_ENI_ACTIONS)
        for logical, stmts in self.role_statements().items():
            for s in stmts:
                if s.get("Resource") == "*":
                    with self.subTest(role=logical, sid=s.get("Sid")):
                        self.assertTrue(set(self.actions(s)) <= allowed, s)

    def test_no_role_may_put_metric_data(self):
        # Metrics are CloudWatch Embedded Metric Format lines in the functions' log output, which
        # CloudWatch Logs turns into metrics with no permission beyond writing the logs ("Embedded
        # metric format" in the CloudWatch User Guide: no PutMetricData involved).
        for logical, stmts in self.role_statements().items():
            for s in stmts:
                with self.subTest(role=logical, sid=s.get("Sid")):
                    self.assertFalse([a for a in self.actions(s) if a.startswith("cloudwatch:")], s)

    def test_each_role_logs_only_to_its_own_group(self):
        for role, group in (
            ("ReaperRole", "ReaperLogGroup"),
            ("LockMetricsRole", "LockMetricsLogGroup"),
            ("ForceUnlockRole", "ForceUnlockLogGroup"),
            ("SlackNotifierRole", "SlackNotifierLogGroup"),
            ("SlackInteractionsRole", "SlackInteractionsLogGroup"),
        ):
            logs = [s for s in self.role_statements()[role] if any(a.startswith("logs:") for a in self.actions(s))]
            self.assertEqual([s["Resource"] for s in logs], [{"Fn::GetAtt": [group, "Arn"]}])
            self.assertNotIn("logs:CreateLogGroup", [a for s in logs for a in self.actions(s)])

    # ---------------------------------------------------------------- ledger writes per role

    LEDGER = {"Fn::GetAtt": ["LedgerTable", "Arn"]}
    # BatchGetItem reads named keys like GetItem (lock-metrics reads a batch's stream claims with it);
    # Scan, PartiQL and BatchWriteItem stay refused
    LEDGER_READS = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}
    ROLE_CRATES = {"ReaperRole": "functions/reaper", "LockMetricsRole": "functions/lock-metrics", "ForceUnlockRole": "functions/force-unlock"}

    def ledger_grants(self, logical: str) -> list[tuple[set[str], set[str] | None]]:
        """(actions, key patterns or None when unconditioned) of each ledger statement of a role."""
        out = []
        for s in self.role_statements()[logical]:
            if s.get("Resource") != self.LEDGER:
                continue
            condition = s.get("Condition")
            keys = None
            if condition is not None:
                self.assertEqual(set(condition), {"ForAllValues:StringLike", "Null"}, s)
                self.assertEqual(condition["Null"], {"dynamodb:LeadingKeys": "false"}, s)
                self.assertEqual(set(condition["ForAllValues:StringLike"]), {"dynamodb:LeadingKeys"}, s)
                keys = set(condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"])
            out.append((set(self.actions(s)), keys))
        return out

    def written_keys(self, logical: str) -> tuple[set[str], set[str]]:
        """(key patterns, write actions) a role's ledger grants allow, checking each grant's form."""
        keys: set[str] = set()
        actions: set[str] = set()
        for granted_actions, granted_keys in self.ledger_grants(logical):
            writes = granted_actions - self.LEDGER_READS
            with self.subTest(role=logical, actions=sorted(granted_actions)):
                # an allow list: a wildcard or any other action (Scan, PartiQL*, BatchWriteItem) is refused
                self.assertTrue(granted_actions <= self.LEDGER_READS | {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"})
                if writes:
                    self.assertEqual(writes, granted_actions, "reads and writes in one statement")
                    self.assertIsNotNone(granted_keys, "a ledger write without a dynamodb:LeadingKeys condition")
                    keys |= granted_keys
                    actions |= writes
                else:
                    self.assertIsNone(granted_keys)
        return keys, actions

    def test_ledger_key_derivation_sees_every_write(self):
        # a write method whose keys the derivation cannot name would be a hole in the checks below
        for ty, methods in ledger_method_writes().items():
            for method, (keys, _) in methods.items():
                if method in ("put_if", "transact") and ty == "Ledger":
                    continue  # the private helpers every Ledger method passes its keys to
                with self.subTest(type=ty, method=method):
                    self.assertTrue(keys, "writes the ledger with a key the contract test cannot derive")

    def test_ledger_writes_live_only_in_the_modules_the_derivation_reads(self):
        # a DynamoDB write anywhere else would escape the derivation; locks.rs deletes lock items
        # in the lock tables, never in the ledger
        allowed = set(LEDGER_MODULES.values()) | {"shared/aws/src/locks.rs"}
        for path in rust_sources("shared/aws/src", "functions"):
            rel = str(path.relative_to(ROOT))
            if "/src/" not in rel:
                continue  # tests and benches are not deployed
            with self.subTest(file=rel):
                if WRITE_CALL.search(path.read_text()):
                    self.assertIn(rel, allowed)

    def test_transactions_hold_only_puts(self):
        # the mapping of `transact_write_items` to dynamodb:PutItem above holds only while every
        # transaction is made of Put actions
        for path in rust_sources("shared/aws/src", "functions"):
            text = path.read_text()
            if ".transact_write_items()" in text:
                with self.subTest(file=str(path.relative_to(ROOT))):
                    self.assertIn("Put::builder()", text)
                    for other in ("Update::builder()", "Delete::builder()", "ConditionCheck::builder()"):
                        self.assertNotIn(other, text)

    def test_each_role_writes_exactly_the_ledger_items_its_code_writes(self):
        for role, crate in self.ROLE_CRATES.items():
            derived = crate_ledger_writes(crate)
            self.assertTrue(derived, f"{crate}: no ledger writes found; has the code changed shape?")
            keys = set().union(*(k for k, _ in derived.values()))
            actions = set().union(*(a for _, a in derived.values()))
            granted_keys, granted_actions = self.written_keys(role)
            if role == "ReaperRole":
                # the Unlocker (audit records, forced markers) runs in the reaper only with AutoExpire
                base = {ty: w for ty, w in derived.items() if ty != "Unlocker"}
                base_keys = set().union(*(k for k, _ in base.values()))
                base_actions = set().union(*(a for _, a in base.values()))
                self.assertEqual(granted_keys, base_keys, role)
                self.assertEqual(granted_actions, base_actions, role)
                auto_keys, auto_actions = self.written_keys("ReaperAutoExpirePolicy")
                self.assertEqual(self.res["ReaperAutoExpirePolicy"]["Condition"], "AutoExpireOn")
                self.assertEqual(granted_keys | auto_keys, keys, "reaper with AutoExpire")
                self.assertEqual(granted_actions | auto_actions, actions, "reaper with AutoExpire")
            else:
                self.assertEqual(granted_keys, keys, role)
                self.assertEqual(granted_actions, actions, role)

    def test_slack_notifier_writes_only_slack_thread_items_and_interactions_no_ledger(self):
        # Issue 13's contract: the notifier's ledger items live under `slack#` partition keys only
        # (shared/aws/src/ledger_schema.rs, `slack_…_pk`), read with GetItem and written with
        # PutItem/UpdateItem (conditional); the interactivity endpoint touches no ledger at all.
        self.assertEqual(self.written_keys("SlackNotifierRole"), ({"slack#*"}, {"dynamodb:PutItem", "dynamodb:UpdateItem"}))
        reads = [a for a, k in self.ledger_grants("SlackNotifierRole") if k is None]
        self.assertEqual(reads, [{"dynamodb:GetItem"}])
        self.assertEqual(self.ledger_grants("SlackInteractionsRole"), [])
        # the notifier's key builders (used by shared/aws/src/slack_threads.rs) give `slack#` keys
        schema = (ROOT / LEDGER_SCHEMA).read_text().split("#[cfg(test)]")[0]
        slack_builders = [prefix for _, name, prefix in PK_BUILDER.findall(schema) if name.startswith("slack_")]
        self.assertTrue(slack_builders, "no slack_…_pk builder in ledger_schema.rs")
        self.assertEqual(set(slack_builders), {"slack#"})

    def test_slack_interactions_may_publish_approvals_and_read_its_secrets_only(self):
        data = {}
        for s in self.role_statements()["SlackInteractionsRole"]:
            for a in self.actions(s):
                if not a.startswith(("logs:", "ec2:", "kms:")):
                    data.setdefault(a, []).append(s["Resource"])
        self.assertEqual(
            data,
            {
                "sns:Publish": [{"Ref": "ApprovalTopic"}],
                "secretsmanager:GetSecretValue": [[{"Ref": "SlackSigningSecretArn"}, {"Fn::GetAtt": ["SlackAttestationSecret", "Id"]}, {"Ref": "SlackBotTokenSecretArn"}]],
            },
        )
        fu = [s for s in self.role_statements()["ForceUnlockRole"] if s.get("Sid") == "SlackAttestationKey"]
        self.assertEqual([(s["_if"], s["Resource"]) for s in fu], [("HasSlackApp", {"Fn::GetAtt": ["SlackAttestationSecret", "Id"]})])

    def test_audit_records_are_only_appended_and_only_by_their_writers(self):
        writers = {role for role, crate in self.ROLE_CRATES.items() if any("audit#*" in k for k, _ in crate_ledger_writes(crate).values())}
        self.assertEqual(writers, {"ReaperRole", "ForceUnlockRole"})
        granted = set()
        for logical in self.role_statements():
            for actions, keys in self.ledger_grants(logical):
                if keys and "audit#*" in keys:
                    with self.subTest(role=logical):
                        # PutItem only, and in a statement of its own: no UpdateItem or DeleteItem of
                        # an audit record, and no other item kind rides along
                        self.assertEqual((actions, keys), ({"dynamodb:PutItem"}, {"audit#*"}))
                    granted.add(logical)
        # the reaper appends audit records only through its auto-expiry policy
        self.assertEqual(granted, {"ForceUnlockRole", "ReaperAutoExpirePolicy"})

    def test_readme_names_every_ledger_item_kind_a_role_writes(self):
        readme = (ROOT / "infra/sam/README.md").read_text()
        for role, crate in self.ROLE_CRATES.items():
            for key in set().union(*(k for k, _ in crate_ledger_writes(crate).values())):
                with self.subTest(role=role, key=key):
                    self.assertTrue(f"`{key.rstrip('*')}" in readme, f"infra/sam/README.md does not name `{key}`")

    # Item 8 of issue 11. S3 API reference, HeadObject (and GetObject), "Permissions": "If the object
    # you request doesn't exist, the error that Amazon S3 returns depends on whether you also have
    # the s3:ListBucket permission. If you have the s3:ListBucket permission on the bucket, Amazon S3
    # returns an HTTP status code 404 Not Found error. If you don't have the s3:ListBucket
    # permission, Amazon S3 returns an HTTP status code 403 Forbidden error."
    # (docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html). force-unlock reads the state
    # object and the lock file before it deletes; without ListBucket a missing one reads as 403.
    def test_force_unlock_may_list_the_state_buckets_like_the_reaper(self):
        def listing(logical: str) -> list[dict]:
            return [s for s in self.role_statements()[logical] if "s3:ListBucket" in self.actions(s)]

        reaper, force_unlock = listing("ReaperRole"), listing("ForceUnlockRole")
        self.assertEqual(len(reaper), 1)
        self.assertEqual(len(force_unlock), 1)
        for key in ("Effect", "Action", "Resource", "Condition", "_if"):
            with self.subTest(key=key):
                self.assertEqual(force_unlock[0].get(key), reaper[0].get(key))
        self.assertEqual(reaper[0]["_if"], "HasStateBuckets")
        # per bucket, not narrowed to an entry's prefix (the template cannot cut it out of
        # `bucket/prefix`; see the comment on ListStateBuckets): listing shows key names only
        self.assertNotIn("Condition", reaper[0])
        # and force-unlock does read state objects and lock files (HeadObject needs s3:GetObject)
        gets = [s for s in self.role_statements()["ForceUnlockRole"] if "s3:GetObject" in self.actions(s)]
        self.assertEqual(len(gets), 1)
        state_reads = "\n".join(p.read_text() for p in rust_sources("shared/aws/src"))
        self.assertRegex(state_reads, r"\.head_object\(\)")

    # ---------------------------------------------------------------- slots

    def test_list_parameters_admit_at_most_slots_entries(self):
        samples = {
            "LockTables": "tf-locks",
            "StateBuckets": "acme-tfstate/env:/prod/network/",
            "LockTableStreamArns": "arn:aws:dynamodb:eu-west-1:123456789012:table/tf-locks/stream/2026-11-23T19:38:34.588",
        }
        for name, one in samples.items():
            with self.subTest(parameter=name):
                pattern = re.compile(self.params[name]["AllowedPattern"])
                self.assertTrue(pattern.fullmatch(""))
                self.assertTrue(pattern.fullmatch(",".join([one] * SLOTS)))
                self.assertFalse(pattern.fullmatch(",".join([one] * (SLOTS + 1))))
                self.assertFalse(pattern.fullmatch(f"{one}, {one}"))
        # StateBuckets entries: `bucket`, `bucket/` or `bucket/prefix`, no IAM wildcard or policy
        # variable in a prefix (it would widen the object grant `<bucket>/<prefix>*`)
        buckets = re.compile(self.params["StateBuckets"]["AllowedPattern"])
        for good in ("acme", "acme/", "acme/env:/prod/", "acme,acme.gyro/team a/"):
            self.assertTrue(buckets.fullmatch(good), good)
        for bad in ("acme/*", "acme/a?", "acme/${aws:username}/", "Acme", "acme//x,", "/x"):
            self.assertFalse(buckets.fullmatch(bad), bad)
        conditions = self.t["Conditions"]
        for prefix in ("HasLockTable", "HasStateBucket", "StateBucketHasPrefix", "HasStream"):
            self.assertEqual(sorted((c for c in conditions if re.fullmatch(rf"{prefix}\d+", c)), key=lambda c: int(c[len(prefix) :])), [f"{prefix}{i}" for i in range(1, SLOTS + 1)])
        self.assertEqual(sorted((k for k in self.res if k.startswith("LockStreamMapping")), key=lambda k: int(k[len("LockStreamMapping") :])), [f"LockStreamMapping{i}" for i in range(1, SLOTS + 1)])

    def test_stream_mappings(self):
        for i in range(1, SLOTS + 1):
            m = self.res[f"LockStreamMapping{i}"]
            with self.subTest(slot=i):
                self.assertEqual(m["Condition"], f"HasStream{i}")
                p = m["Properties"]
                self.assertEqual(p["FunctionResponseTypes"], ["ReportBatchItemFailures"])
                self.assertIs(p["BisectBatchOnFunctionError"], True)
                self.assertEqual(p["StartingPosition"], "TRIM_HORIZON")
                self.assertEqual(p["MaximumRetryAttempts"], {"Ref": "StreamMaximumRetryAttempts"})
                self.assertEqual(p["DestinationConfig"]["OnFailure"]["Destination"], {"Fn::GetAtt": ["StreamFailureQueue", "Arn"]})
                self.assertEqual(p["EventSourceArn"]["Fn::Select"][0], i - 1)
        self.assertLessEqual(int(self.params["StreamBatchSize"]["MaxValue"]), 1000)
        self.assertGreaterEqual(int(self.params["StreamMaximumRetryAttempts"]["MinValue"]), 0)

    # ---------------------------------------------------------------- owned resources

    def test_ledger_table(self):
        p = self.res["LedgerTable"]["Properties"]
        schema_rs = (ROOT / LEDGER_SCHEMA).read_text()
        for const, attr in (("PK", "pk"), ("SK", "sk"), ("EXPIRES_AT", "expires_at")):
            self.assertIn(f'pub const {const}: &str = "{attr}";', schema_rs)
        self.assertEqual(p["BillingMode"], "PAY_PER_REQUEST")
        self.assertEqual(p["KeySchema"], [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        self.assertEqual(p["TimeToLiveSpecification"], {"AttributeName": "expires_at", "Enabled": True})
        self.assertIs(p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], True)

    def test_signing_secret(self):
        g = self.res["SigningSecret"]["Properties"]["GenerateSecretString"]
        approval_rs = (ROOT / "shared/core/src/approval.rs").read_text()
        min_len = int(re.search(r"MIN_LEN: usize = (\d+);", approval_rs).group(1))
        self.assertGreaterEqual(g["PasswordLength"], min_len)
        self.assertIs(g["ExcludePunctuation"], True)

    def test_force_unlock_failures_go_to_a_queue(self):
        cfg = self.res["ForceUnlockFunction"]["Properties"]["EventInvokeConfig"]
        self.assertEqual(cfg["DestinationConfig"]["OnFailure"], {"Type": "SQS", "Destination": {"Fn::GetAtt": ["UnlockFailureQueue", "Arn"]}})
        self.assertLessEqual(cfg["MaximumRetryAttempts"], 2)

    def test_expire_after_mapping_matches_the_rust_parser(self):
        mapping = self.t["Mappings"]["ExpireAfterSeconds"]
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        for value in self.params["ExpireAfter"]["AllowedValues"]:
            seconds = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", value))
            self.assertEqual(mapping[value]["Seconds"], seconds, value)

    def test_samconfig_example_overrides_are_valid_parameters(self):
        import tomllib

        from samcli.cli.types import CfnParameterOverridesType

        config = tomllib.loads((ROOT / "samconfig.toml.example").read_text())["default"]
        deploy = config["deploy"]["parameters"]
        values = CfnParameterOverridesType().convert(deploy["parameter_overrides"], None, None)
        self.assertEqual(values["ScheduleExpression"], "rate(5 minutes)")  # quoted: no split at the space
        for key, value in values.items():
            with self.subTest(parameter=key):
                self.assertIn(key, self.params)
                p = self.params[key]
                if "AllowedValues" in p:
                    self.assertIn(value, [str(v) for v in p["AllowedValues"]])
                if "AllowedPattern" in p:
                    self.assertRegex(value, re.compile(p["AllowedPattern"]))
        self.assertEqual(deploy["capabilities"], "CAPABILITY_IAM")
        self.assertLessEqual(len(config["global"]["parameters"]["stack_name"]), 51)

    def assert_accepted_by_the_template(self, values: dict[str, str]) -> None:
        """Each value passes its parameter's constraints, LockPolicy passes the reaper's own
        parser's rules, and every template Rule holds (parameters not given take their default)."""
        for key, value in values.items():
            with self.subTest(parameter=key, value=value):
                self.assertIn(key, self.params)
                p = self.params[key]
                if "AllowedValues" in p:
                    self.assertIn(value, [str(v) for v in p["AllowedValues"]])
                if "AllowedPattern" in p:
                    self.assertRegex(value, re.compile(p["AllowedPattern"]))
                    self.assertIsNotNone(re.fullmatch(p["AllowedPattern"], value), p["AllowedPattern"])
                for bound, ok in (("MinLength", lambda b: len(value) >= b), ("MaxLength", lambda b: len(value) <= b)):
                    if bound in p:
                        self.assertTrue(ok(int(p[bound])), f"{bound} {p[bound]}")
        policy = values.get("LockPolicy", self.params["LockPolicy"]["Default"])
        warn = values.get("WarnAfter", self.params["WarnAfter"]["Default"])
        expire = values.get("ExpireAfter", self.params["ExpireAfter"]["Default"])
        self.assertEqual(lock_policy_problems(policy, warn, expire), [], policy)
        for name, rule in self.t.get("Rules", {}).items():
            with self.subTest(rule=name):
                if "RuleCondition" in rule and not rule_value(rule["RuleCondition"], values, self.params):
                    continue
                for assertion in rule["Assertions"]:
                    self.assertTrue(rule_value(assertion["Assert"], values, self.params), assertion.get("AssertDescription"))

    def test_samconfig_example_values_work_when_used(self):
        # Every "# e.g. <entry>" line under an entry in parameter_overrides, used as the file says
        # (the entry above deleted, the "# e.g. " removed): still TOML, still one override for the
        # same parameter as SAM CLI parses it, and a value the template and the reaper accept. Then
        # all examples at once (e.g. both Slack IDs, which a Rule requires together).
        text = (ROOT / "samconfig.toml.example").read_text()
        lines = text.splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith("parameter_overrides = ["))
        last = next(i for i in range(first, len(lines)) if lines[i] == "]")
        example = re.compile(r"^(\s*)# e\.g\. (.*)$")
        entry = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*')\s*,""")
        defaults = samconfig_overrides(text)
        self.assert_accepted_by_the_template(defaults)
        examples: list[tuple[int, int]] = []  # (entry line, example line)
        for i in range(first + 1, last):
            if "e.g." not in lines[i]:
                continue
            self.assertRegex(lines[i], example, "an example in parameter_overrides must be a whole '# e.g. <entry>' line")
            above = i - 1
            while example.match(lines[above]):
                above -= 1
            self.assertRegex(lines[above], entry, f"line {i + 1}: the example is not under an entry")
            examples.append((above, i))
        self.assertGreaterEqual(len(examples), 8)

        def use(pairs: list[tuple[int, int]]) -> str:
            used = list(lines)
            for above, i in pairs:
                indent, rest = example.match(lines[i]).groups()
                used[above] = indent + rest
                used[i] = ""
            return "\n".join(used) + "\n"

        all_values = dict(defaults)
        for above, i in examples:
            key = re.match(r"""^\s*["']([A-Za-z0-9]+)=""", lines[above]).group(1)
            with self.subTest(example=lines[i].strip()):
                values = samconfig_overrides(use([(above, i)]))
                self.assertEqual(set(values), set(defaults), "the example must set the same parameter as the entry it replaces")
                changed = {k for k in values if values[k] != defaults[k]}
                self.assertEqual(changed, {key})
                if key == "LockPolicy":
                    self.assertIsInstance(json.loads(values[key]), list)  # not cut short by SAM's parser
                all_values[key] = values[key]
        self.assertEqual(samconfig_overrides(use(examples)), all_values)
        self.assert_accepted_by_the_template(all_values)

    def rules_hold(self, values: dict[str, str]) -> list[str]:
        """The names of the template Rules that refuse `values` (others at their defaults)."""
        refused = []
        for name, rule in self.t.get("Rules", {}).items():
            if "RuleCondition" in rule and not rule_value(rule["RuleCondition"], values, self.params):
                continue
            if not all(rule_value(a["Assert"], values, self.params) for a in rule["Assertions"]):
                refused.append(name)
        return refused

    def emulator_rules(self):
        """ministack's own Rules evaluator (infra/.venv-deploy/ministack, installed by `make tools`),
        as a function of parameter values: raises ValueError naming the failed rule."""
        import sys

        site = ROOT / "infra/.venv-deploy/ministack/lib/python3.11/site-packages"
        if not site.is_dir():
            self.skipTest(f"ministack is not installed at {site}")
        if str(site) not in sys.path:
            sys.path.append(str(site))
        from ministack.services.cloudformation import engine

        def evaluate(values: dict[str, str]) -> None:
            params = {
                name: {"Value": values.get(name, str(p.get("Default", ""))), "NoEcho": False}
                for name, p in self.params.items()
            }
            engine._evaluate_rules(self.t, params, {})

        return evaluate

    # Somewhere to alert and approve, and somewhere to look, in every set below.
    WATCHED = {"LockTables": "tf-locks", "AlertEmail": "ops@example.com"}

    def test_every_rule_passes_and_fails_as_documented(self):
        # One passing and one failing parameter set per rule: the failing one is refused by that
        # rule and no other, so each rule is shown to be what refuses it.
        cases = {
            "SomewhereToLook": ({}, {"LockTables": "", "StateBuckets": ""}),
            "SlackNeedsBothIds": (
                {"SlackWorkspaceId": "T0123ABCDEF", "SlackChannelId": "C0123ABCDEF"},
                {"SlackWorkspaceId": "T0123ABCDEF"},
            ),
            "VpcNeedsSubnetsAndSecurityGroups": (
                {"SubnetIds": "subnet-0a1b2c3d", "SecurityGroupIds": "sg-0a1b2c3d"},
                {"SubnetIds": "subnet-0a1b2c3d"},
            ),
            "SomebodyIsAlerted": (
                {"AlertEmail": "", "ApprovalPublisherArns": "arn:aws:iam::111122223333:role/on-call"},
                {"AlertEmail": ""},
            ),
            "SlackAppNeedsChannelTokenAndSigningSecret": (
                SLACK_APP,
                {**SLACK_APP, "SlackSigningSecretArn": ""},
            ),
            "WarnAfterAtMostExpireAfter4h": ({"WarnAfter": "4h", "ExpireAfter": "4h"}, {"WarnAfter": "6h", "ExpireAfter": "4h"}),
            "WarnAfterAtMostExpireAfter30m": ({"WarnAfter": "30m", "ExpireAfter": "30m"}, {"ExpireAfter": "30m"}),
        }
        self.assertEqual(self.rules_hold(self.WATCHED), [])
        for rule in self.t["Rules"]:
            if rule.startswith("WarnAfterAtMostExpireAfter"):
                continue  # every one of them: test_warn_after_rules_follow_the_durations
            self.assertIn(rule, cases, "a Rule without a passing and a failing case")
        emulator = self.emulator_rules()
        for rule, (passing, failing) in cases.items():
            with self.subTest(rule=rule):
                self.assertEqual(self.rules_hold({**self.WATCHED, **passing}), [], passing)
                self.assertEqual(self.rules_hold({**self.WATCHED, **failing}), [rule], failing)
                # The same sets through ministack's CloudFormation engine, which evaluates Rules on
                # CreateStack/UpdateStack (deploy_local.py, demo.py): an independent evaluator.
                emulator({**self.WATCHED, **passing})
                with self.assertRaisesRegex(ValueError, f"rule {rule} failed"):
                    emulator({**self.WATCHED, **failing})
        # Slack alone (both IDs) is somebody alerted too.
        slack = {"AlertEmail": "", "SlackWorkspaceId": "T0123ABCDEF", "SlackChannelId": "C0123ABCDEF"}
        self.assertEqual(self.rules_hold({**self.WATCHED, **slack}), [])
        # ... and so is the Slack app mode alone; a channel without its secrets is refused
        self.assertEqual(self.rules_hold({**self.WATCHED, "AlertEmail": "", **SLACK_APP}), [])
        for missing in ("SlackBotTokenSecretArn", "SlackAppChannelId"):
            self.assertEqual(self.rules_hold({**self.WATCHED, **SLACK_APP, missing: ""}), ["SlackAppNeedsChannelTokenAndSigningSecret"], missing)

    def test_warn_after_rules_follow_the_durations(self):
        # Every WarnAfter x ExpireAfter pair the parameters allow: refused exactly when the reaper
        # would refuse it at start-up (WARN_AFTER longer than EXPIRE_AFTER), by the rule for that
        # ExpireAfter; one rule per ExpireAfter value.
        warn_values = [str(v) for v in self.params["WarnAfter"]["AllowedValues"]]
        expire_values = [str(v) for v in self.params["ExpireAfter"]["AllowedValues"]]
        self.assertEqual(
            sorted(r for r in self.t["Rules"] if r.startswith("WarnAfterAtMostExpireAfter")),
            sorted(f"WarnAfterAtMostExpireAfter{e}" for e in expire_values),
        )
        self.assertIn(str(self.params["WarnAfter"]["Default"]), warn_values)
        for warn in warn_values:
            for expire in expire_values:
                refused = [r for r in self.rules_hold({**self.WATCHED, "WarnAfter": warn, "ExpireAfter": expire})]
                expected = [] if duration_seconds(warn) <= duration_seconds(expire) else [f"WarnAfterAtMostExpireAfter{expire}"]
                self.assertEqual(refused, expected, (warn, expire))

    def test_approval_ttl_pattern_is_the_reapers_range(self):
        # The reaper accepts APPROVAL_TTL from 1m to 7d (shared/core/src/config.rs). The
        # pattern accepts only such values, and every one of them written in a single unit.
        pattern = re.compile(self.params["ApprovalTtl"]["AllowedPattern"])
        self.assertRegex(str(self.params["ApprovalTtl"]["Default"]), pattern)
        reaper_rs = (ROOT / "shared/core/src/config.rs").read_text()
        self.assertIn("d < Duration::from_secs(60) || d > Duration::from_secs(7 * 86_400)", reaper_rs)
        one_unit_max = {"m": 59, "h": 168, "d": 7}
        for unit in "smhd":
            for n in range(0, 400):
                value = f"{n}{unit}"
                with self.subTest(value=value):
                    accepted = pattern.fullmatch(value) is not None
                    if accepted:
                        self.assertTrue(60 <= duration_seconds(value) <= 7 * 86_400, "the template would accept what the reaper refuses")
                    self.assertEqual(accepted, 1 <= n <= one_unit_max.get(unit, 0))
        for refused in ("8d", "169h", "0m", "30s", "1h30m", "024h", ""):
            self.assertIsNone(pattern.fullmatch(refused), refused)

    def test_config_check_knows_every_parameter_and_constraint(self):
        # `lockreaper config check` refuses what CloudFormation would (AllowedValues, AllowedPattern,
        # MinValue/MaxValue, MaxLength) and names it does not know (SAM drops them silently): its
        # PARAMETER_CONSTRAINTS must be exactly the template's Parameters, so a parameter or a
        # constraint added here fails this test until the checker knows it.
        rust = (ROOT / "shared/cli/src/config_check.rs").read_text()
        table = rust.split("pub const PARAMETER_CONSTRAINTS", 1)[1].split("\n];", 1)[0]
        rows = re.findall(
            r'\(\s*"(\w+)",\s*"(\w+)",\s*&\[([^\]]*)\],\s*r"([^"]*)",\s*(None|Some\(\((-?\d+), (-?\d+)\)\)),\s*(None|Some\((\d+)\)),?\s*\)',
            table,
        )
        from_rust = {
            name: {
                "Type": kind,
                "AllowedValues": re.findall(r'"([^"]*)"', values),
                "AllowedPattern": pattern,
                "MinValue": int(low) if low else None,
                "MaxValue": int(high) if high else None,
                "MaxLength": int(length) if length else None,
            }
            for name, kind, values, pattern, _, low, high, _, length in rows
        }
        self.assertEqual(len(rows), len(re.findall(r'\(\s*"\w+",', table)), "a row of PARAMETER_CONSTRAINTS this test cannot read")
        from_template = {
            name: {
                "Type": p["Type"],
                "AllowedValues": [str(v) for v in p.get("AllowedValues", [])],
                "AllowedPattern": p.get("AllowedPattern", ""),
                "MinValue": p.get("MinValue"),
                "MaxValue": p.get("MaxValue"),
                "MaxLength": p.get("MaxLength"),
            }
            for name, p in self.params.items()
        }
        for name, p in self.params.items():
            self.assertNotIn("MinLength", p, f"{name}: config check does not check MinLength; teach it first")
        self.maxDiff = None
        self.assertEqual(from_rust, from_template)

    def test_config_check_maps_parameters_as_the_template_does(self):
        # `lockreaper config check` (shared/cli/src/config_check.rs) gives the functions the
        # environment the template would: its table of parameter -> variable, default and functions
        # must be exactly the template's `VARIABLE: !Ref Parameter` entries and parameter defaults.
        rust = (ROOT / "shared/cli/src/config_check.rs").read_text()
        table = rust.split("pub const PARAMETER_VARIABLES", 1)[1].split("];", 1)[0]
        rows = re.findall(r'\(\s*"(\w+)",\s*"(\w+)",\s*"([^"]*)",\s*&\[([^\]]*)\],?\s*\)', table)
        self.assertGreaterEqual(len(rows), 10, table)
        from_rust: dict[str, set[tuple[str, str]]] = {}
        for parameter, variable, default, functions in rows:
            self.assertEqual(default, str(self.params[parameter].get("Default", "")), parameter)
            for crate in re.findall(r'"([a-z-]+)"', functions):
                from_rust.setdefault(crate, set()).add((parameter, variable))
        for logical, crate in ALL_FUNCTIONS.items():
            with self.subTest(function=crate):
                from_template = {
                    (v["Ref"], name)
                    for name, v in self.env_of(logical).items()
                    if isinstance(v, dict) and set(v) == {"Ref"} and v["Ref"] in self.params
                }
                self.assertEqual(from_rust.get(crate, set()), from_template)
        # LOCK_BUCKETS, built from StateBuckets, StateKeyPrefix and SearchLockFiles as the code says.
        buckets = json.dumps(self.env_of("ReaperFunction")["LOCK_BUCKETS"])
        for parameter in ("SearchLockFilesOn", "StateKeyPrefix", "StateBuckets"):
            self.assertIn(parameter, buckets)
        self.assertIn('format!("{b}/{}", values["StateKeyPrefix"])', rust)
        self.assertIn('values["SearchLockFiles"] == "true"', rust)

    def test_lock_policy_check_agrees_with_the_reaper(self):
        # The Python check above against the examples the Rust code and the template give, and
        # against what policy/env.rs refuses (its error messages name each case).
        policy_rs = (ROOT / "shared/core/src/policy/env.rs").read_text()
        rust_example = re.search(r'const LOCK_POLICY_EXAMPLE: &str = r#"(.*?)"#;', policy_rs).group(1)
        template_example = self.params["LockPolicy"]["Description"].split("e.g.", 1)[1].strip()
        for accepted in (rust_example, template_example, "", '[{"path": "a/*", "auto_expire": true}]'):
            self.assertEqual(lock_policy_problems(accepted, "1h", "4h"), [], accepted)
        refused = {
            "[{'path': 'a/*'}]": "not valid JSON",
            '{"path": "a/*", "expire_after": "2h"}': "not an array",
            '[{"path": "a/*"}]': "sets none of",
            '[{"path": " ", "expire_after": "2h"}]': "`path` missing or empty",
            '[{"path": "a/*", "expire_after": "2 hours"}]': "expire_after",
            '[{"path": "a/*", "expire_after": "0m"}]': "longer than 0s",
            '[{"path": "a/*", "auto_expire": "false"}]': "not a boolean",
            '[{"path": "a/*", "expire": "2h"}]': "unknown fields",
            '[{"path": "a/*", "expire_after": "30m"}]': "shorter than warn_after",
        }
        for text, problem in refused.items():
            with self.subTest(policy=text):
                self.assertIn(problem, " ".join(lock_policy_problems(text, "1h", "4h")))
        for message in ("is not valid JSON", "not an array", "sets none of", "`path` is empty", "is zero", "is shorter than warn_after"):
            self.assertIn(message, policy_rs)

    def test_alarms(self):
        silent = self.res["ReaperSilentAlarm"]["Properties"]
        self.assertEqual(silent["TreatMissingData"], "breaching")
        oldest = self.res["OldestLockAgeAlarm"]["Properties"]
        self.assertEqual(oldest["Threshold"], {"Fn::FindInMap": ["ExpireAfterSeconds", {"Ref": "ExpireAfter"}, "Seconds"]})
        self.assertIn("OldestLockAgeSeconds", json.dumps(oldest["Metrics"]))
        reaper_rs = (ROOT / "functions/reaper/src/metrics.rs").read_text()
        self.assertIn('OLDEST_LOCK_AGE_SECONDS: &str = "OldestLockAgeSeconds"', reaper_rs)
        self.assertIn('SWEEP_ERRORS: &str = "SweepErrors"', reaper_rs)
        errors = {r["Properties"]["Dimensions"][0]["Value"]["Ref"] for r in self.res.values() if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("MetricName") == "Errors"}
        self.assertEqual(errors, set(ALL_FUNCTIONS))
        queues = {r["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for r in self.res.values() if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Namespace") == "AWS/SQS"}
        self.assertEqual(queues, {"StreamFailureQueue", "UnlockFailureQueue", "S3EventFailureQueue", "SlackNotifierFailureQueue"})
        # every queue a function fails into is alarmed
        destinations = {
            r["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
            for r in self.res.values()
            if r["Type"] == "AWS::Serverless::Function" and "DestinationConfig" in r["Properties"].get("EventInvokeConfig", {})
        }
        self.assertLessEqual(destinations, queues)

    def test_s3_events_rule(self):
        # S3EventsEnabled=true: one rule for the StateBuckets' S3 events under StateKeyPrefix, to
        # lock-metrics, with a retry policy and a dead-letter queue EventBridge may write to, and an
        # invoke permission scoped to the rule (issue 15).
        rule = self.res["S3LockEventsRule"]
        self.assertEqual(rule["Condition"], "S3EventsOn")
        pattern = rule["Properties"]["EventPattern"]
        self.assertEqual(pattern["source"], ["aws.s3"])
        self.assertEqual(pattern["detail-type"], ["Object Created", "Object Deleted"])
        # One bucket name per StateBuckets slot (the entry's text before `/`), no key filter:
        # one pattern cannot pair each bucket with its own prefix (see the template's comment).
        self.assertEqual(set(pattern["detail"]), {"bucket"})
        names = pattern["detail"]["bucket"]["name"]
        self.assertEqual(len(names), SLOTS)
        first_entry = {"Fn::Select": [0, {"Fn::Split": [",", {"Fn::Sub": "${StateBuckets}" + "," * (SLOTS - 1)}]}]}
        self.assertEqual(names[0], {"Fn::Sub": ["${Bucket}", {"Bucket": {"Fn::Select": [0, {"Fn::Split": ["/", first_entry]}]}}]})
        for n, item in enumerate(names[1:], start=2):
            self.assertEqual(item["Fn::If"][0], f"HasStateBucket{n}")
            self.assertEqual(item["Fn::If"][2], {"Ref": "AWS::NoValue"})
        (target,) = rule["Properties"]["Targets"]
        self.assertEqual(target["Arn"], {"Fn::GetAtt": ["LockMetricsFunction", "Arn"]})
        self.assertEqual(target["DeadLetterConfig"]["Arn"], {"Fn::GetAtt": ["S3EventFailureQueue", "Arn"]})
        self.assertLessEqual(target["RetryPolicy"]["MaximumRetryAttempts"], 185)
        self.assertLessEqual(target["RetryPolicy"]["MaximumEventAgeInSeconds"], 86400)
        permission = self.res["S3LockEventsPermission"]["Properties"]
        self.assertEqual(permission["Principal"], "events.amazonaws.com")
        self.assertEqual(permission["Action"], "lambda:InvokeFunction")
        self.assertEqual(permission["SourceArn"], {"Fn::GetAtt": ["S3LockEventsRule", "Arn"]})
        (statement,) = self.res["S3EventFailureQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
        self.assertEqual(statement["Principal"], {"Service": "events.amazonaws.com"})
        self.assertEqual(statement["Condition"], {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["S3LockEventsRule", "Arn"]}}})
        invoke = self.res["LockMetricsFunction"]["Properties"]["EventInvokeConfig"]
        self.assertEqual(invoke["DestinationConfig"]["OnFailure"]["Destination"], {"Fn::GetAtt": ["S3EventFailureQueue", "Arn"]})
        self.assertIn("S3EventsEnabled", self.t["Parameters"])

    def alarms(self) -> dict[str, dict]:
        return {k: r for k, r in self.res.items() if r["Type"] == "AWS::CloudWatch::Alarm"}

    def lambda_alarms(self, metric: str) -> dict[str, dict]:
        """The AWS/Lambda alarms on `metric`, by the function they watch."""
        out: dict[str, dict] = {}
        for logical, r in self.alarms().items():
            p = r["Properties"]
            if p.get("Namespace") == "AWS/Lambda" and p.get("MetricName") == metric:
                self.assertEqual(len(p["Dimensions"]), 1, logical)
                self.assertEqual(p["Dimensions"][0]["Name"], "FunctionName", logical)
                function = p["Dimensions"][0]["Value"]["Ref"]
                self.assertNotIn(function, out, f"two {metric} alarms on {function}")
                out[function] = r
        return out

    def test_every_alarm_notifies_the_alert_topic(self):
        for logical, r in self.alarms().items():
            with self.subTest(alarm=logical):
                self.assertEqual(r["Properties"]["AlarmActions"], [{"Ref": "AlertTopic"}])

    def test_throttles_alarm_on_each_function(self):
        # Throttles: "the number of invocation requests that are throttled", a count per FunctionName
        # (docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html): any throttle alarms.
        throttles = self.lambda_alarms("Throttles")
        self.assertEqual(set(throttles), set(ALL_FUNCTIONS))
        for function, r in throttles.items():
            with self.subTest(function=function):
                p = r["Properties"]
                # exactly when its function exists
                self.assertEqual(r.get("Condition"), self.res[function].get("Condition"))
                self.assertEqual((p["Statistic"], p["ComparisonOperator"], p["Threshold"]), ("Sum", "GreaterThanThreshold", 0))
                self.assertEqual(p["TreatMissingData"], "notBreaching")  # no invocations, no throttles

    def test_iterator_age_alarm_covers_every_stream_mapping(self):
        # IteratorAge is a metric of the function (dimension FunctionName, milliseconds), emitted for
        # stream event source mappings (same page): one alarm on the function every mapping feeds.
        iterator_age = self.lambda_alarms("IteratorAge")
        mapped = {self.res[f"LockStreamMapping{i}"]["Properties"]["FunctionName"]["Ref"] for i in range(1, SLOTS + 1)}
        self.assertEqual(set(iterator_age), mapped)
        ((function, alarm),) = iterator_age.items()
        p = alarm["Properties"]
        # Only with a stream: HasStreams is slot 1, which every other slot needs before it.
        self.assertEqual(alarm["Condition"], "HasStreams")
        self.assertEqual(self.t["Conditions"]["HasStreams"], {"Condition": "HasStream1"})
        self.assertEqual((p["Statistic"], p["ComparisonOperator"]), ("Maximum", "GreaterThanThreshold"))
        self.assertEqual(p["TreatMissingData"], "notBreaching")
        self.assertEqual(p["OKActions"], [{"Ref": "AlertTopic"}])
        self.assertEqual(p["Threshold"], {"Fn::FindInMap": ["IteratorAgeAlarmMilliseconds", {"Ref": "StreamIteratorAgeAlarmSeconds"}, "Milliseconds"]})
        param = self.params["StreamIteratorAgeAlarmSeconds"]
        mapping = self.t["Mappings"]["IteratorAgeAlarmMilliseconds"]
        allowed = [int(v) for v in param["AllowedValues"]]
        self.assertEqual(sorted(int(k) for k in mapping), sorted(allowed))
        for seconds in allowed:
            self.assertEqual(mapping[str(seconds)]["Milliseconds"], seconds * 1000, seconds)
        # Every choice fires before the mappings discard records (MaximumRecordAgeInSeconds, the
        # stream's 24 h retention), and the default before the shortest ExpireAfter: the reaper reads
        # the state writes lock-metrics records as signs of life.
        record_age = {self.res[f"LockStreamMapping{i}"]["Properties"]["MaximumRecordAgeInSeconds"] for i in range(1, SLOTS + 1)}
        self.assertEqual(record_age, {86400})
        self.assertLess(max(allowed), 86400)
        self.assertIn(int(param["Default"]), allowed)
        shortest_expire = min(v["Seconds"] for v in self.t["Mappings"]["ExpireAfterSeconds"].values())
        self.assertLess(int(param["Default"]), shortest_expire)

    def test_dashboard_shows_throttles_and_stream_lag(self):
        body = self.res["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
        for function in FUNCTIONS:
            self.assertIn(f'["AWS/Lambda", "Throttles", "FunctionName", "${{{function}}}"]', body)
        self.assertIn('["AWS/Lambda", "IteratorAge", "FunctionName", "${LockMetricsFunction}"]', body)

    def test_every_alarm_has_a_runbook_line(self):
        readme = (ROOT / "infra/sam/README.md").read_text()
        runbook = readme.split("## Alarms: what each means and what to do", 1)
        self.assertEqual(len(runbook), 2, "infra/sam/README.md has no alarms runbook section")
        section = runbook[1].split("\n## ", 1)[0]
        rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+Alarm)` \|.*$", section, re.M)}
        self.assertEqual(set(rows), set(self.alarms()))
        for logical, row in rows.items():
            with self.subTest(alarm=logical):
                cells = [c.strip() for c in row.strip("|").split("|")]
                self.assertEqual(len(cells), 4, row)  # alarm, what it means, check first, what to do
                self.assertTrue(all(cells), row)


if __name__ == "__main__":
    unittest.main()
