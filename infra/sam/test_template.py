#!/usr/bin/env python3
"""Checks of template.yaml that cfn-lint cannot make: the contract with the Rust code and the rules
this project sets itself. Plain unittest; run with the deploy venv's Python (it has cfn-lint, whose
decoder reads the CloudFormation YAML tags):

    infra/.venv-deploy/bin/python -m unittest infra/sam/test_template.py

What is checked:
- the environment variables: every variable a function's Rust code reads is set by the template or
  deliberately left unset (listed below), and every variable the template sets is read somewhere;
- the template's comment block lists every variable it sets;
- the chat button: command ≤ 100 characters (Chatbot's API limit) in the longest region; the
  JSONPath and button text match the Rust constants;
- deletes: only force-unlock (and the reaper under AutoExpireOn) may delete; S3 deletes only
  `*.tflock`; wildcard resources only where AWS allows nothing else;
- the slot lists: each list parameter admits at most 5 entries, and there are exactly 5 slots;
- the stream mappings' settings, the ledger table's schema, the ExpireAfter mapping, defaults.
"""

from __future__ import annotations

import json
import re
import unittest
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
SLOTS = 5

# Read by the code but deliberately not set by the template (see its comment block).
UNSET_ON_PURPOSE = {
    "S3_FORCE_PATH_STYLE",  # emulators only; false (the default) in AWS
    "AWS_LAMBDA_LOG_LEVEL",  # set by Lambda from LoggingConfig.ApplicationLogLevel
    "RUST_LOG",  # fallback when AWS_LAMBDA_LOG_LEVEL is absent
}
FUNCTIONS = {
    "ReaperFunction": "reaper",
    "LockMetricsFunction": "lock-metrics",
    "ForceUnlockFunction": "force-unlock",
}


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
READ = re.compile(
    r'(?:\.required|\.parsed|\.list|\.get|env::var|duration_var\(\s*env,)\s*\(?\s*'
    r'(?:"([A-Z][A-Z0-9_]{2,})"|(?:Self::|[A-Za-z_]+::)?([A-Z][A-Z0-9_]{2,})\b)'
)


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
        for logical, crate in FUNCTIONS.items():
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
        for logical, crate in FUNCTIONS.items():
            with self.subTest(function=crate):
                own = env_reads(rust_sources(f"functions/{crate}/src"))
                extra = set(self.env_of(logical)) - (own | (everything if crate == "reaper" else set()))
                self.assertFalse(extra, f"template sets {sorted(extra)} for {crate}, which its code never reads")

    def test_comment_block_lists_every_variable(self):
        text = TEMPLATE_PATH.read_text()
        header = text.split("Metadata:")[0]
        for logical in FUNCTIONS:
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
        for logical, crate in FUNCTIONS.items():
            with self.subTest(function=crate):
                fn = self.res[logical]
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

    def test_chat_command_fits_chatbot_limit_everywhere(self):
        action = self.res["ApproveUnlockAction"]["Properties"]
        sub = action["Definition"]["CommandText"]["Fn::Sub"]
        longest_topic = "x" * int(re.search(r"\{1,(\d+)\}", self.params["ApprovalTopicName"]["AllowedPattern"]).group(1))
        # Chatbot custom actions exist in the `aws` partition only (their ARN pattern says so);
        # the longest region names there have 14 characters (ap-southeast-1, ap-northeast-3, ...).
        arn = f"arn:aws:sns:ap-southeast-5:123456789012:{longest_topic}"
        command = sub.replace("${ApprovalTopic}", arn)
        self.assertLessEqual(len(command), 100, command)
        self.assertEqual(command, f"sns publish --topic-arn {arn} --message $token")
        self.assertEqual(self.t["Outputs"]["ChatApproveCommand"]["Value"]["Fn::Sub"], sub)

    def test_chat_button_matches_the_rust_constants(self):
        alert_rs = (ROOT / "shared/core/src/alert.rs").read_text()
        key = re.search(r'APPROVAL_TOKEN_KEY: &str = "(\w+)"', alert_rs).group(1)
        button = re.search(r'APPROVE_BUTTON: &str = "([^"]+)"', alert_rs).group(1)
        attachment = self.res["ApproveUnlockAction"]["Properties"]["Attachments"][0]
        self.assertEqual(attachment["ButtonText"], button)
        self.assertEqual(attachment["Variables"], {"token": f"$.metadata.additionalContext.{key}"})
        self.assertEqual(attachment["Criteria"], [{"Operator": "HAS_VALUE", "VariableName": "token"}])
        for logical in ("ChatApprovePolicy", "ChatRole", "ApproveUnlockAction", "SlackChannel"):
            self.assertEqual(self.res[logical].get("Condition"), "HasSlack", logical)
        chat_policy = statements(self.res["ChatApprovePolicy"]["Properties"]["PolicyDocument"])
        self.assertEqual([(s["Action"], s["Resource"]) for s in chat_policy], [("sns:Publish", {"Ref": "ApprovalTopic"})])
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
                    if "s3:DeleteObject" in deletes:
                        arns = [x for x in strings_in(s["Resource"]) if x.startswith("arn:")]
                        self.assertTrue(arns and all(a.endswith("*.tflock") for a in arns), arns)

    def test_wildcard_resources_only_where_aws_allows_nothing_else(self):
        allowed = {"cloudwatch:PutMetricData", "dynamodb:ListStreams"}
        for logical, stmts in self.role_statements().items():
            for s in stmts:
                if s.get("Resource") == "*":
                    with self.subTest(role=logical, sid=s.get("Sid")):
                        self.assertTrue(set(self.actions(s)) <= allowed, s)
                        if "cloudwatch:PutMetricData" in self.actions(s):
                            self.assertEqual(
                                s["Condition"], {"StringEquals": {"cloudwatch:namespace": {"Ref": "MetricsNamespace"}}}
                            )

    def test_each_role_logs_only_to_its_own_group(self):
        for role, group in (("ReaperRole", "ReaperLogGroup"), ("LockMetricsRole", "LockMetricsLogGroup"), ("ForceUnlockRole", "ForceUnlockLogGroup")):
            logs = [s for s in self.role_statements()[role] if any(a.startswith("logs:") for a in self.actions(s))]
            self.assertEqual([s["Resource"] for s in logs], [{"Fn::GetAtt": [group, "Arn"]}])
            self.assertNotIn("logs:CreateLogGroup", [a for s in logs for a in self.actions(s)])

    # ---------------------------------------------------------------- slots

    def test_list_parameters_admit_at_most_five_entries(self):
        samples = {
            "LockTables": "tf-locks",
            "StateBuckets": "acme-tfstate",
            "LockTableStreamArns": "arn:aws:dynamodb:eu-west-1:123456789012:table/tf-locks/stream/2026-11-23T19:38:34.588",
        }
        for name, one in samples.items():
            with self.subTest(parameter=name):
                pattern = re.compile(self.params[name]["AllowedPattern"])
                self.assertTrue(pattern.fullmatch(""))
                self.assertTrue(pattern.fullmatch(",".join([one] * SLOTS)))
                self.assertFalse(pattern.fullmatch(",".join([one] * (SLOTS + 1))))
                self.assertFalse(pattern.fullmatch(f"{one}, {one}"))
        conditions = self.t["Conditions"]
        for prefix in ("HasLockTable", "HasStateBucket", "HasStream"):
            self.assertEqual(sorted(c for c in conditions if re.fullmatch(rf"{prefix}\d", c)), [f"{prefix}{i}" for i in range(1, SLOTS + 1)])
        self.assertEqual(sorted(k for k in self.res if k.startswith("LockStreamMapping")), [f"LockStreamMapping{i}" for i in range(1, SLOTS + 1)])

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
        ledger_rs = (ROOT / "shared/aws/src/ledger.rs").read_text()
        for const, attr in (("PK", "pk"), ("SK", "sk"), ("EXPIRES_AT", "expires_at")):
            self.assertIn(f'pub const {const}: &str = "{attr}";', ledger_rs)
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

    def test_alarms(self):
        silent = self.res["ReaperSilentAlarm"]["Properties"]
        self.assertEqual(silent["TreatMissingData"], "breaching")
        oldest = self.res["OldestLockAgeAlarm"]["Properties"]
        self.assertEqual(oldest["Threshold"], {"Fn::FindInMap": ["ExpireAfterSeconds", {"Ref": "ExpireAfter"}, "Seconds"]})
        self.assertIn("OldestLockAgeSeconds", json.dumps(oldest["Metrics"]))
        reaper_rs = (ROOT / "functions/reaper/src/lib.rs").read_text()
        self.assertIn('OLDEST_LOCK_AGE_SECONDS: &str = "OldestLockAgeSeconds"', reaper_rs)
        self.assertIn('SWEEP_ERRORS: &str = "SweepErrors"', reaper_rs)
        errors = {r["Properties"]["Dimensions"][0]["Value"]["Ref"] for r in self.res.values() if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("MetricName") == "Errors"}
        self.assertEqual(errors, set(FUNCTIONS))
        queues = {r["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for r in self.res.values() if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Namespace") == "AWS/SQS"}
        self.assertEqual(queues, {"StreamFailureQueue", "UnlockFailureQueue"})


if __name__ == "__main__":
    unittest.main()
