#!/usr/bin/env python3
"""The organization guardrails of template.yaml, resolved per parameter set as CloudFormation would
(test_effective_permissions.Resolver): the permissions boundary on every role, the optional VPC
configuration and its ENI permissions, deterministic role names, and the roles' ARNs as outputs.

Run by `make validate`; alone: infra/.venv-deploy/bin/python -m unittest infra/sam/test_guardrails.py
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_effective_permissions import PARAMETER_SETS, Resolver, effective, load_template  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# The EC2 actions of the AWS managed policy AWSLambdaVPCAccessExecutionRole, v3 (edited 2024-01-05):
# docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaVPCAccessExecutionRole.html.
# Its logs actions are left out on purpose: each role already writes to its own log group.
VPC_ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)

BOUNDARY = "arn:aws:iam::123456789012:policy/org/lambda-boundary"
SUBNETS = "subnet-0a1b2c3d4e5f60718,subnet-0f1e2d3c4b5a69788"
SECURITY_GROUPS = "sg-0123456789abcdef0"
WITH_SLACK = PARAMETER_SETS["five of each, prefix, auto-expire, Slack, Slack app, publishers"]
DEFAULTS = PARAMETER_SETS["one table, one bucket, defaults"]
FUNCTIONS = ("ReaperFunction", "LockMetricsFunction", "ForceUnlockFunction")
SLACK_APP_FUNCTIONS = ("SlackNotifierFunction", "SlackInteractionsFunction")


def roles_of(template: dict, r: Resolver) -> dict[str, dict]:
    return {
        k: r.value(v["Properties"])
        for k, v in template["Resources"].items()
        if v["Type"] == "AWS::IAM::Role" and r.present(k)
    }


class Guardrails(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.t = load_template()

    def resolver(self, base: dict, **extra: str) -> Resolver:
        return Resolver(self.t, {**base, **extra})

    # ---------------------------------------------------------------- permissions boundary

    def test_every_role_the_stack_creates_carries_the_boundary(self):
        for name, base in PARAMETER_SETS.items():
            with self.subTest(parameters=name):
                roles = roles_of(self.t, self.resolver(base, PermissionsBoundary=BOUNDARY))
                self.assertTrue(roles)
                for logical, props in roles.items():
                    self.assertEqual(props.get("PermissionsBoundary"), BOUNDARY, logical)
        roles = roles_of(self.t, self.resolver(WITH_SLACK, PermissionsBoundary=BOUNDARY))
        self.assertIn("ChatRole", roles)  # the chat role too, not only the functions'

    def test_no_boundary_by_default(self):
        for logical, props in roles_of(self.t, self.resolver(WITH_SLACK)).items():
            self.assertNotIn("PermissionsBoundary", props, logical)

    def test_sam_creates_no_role_of_its_own(self):
        # A Serverless::Function without `Role` gets a SAM-generated role, which would carry no
        # boundary (and no prefix name); every function names its own role.
        for logical, v in self.t["Resources"].items():
            if v["Type"] == "AWS::Serverless::Function":
                self.assertIn("Role", v["Properties"], logical)
        self.assertNotIn("PermissionsBoundary", self.t.get("Globals", {}).get("Function", {}))

    def test_boundary_parameter_accepts_only_a_policy_arn(self):
        import re

        pattern = re.compile(self.t["Parameters"]["PermissionsBoundary"]["AllowedPattern"])
        for ok in ("", BOUNDARY, "arn:aws-us-gov:iam::123456789012:policy/Boundary"):
            self.assertTrue(pattern.fullmatch(ok), ok)
        for bad in ("Boundary", "arn:aws:iam::123456789012:role/x", "arn:aws:iam::aws:policy/AdministratorAccess,x"):
            self.assertFalse(pattern.fullmatch(bad), bad)

    # ---------------------------------------------------------------- VPC

    def test_vpc_config_and_eni_permissions_only_with_subnets(self):
        for name, base in PARAMETER_SETS.items():
            with self.subTest(parameters=name, vpc=True):
                r = self.resolver(base, SubnetIds=SUBNETS, SecurityGroupIds=SECURITY_GROUPS)
                for fn in [f for f in FUNCTIONS + SLACK_APP_FUNCTIONS if r.present(f)]:
                    props = r.value(self.t["Resources"][fn]["Properties"])
                    self.assertEqual(
                        props["VpcConfig"],
                        {"SubnetIds": SUBNETS.split(","), "SecurityGroupIds": SECURITY_GROUPS.split(",")},
                        fn,
                    )
                roles = effective(self.t, {**base, "SubnetIds": SUBNETS, "SecurityGroupIds": SECURITY_GROUPS})["roles"]
                for logical in [k for k in roles if k != "ChatRole"]:
                    ec2 = sorted(g for g in roles[logical] if " ec2:" in g)
                    self.assertEqual(ec2, sorted(f"Allow {a} * {{}}" for a in VPC_ENI_ACTIONS), logical)
                self.assertFalse([g for g in roles.get("ChatRole", []) if " ec2:" in g])
            with self.subTest(parameters=name, vpc=False):
                r = self.resolver(base)
                for fn in [f for f in FUNCTIONS + SLACK_APP_FUNCTIONS if r.present(f)]:
                    self.assertNotIn("VpcConfig", r.value(self.t["Resources"][fn]["Properties"]), fn)
                for logical, grants in effective(self.t, base)["roles"].items():
                    self.assertFalse([g for g in grants if " ec2:" in g], logical)

    def test_vpc_needs_both_lists(self):
        from test_template import rule_value  # here, not at the top: test_template imports this module

        params = self.t["Parameters"]
        (assertion,) = self.t["Rules"]["VpcNeedsSubnetsAndSecurityGroups"]["Assertions"]
        cases = {
            (SUBNETS, SECURITY_GROUPS): True,
            ("", ""): True,
            (SUBNETS, ""): False,
            ("", SECURITY_GROUPS): False,
        }
        for (subnets, groups), accepted in cases.items():
            values = {"SubnetIds": subnets, "SecurityGroupIds": groups}
            with self.subTest(**values):
                self.assertEqual(rule_value(assertion["Assert"], values, params), accepted)

    def test_readme_names_the_endpoints_a_vpc_needs(self):
        readme = (ROOT / "infra/sam/README.md").read_text()
        section = readme.split("### Running in a VPC")[1].split("\n## ")[0]
        for needed in ("dynamodb", "s3", "sns", "secretsmanager", "monitoring", "NAT", "Gateway", "Interface"):
            self.assertTrue(needed in section, "missing from infra/sam/README.md: " + repr(needed))

    # ---------------------------------------------------------------- role names and ARNs

    def test_role_names_generated_unless_a_prefix_is_given(self):
        for logical, props in roles_of(self.t, self.resolver(WITH_SLACK)).items():
            self.assertNotIn("RoleName", props, logical)
        prefix = "p" * 50  # the longest the parameter admits
        names = {k: v["RoleName"] for k, v in roles_of(self.t, self.resolver(WITH_SLACK, RoleNamePrefix=prefix)).items()}
        self.assertEqual(
            names,
            {
                "ReaperRole": f"{prefix}-reaper",
                "LockMetricsRole": f"{prefix}-lock-metrics",
                "ForceUnlockRole": f"{prefix}-force-unlock",
                "ChatRole": f"{prefix}-chat",
                "SlackNotifierRole": f"{prefix}-slack-notify",
                "SlackInteractionsRole": f"{prefix}-slack-press",
            },
        )
        for name in names.values():
            self.assertLessEqual(len(name), 64, name)  # IAM's limit for a role name

    def test_named_roles_are_documented_with_their_capability(self):
        readme = (ROOT / "infra/sam/README.md").read_text()
        self.assertTrue("CAPABILITY_NAMED_IAM" in readme, "missing from infra/sam/README.md: " + repr("CAPABILITY_NAMED_IAM"))
        self.assertTrue("RoleNamePrefix" in readme, "missing from infra/sam/README.md: " + repr("RoleNamePrefix"))

    def test_every_role_arn_is_an_output(self):
        outputs = self.t["Outputs"]
        for logical, v in self.t["Resources"].items():
            if v["Type"] != "AWS::IAM::Role":
                continue
            with self.subTest(role=logical):
                matching = [o for o in outputs.values() if o["Value"] == {"Fn::GetAtt": [logical, "Arn"]}]
                self.assertEqual(len(matching), 1)
                self.assertEqual(matching[0].get("Condition"), v.get("Condition"))


# ---------------------------------------------------------------- customer-managed KMS keys

LOCK_KEYS = [f"arn:aws:kms:eu-west-1:123456789012:key/1111111{i}-aaaa-bbbb-cccc-000000000000" for i in (1, 2)]
BUCKET_KEY = "arn:aws:kms:eu-west-1:123456789012:key/22222222-aaaa-bbbb-cccc-000000000000"
TOPIC_KEY = "arn:aws:kms:eu-west-1:123456789012:key/33333333-aaaa-bbbb-cccc-000000000000"
LEDGER_KEY = "arn:aws:kms:eu-west-1:123456789012:key/44444444-aaaa-bbbb-cccc-000000000000"
KEYS = {
    "LockTableKmsKeyArns": ",".join(LOCK_KEYS),
    "StateBucketKmsKeyArns": BUCKET_KEY,
    "TopicKmsKeyArn": TOPIC_KEY,
    "LedgerKmsKeyArn": LEDGER_KEY,
}


def via(service: str) -> str:
    return '{"StringEquals": {"kms:ViaService": "%s.eu-west-1.amazonaws.com"}}' % service


def decrypt(keys: list[str], service: str) -> set[str]:
    return {f"Allow kms:Decrypt {k} {via(service)}" for k in keys}


PUBLISH = {f"Allow {a} {TOPIC_KEY} {via('sns')}" for a in ("kms:GenerateDataKey*", "kms:Decrypt")}
# Exactly what each role may do with each key (reads: Decrypt; publishing to an encrypted topic:
# GenerateDataKey* + Decrypt; nobody Encrypts, nobody touches a key outside its service).
EXPECTED_KMS = {
    "ReaperRole": decrypt(LOCK_KEYS, "dynamodb") | decrypt([BUCKET_KEY], "s3") | decrypt([LEDGER_KEY], "dynamodb") | PUBLISH,
    "ForceUnlockRole": decrypt(LOCK_KEYS, "dynamodb") | decrypt([BUCKET_KEY], "s3") | decrypt([LEDGER_KEY], "dynamodb") | PUBLISH,
    "LockMetricsRole": decrypt(LOCK_KEYS, "dynamodb") | decrypt([LEDGER_KEY], "dynamodb"),
    "ChatRole": PUBLISH,
    # the Slack app mode: the notifier reads and writes the ledger; the endpoint publishes approvals
    "SlackNotifierRole": decrypt([LEDGER_KEY], "dynamodb"),
    "SlackInteractionsRole": PUBLISH,
}


class CustomerManagedKeys(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.t = load_template()

    def test_each_role_gets_exactly_its_key_grants(self):
        for name, base in PARAMETER_SETS.items():
            with self.subTest(parameters=name):
                roles = effective(self.t, {**base, **KEYS})["roles"]
                for logical, grants in roles.items():
                    kms = {g for g in grants if " kms:" in g}
                    self.assertEqual(kms, EXPECTED_KMS[logical], logical)

    def test_no_key_grant_without_a_key(self):
        for name, base in PARAMETER_SETS.items():
            with self.subTest(parameters=name):
                for logical, grants in effective(self.t, base)["roles"].items():
                    self.assertFalse([g for g in grants if " kms:" in g], logical)

    def test_each_key_parameter_grants_only_its_own_key(self):
        for parameter, value in KEYS.items():
            with self.subTest(parameter=parameter):
                roles = effective(self.t, {**WITH_SLACK, parameter: value})["roles"]
                keys = set(value.split(","))
                for logical, grants in roles.items():
                    for g in (g for g in grants if " kms:" in g):
                        self.assertIn(g.split()[2], keys, f"{logical}: {g}")

    def test_topics_and_ledger_use_the_keys(self):
        r = Resolver(self.t, {**DEFAULTS, **KEYS})
        for topic in ("AlertTopic", "ApprovalTopic"):
            self.assertEqual(r.value(self.t["Resources"][topic]["Properties"])["KmsMasterKeyId"], TOPIC_KEY)
        sse = r.value(self.t["Resources"]["LedgerTable"]["Properties"])["SSESpecification"]
        self.assertEqual(sse, {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": LEDGER_KEY})
        r = Resolver(self.t, DEFAULTS)
        for topic in ("AlertTopic", "ApprovalTopic"):
            self.assertNotIn("KmsMasterKeyId", r.value(self.t["Resources"][topic]["Properties"]))
        self.assertEqual(r.value(self.t["Resources"]["LedgerTable"]["Properties"])["SSESpecification"], {"SSEEnabled": True})

    def test_key_parameters_take_key_arns_not_aliases(self):
        import re

        for parameter in KEYS:
            pattern = re.compile(self.t["Parameters"][parameter]["AllowedPattern"])
            with self.subTest(parameter=parameter):
                self.assertTrue(pattern.fullmatch(""))
                self.assertTrue(pattern.fullmatch(LOCK_KEYS[0]))
                self.assertFalse(pattern.fullmatch("arn:aws:kms:eu-west-1:123456789012:alias/tf-state"))
                self.assertFalse(pattern.fullmatch("alias/tf-state"))
        self.assertTrue(re.fullmatch(self.t["Parameters"]["LockTableKmsKeyArns"]["AllowedPattern"], KEYS["LockTableKmsKeyArns"]))
        self.assertFalse(re.fullmatch(self.t["Parameters"]["TopicKmsKeyArn"]["AllowedPattern"], KEYS["LockTableKmsKeyArns"]))

    def test_readme_gives_the_key_policy_statements(self):
        readme = (ROOT / "infra/sam/README.md").read_text()
        section = readme.split("### Customer-managed KMS keys")[1].split("\n## ")[0]
        for needed in (
            "cloudwatch.amazonaws.com",  # alarms publish to the encrypted alert topic
            "ChatRoleArn",  # the chat role publishes approvals
            "ApprovalPublisherArns",
            "kms:ViaService",
            "kms:GenerateDataKey*",
            "ReaperRoleArn",
            "ForceUnlockRoleArn",
            "LockMetricsRoleArn",
            "alias/aws/sns",
        ):
            self.assertTrue(needed in section, "missing from infra/sam/README.md: " + repr(needed))


# ---------------------------------------------------------------- the kill switch


class KillSwitch(unittest.TestCase):
    """UnlocksPaused=true: no role may delete a lock item or a lock file, whatever else is set."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.t = load_template()

    @staticmethod
    def deletes_of_locks(grants: list[str]) -> list[str]:
        out = []
        for g in grants:
            _, action, resource = g.split()[:3]
            if "*" in action.split(":")[1] and action != "kms:GenerateDataKey*":
                out.append(g)  # a wildcard action could include a delete
            elif action.split(":")[1].startswith("Delete"):
                if action == "dynamodb:DeleteItem" and resource == "<LedgerTable.Arn>":
                    continue  # lockreaper's own bookkeeping (proposals, markers), not a lock
                if action == "ec2:DeleteNetworkInterface":
                    continue  # the functions' own network interfaces in a VPC
                out.append(g)
        return out

    def test_paused_no_role_may_delete_a_lock(self):
        for name, base in PARAMETER_SETS.items():
            for extra in ({}, {"SubnetIds": SUBNETS, "SecurityGroupIds": SECURITY_GROUPS, **KEYS}):
                with self.subTest(parameters=name, more=sorted(extra)):
                    roles = effective(self.t, {**base, **extra, "UnlocksPaused": "true"})["roles"]
                    for logical, grants in roles.items():
                        self.assertEqual(self.deletes_of_locks(grants), [], logical)

    def test_the_check_sees_the_deletes_when_not_paused(self):
        # guards the test above: the same check finds force-unlock's and the auto-expiring reaper's
        # deletes in the same parameter sets when unpaused
        five = effective(self.t, WITH_SLACK)["roles"]
        self.assertEqual(len(self.deletes_of_locks(five["ForceUnlockRole"])), 10)  # 5 tables + 5 buckets
        self.assertEqual(len(self.deletes_of_locks(five["ReaperRole"])), 10)  # AutoExpire=true

    def test_pausing_removes_the_deletes_and_nothing_else(self):
        for name, base in PARAMETER_SETS.items():
            with self.subTest(parameters=name):
                running = effective(self.t, base)
                paused = effective(self.t, {**base, "UnlocksPaused": "true"})
                self.assertEqual(running["resources"], paused["resources"])
                for logical, grants in running["roles"].items():
                    removed = set(grants) - set(paused["roles"][logical])
                    self.assertEqual(set(paused["roles"][logical]) - set(grants), set(), logical)
                    self.assertEqual(removed, set(self.deletes_of_locks(grants)), logical)

    def test_the_functions_are_told(self):
        for paused in ("true", "false"):
            r = Resolver(self.t, {**DEFAULTS, "UnlocksPaused": paused})
            for fn in ("ReaperFunction", "ForceUnlockFunction"):
                env = r.value(self.t["Resources"][fn]["Properties"]["Environment"]["Variables"])
                self.assertEqual(env["UNLOCKS_PAUSED"], paused, fn)
        self.assertEqual(self.t["Parameters"]["UnlocksPaused"]["Default"], "false")

    def test_readme_runbook_starts_with_the_kill_switch(self):
        readme = (ROOT / "infra/sam/README.md").read_text()
        section = readme.split("## Something went wrong")[1].split("\n## ")[0]
        first_step = section.split("\n1. ")[1].split("\n2. ")[0]
        self.assertIn("UnlocksPaused=true", first_step)
        self.assertTrue("UNLOCKS_PAUSED" in readme, "missing from infra/sam/README.md: " + repr("UNLOCKS_PAUSED"))  # the next step (the functions reading it) is noted


# ---------------------------------------------------------------- the deployer policy

DEPLOYER_POLICY = ROOT / "infra/sam/deployer-policy.json"
PLACEHOLDERS = {
    "REGION": "eu-west-1",
    "ACCOUNT": "123456789012",
    "ARTIFACT_BUCKET": "aws-sam-cli-managed-default-samclisourcebucket-abc",
    "APPROVAL_TOPIC_NAME": "lockreaper-ok",  # the default `<stack name>-ok` for STACK
    "ROLE_PREFIX": "lockreaper",
    "STACK": "lockreaper",
}

# What `sam deploy` itself calls besides CloudFormation's resource handlers (the change set, the
# artefact upload, passing the roles to their services).
SAM_DEPLOY_ACTIONS = {
    "cloudformation:CreateChangeSet", "cloudformation:DeleteChangeSet", "cloudformation:DeleteStack",
    "cloudformation:DescribeChangeSet", "cloudformation:DescribeStackEvents",
    "cloudformation:DescribeStackResource", "cloudformation:DescribeStackResources",
    "cloudformation:DescribeStacks", "cloudformation:ExecuteChangeSet", "cloudformation:GetTemplate",
    "cloudformation:GetTemplateSummary", "cloudformation:ListStackResources",
    "cloudformation:UpdateStack", "cloudformation:ValidateTemplate",
    "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket", "s3:PutObject",
}

# Handler permissions (create, update, delete) the policy leaves out, each because the template does
# not use the feature it serves. A property the template starts to use shows up here as missing.
UNUSED_FEATURES = {
    "AWS::DynamoDB::Table": {
        "replicas (global tables)": ["dynamodb:AssociateTableReplica", "dynamodb:CreateTableReplica"],
        "ImportSourceSpecification (import from S3)": [
            "dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:DescribeImport", "dynamodb:GetItem",
            "dynamodb:ImportTable", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan",
            "dynamodb:UpdateItem", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents",
            "s3:GetObjectMetadata",
        ],
        "ResourcePolicy": ["dynamodb:DeleteResourcePolicy", "dynamodb:PutResourcePolicy"],
        "KinesisStreamSpecification": [
            "dynamodb:DisableKinesisStreamingDestination", "dynamodb:EnableKinesisStreamingDestination",
            "dynamodb:UpdateKinesisStreamingDestination", "kinesis:DescribeStream", "kinesis:PutRecords",
        ],
        "ContributorInsightsSpecification": ["dynamodb:UpdateContributorInsights"],
        "a key alias (LedgerKmsKeyArn takes a key ARN)": ["kms:ListAliases"],
    },
    "AWS::IAM::ManagedPolicy": {
        "Groups, Users (the chat policy attaches to a role)": [
            "iam:AttachGroupPolicy", "iam:AttachUserPolicy", "iam:DetachGroupPolicy", "iam:DetachUserPolicy",
        ],
    },
    "AWS::IAM::Policy": {
        "Groups, Users (the auto-expire policy attaches to a role)": [
            "iam:DeleteGroupPolicy", "iam:DeleteUserPolicy", "iam:GetGroupPolicy", "iam:GetUserPolicy",
            "iam:PutGroupPolicy", "iam:PutUserPolicy",
        ],
    },
    "AWS::Lambda::Function": {
        "FileSystemConfigs": ["elasticfilesystem:DescribeMountTargets", "s3files:ListMountTargets"],
        "RuntimeManagementConfig, RecursiveLoop": [
            "lambda:PutRuntimeManagementConfig", "lambda:PutFunctionRecursionConfig", "lambda:AssociateRuntimeAlias",
        ],
        "CodeSigningConfigArn": [
            "lambda:DeleteFunctionCodeSigningConfig", "lambda:GetCodeSigningConfig", "lambda:PutFunctionCodeSigningConfig",
        ],
        "Layers": ["lambda:GetLayerVersion"],
        "capacity providers": ["lambda:PassCapacityProvider", "lambda:PutFunctionScalingConfig"],
        "Code.S3ObjectVersion (sam deploy uploads a new key per build)": ["s3:GetObjectVersion"],
    },
    "AWS::Logs::LogGroup": {
        "KmsKeyId": ["logs:AssociateKmsKey", "logs:DisassociateKmsKey"],
        "DataProtectionPolicy, FieldIndexPolicies, ResourcePolicyDocument, DeletionProtection, BearerTokenAuthentication": [
            "logs:DeleteDataProtectionPolicy", "logs:DeleteIndexPolicy", "logs:DeleteResourcePolicy",
            "logs:PutDataProtectionPolicy", "logs:PutIndexPolicy", "logs:PutResourcePolicy",
            "logs:PutLogGroupDeletionProtection", "logs:PutBearerTokenAuthentication",
        ],
        "log delivery to Firehose or S3": ["firehose:TagDeliveryStream", "logs:CreateLogDelivery", "s3:REST.PUT.OBJECT"],
    },
    "AWS::SNS::Topic": {"DataProtectionPolicy": ["sns:PutDataProtectionPolicy"]},
    "AWS::SecretsManager::Secret": {
        "ReplicaRegions": ["secretsmanager:RemoveRegionsFromReplication", "secretsmanager:ReplicateSecretToRegions"],
    },
}

# Statements on "*": actions without resource-level permissions, or scoped by a condition instead.
UNSCOPED = {
    "TemplateChecks": "ValidateTemplate and GetTemplateSummary of a template not yet a stack take no resource",
    "StreamMappings": "event source mappings are created before they have an ARN; scoped by lambda:FunctionArn",
    "FunctionsInAVpc": "EC2 Describe* actions have no resource-level permissions",
    "LogResourcePolicies": "DescribeResourcePolicies has no resource-level permissions",
    "GenerateTheSigningKey": "GetRandomPassword takes no resource",
    "ChatChannelAndButtons": "the Chatbot configuration and custom action ARNs are global and generated",
}


def resource_schemas() -> dict[str, dict]:
    """CloudFormation's registry schemas (shipped with cfn-lint), by resource type."""
    import json

    import cfnlint

    base = Path(cfnlint.__file__).parent / "data/schemas"
    provider = json.loads((base / "providers/us-east-1.json").read_text())
    return {t: base / f"resources/{h}.json" for t, h in provider.items()}


def deployed_resource_types(template: dict) -> set[str]:
    """The resource types `sam deploy` creates: the template after the SAM transform (offline),
    every resource whatever its condition."""
    import copy
    import json
    import os

    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self):
            return {}

    t = copy.deepcopy(json.loads(json.dumps(template, default=str)))
    for r in t["Resources"].values():
        if r["Type"] == "AWS::Serverless::Function":
            r["Properties"]["CodeUri"] = "s3://artefacts/code.zip"  # what `sam package` writes
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    out = transform(t, {}, NoManagedPolicies())
    return {r["Type"] for r in out["Resources"].values()}


class DeployerPolicy(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        import json

        cls.t = load_template()
        text = DEPLOYER_POLICY.read_text()
        for placeholder, value in PLACEHOLDERS.items():
            text = text.replace(placeholder, value)
        cls.policy = json.loads(text)
        cls.actions = {a for s in cls.policy["Statement"] for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
        cls.types = deployed_resource_types(cls.t)
        schemas = resource_schemas()
        cls.handler_permissions = {}  # what create, update and delete need: required
        cls.read_permissions = {}  # what the read handler needs (drift detection): allowed
        for t in cls.types:
            handlers = json.loads(schemas[t].read_text()).get("handlers", {})
            cls.handler_permissions[t] = {p for k in ("create", "update", "delete") for p in handlers.get(k, {}).get("permissions", [])}
            cls.read_permissions[t] = set(handlers.get("read", {}).get("permissions", []))

    def allowed(self, action: str) -> bool:
        import fnmatch

        return any(fnmatch.fnmatchcase(action, a) for a in self.actions)

    def test_transform_sees_every_kind_of_resource(self):
        # guards the check below: the SAM-generated types are there, and the conditional chat ones
        self.assertGreaterEqual(
            self.types,
            {"AWS::Lambda::Function", "AWS::Lambda::Permission", "AWS::Events::Rule", "AWS::SNS::Subscription",
             "AWS::Lambda::EventInvokeConfig", "AWS::Lambda::EventSourceMapping", "AWS::Chatbot::CustomAction",
             "AWS::Chatbot::SlackChannelConfiguration", "AWS::IAM::Role", "AWS::DynamoDB::Table"},
        )

    def test_every_resource_type_is_covered(self):
        for t in sorted(self.types):
            unused = {a for actions in UNUSED_FEATURES.get(t, {}).values() for a in actions}
            with self.subTest(type=t):
                missing = sorted(p for p in self.handler_permissions[t] - unused if not self.allowed(p))
                self.assertEqual(missing, [], f"the deployer policy lacks what CloudFormation needs for {t}")
                # an exclusion must name something the handler really asks for
                self.assertLessEqual(unused, self.handler_permissions[t])

    def test_every_action_is_needed(self):
        needed = set(SAM_DEPLOY_ACTIONS).union(*self.handler_permissions.values(), *self.read_permissions.values())
        self.assertEqual(sorted(a for a in self.actions if a not in needed), [])
        self.assertNotIn("*", "".join(a for a in self.actions))  # no wildcard actions

    def test_scoped_to_the_stack_where_iam_allows(self):
        for s in self.policy["Statement"]:
            with self.subTest(sid=s["Sid"]):
                self.assertEqual(s["Effect"], "Allow")
                resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
                if "*" in resources:
                    self.assertIn(s["Sid"], UNSCOPED)
        self.assertEqual(
            {s["Sid"] for s in self.policy["Statement"] if "*" in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])},
            set(UNSCOPED),
        )

    def test_the_named_resources_fall_under_their_statements(self):
        import fnmatch

        r = Resolver(self.t, DEFAULTS)
        by_sid = {s["Sid"]: s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]] for s in self.policy["Statement"]}
        region, account = PLACEHOLDERS["REGION"], PLACEHOLDERS["ACCOUNT"]
        named = {
            "Functions": [
                f"arn:aws:lambda:{region}:{account}:function:{r.value(self.t['Resources'][f]['Properties']['FunctionName'])}"
                for f in ("ReaperFunction", "LockMetricsFunction", "ForceUnlockFunction", "SlackNotifierFunction", "SlackInteractionsFunction")
            ],
            "LogGroups": [
                f"arn:aws:logs:{region}:{account}:log-group:{r.value(self.t['Resources'][g]['Properties']['LogGroupName'])}"
                for g in ("ReaperLogGroup", "LockMetricsLogGroup", "ForceUnlockLogGroup", "SlackNotifierLogGroup", "SlackInteractionsLogGroup")
            ],
            "TopicsAndSubscriptions": [f"arn:aws:sns:{region}:{account}:{r.value(self.t['Resources']['ApprovalTopic']['Properties']['TopicName'])}"],
            "AlarmsAndDashboard": [
                f"arn:aws:cloudwatch::{account}:dashboard/"
                + r.value(self.t["Resources"]["Dashboard"]["Properties"]["DashboardName"]).replace("eu-west-1", region)
            ],
        }
        for sid, arns in named.items():
            for arn in arns:
                with self.subTest(sid=sid, arn=arn):
                    self.assertTrue(any(fnmatch.fnmatchcase(arn, pattern) for pattern in by_sid[sid]), by_sid[sid])

    def test_readme_points_at_the_policy(self):
        readme = (ROOT / "infra/sam/README.md").read_text()
        self.assertTrue("infra/sam/deployer-policy.json" in readme, "missing from infra/sam/README.md: " + repr("infra/sam/deployer-policy.json"))
        for placeholder in PLACEHOLDERS:
            self.assertTrue(f"`{placeholder}`" in readme, "missing from infra/sam/README.md: " + repr(f"`{placeholder}`"))


if __name__ == "__main__":
    unittest.main()
