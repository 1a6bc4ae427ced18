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
WITH_SLACK = PARAMETER_SETS["five of each, prefix, auto-expire, Slack, publishers"]
DEFAULTS = PARAMETER_SETS["one table, one bucket, defaults"]
FUNCTIONS = ("ReaperFunction", "LockMetricsFunction", "ForceUnlockFunction")


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
                for fn in FUNCTIONS:
                    props = r.value(self.t["Resources"][fn]["Properties"])
                    self.assertEqual(
                        props["VpcConfig"],
                        {"SubnetIds": SUBNETS.split(","), "SecurityGroupIds": SECURITY_GROUPS.split(",")},
                        fn,
                    )
                roles = effective(self.t, {**base, "SubnetIds": SUBNETS, "SecurityGroupIds": SECURITY_GROUPS})["roles"]
                for logical in ("ReaperRole", "LockMetricsRole", "ForceUnlockRole"):
                    ec2 = sorted(g for g in roles[logical] if " ec2:" in g)
                    self.assertEqual(ec2, sorted(f"Allow {a} * {{}}" for a in VPC_ENI_ACTIONS), logical)
                self.assertFalse([g for g in roles.get("ChatRole", []) if " ec2:" in g])
            with self.subTest(parameters=name, vpc=False):
                r = self.resolver(base)
                for fn in FUNCTIONS:
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
            self.assertIn(needed, section)

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
            },
        )
        for name in names.values():
            self.assertLessEqual(len(name), 64, name)  # IAM's limit for a role name

    def test_named_roles_are_documented_with_their_capability(self):
        readme = (ROOT / "infra/sam/README.md").read_text()
        self.assertIn("CAPABILITY_NAMED_IAM", readme)
        self.assertIn("RoleNamePrefix", readme)

    def test_every_role_arn_is_an_output(self):
        outputs = self.t["Outputs"]
        for logical, v in self.t["Resources"].items():
            if v["Type"] != "AWS::IAM::Role":
                continue
            with self.subTest(role=logical):
                matching = [o for o in outputs.values() if o["Value"] == {"Fn::GetAtt": [logical, "Arn"]}]
                self.assertEqual(len(matching), 1)
                self.assertEqual(matching[0].get("Condition"), v.get("Condition"))


if __name__ == "__main__":
    unittest.main()
