#!/usr/bin/env python3
"""infra/sam/template_gen.py: the markers expand as documented, a mistake in the source is refused
with a message naming it, and the number of slots is a one-place change (the template generated
with another SLOTS passes cfn-lint and grants every slot). Run with the deploy venv's Python:

    infra/.venv-deploy/bin/python -m unittest infra/sam/test_template_gen.py
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

from cfnlint.api import lint
from cfnlint.decode import decode_str

sys.path.insert(0, str(Path(__file__).resolve().parent))
import template_gen  # noqa: E402
import test_effective_permissions  # noqa: E402

SLOTS = template_gen.SLOTS


def expand(source: str) -> list[str]:
    return template_gen.generate(source).splitlines()[len(template_gen.HEADER.splitlines()) :]


class Markers(unittest.TestCase):
    def test_slot_items_every_slot_conditional(self):
        out = expand("X:\n  # @slot-items StateBuckets: ${Bucket}/p\n")
        self.assertEqual(out[0], "X:")
        self.assertEqual(out.count("  - !If"), SLOTS)
        self.assertEqual(out.count("    - !Ref AWS::NoValue"), SLOTS)
        for n in range(1, SLOTS + 1):
            self.assertIn(f"    - HasStateBucket{n}", out)
            entry = f'!Select [{n - 1}, !Split [",", !Sub "${{StateBuckets}}{"," * (SLOTS - 1)}"]]'
            self.assertIn(f'      - Bucket: !Select [0, !Split ["/", {entry}]]', out)

    def test_a_bucket_entrys_scope_is_itself_or_takes_the_default_prefix(self):
        out = expand("X:\n  # @slot-items StateBuckets: ${Scope}* in ${Bucket}\n")
        entry = f'!Select [1, !Split [",", !Sub "${{StateBuckets}}{"," * (SLOTS - 1)}"]]'
        at = out.index("    - HasStateBucket2")
        self.assertEqual(
            out[at + 1 : at + 5],
            [
                "    - !Sub",
                "      - ${Scope}* in ${Bucket}",
                f'      - Bucket: !Select [0, !Split ["/", {entry}]]',
                f'        Scope: !If [StateBucketHasPrefix2, {entry}, !Sub ["${{Entry}}/${{StateKeyPrefix}}", {{Entry: {entry}}}]]',
            ],
        )

    def test_slot_items_given_first_leaves_slot_one_unconditional(self):
        out = expand("  # @slot-items-given-first LockTables: t/${Name}\n")
        self.assertEqual(out[:3], ["  - !Sub", "    - t/${Name}", f'    - Name: !Select [0, !Split [",", !Sub "${{LockTables}}{"," * (SLOTS - 1)}"]]'])
        self.assertNotIn("    - HasLockTable1", out)
        self.assertEqual(out.count("  - !If"), SLOTS - 1)

    def test_for_each_slot_repeats_the_block(self):
        out = expand("A:\n  # @for-each-slot LockTableStreamArns\n  M{{n}}: {{item}}\n  # @end\nB: 1\n")
        self.assertEqual(out[0], "A:")
        self.assertEqual(out[-1], "B: 1")
        self.assertEqual([l.split(":")[0] for l in out[1:-1]], [f"  M{n}" for n in range(1, SLOTS + 1)])

    def test_markers_inside_a_for_each_slot_block_are_expanded(self):
        out = expand("# @define body\n- x: 1\n# @end\n# @for-each-slot LockTables\nM{{n}}:\n  # @use body\n# @end\n")
        self.assertEqual(out, [line for n in range(1, SLOTS + 1) for line in (f"M{n}:", "  - x: 1")])

    def test_define_and_use_reindent_and_expand_inside(self):
        source = (
            "# @define blk\n- Sid: S\n  Resource:\n  # @slot-items-given-first LockTables: ${Name}\n# @end\n"
            "P:\n    # @use blk\nQ:\n        # @use blk\n"
        )
        out = expand(source)
        self.assertEqual(out[0], "P:")
        self.assertEqual(out[1:3], ["    - Sid: S", "      Resource:"])
        self.assertEqual(out[3], "      - !Sub")
        q = out.index("Q:")
        self.assertEqual(out[q + 1], "        - Sid: S")
        self.assertEqual(len(out[1:q]), len(out[q + 1 :]))

    def test_slot_count_placeholders_and_source_notes(self):
        self.assertEqual(expand("  ## only for the source\nP: '{0,{{SLOTS-1}}}' # {{SLOTS}}\n"), [f"P: '{{0,{SLOTS - 1}}}' # {SLOTS}"])

    def test_mistakes_are_refused_by_name(self):
        cases = {
            "  # @slot-items Tables: ${Name}\n": "unknown list 'Tables'",
            "  # @slot-items LockTables: ${Bucket}\n": "uses none of ${Name}",
            "  # @slot-items LockTables ${Name}\n": "expected `# @slot-items <List>: <form>`",
            "  # @for-each-slot LockTables\n  x: 1\n": "no `# @end`",
            "  # @for-each-slot LockTables\n  x: 1\n  # @end\n": "uses neither",
            "  # @use nothing\n": "`nothing` is not defined above",
            "# @define a\nx\n# @end\n": "defined but never used: a",
            "# @define a\nx\n# @end\n# @define a\ny\n# @end\n": "a block needs a new name",
            "  # @for-each-slot LockTables\n  # @define b\n  # @end\n": "blocks do not nest",
            "# @define a\n# @use a\n# @end\n# @use a\n": "blocks do not nest",
            "  x: {{n}}\n": "outside a `# @for-each-slot` block",
            "  # @slotitems LockTables: ${Name}\n": "unknown marker @slotitems",
        }
        for source, message in cases.items():
            with self.subTest(source=source):
                with self.assertRaises(template_gen.SourceError) as e:
                    template_gen.generate(source)
                self.assertIn(message, str(e.exception))


class TheRealSource(unittest.TestCase):
    def test_check_passes_on_the_committed_template_and_names_the_fix_when_stale(self):
        self.assertEqual(template_gen.TARGET.read_text(), template_gen.generate(template_gen.SOURCE.read_text()))
        with tempfile.TemporaryDirectory() as d:
            stale = Path(d) / "template.yaml"
            stale.write_text(template_gen.TARGET.read_text() + "# edited by hand\n")
            with mock.patch.object(template_gen, "TARGET", stale), mock.patch.object(sys, "argv", ["template_gen.py", "--check"]):
                with mock.patch("sys.stderr") as err:
                    self.assertEqual(template_gen.main(), 1)
            self.assertIn("run make template", "".join(c.args[0] for c in err.write.call_args_list))

    def test_another_slot_count_is_a_one_place_change(self):
        # SLOTS is the only place the number is written: with 7, the template is valid, admits 7
        # entries per list, and grants and wires all 7
        seven = 7
        with mock.patch.object(template_gen, "SLOTS", seven):
            text = template_gen.generate(template_gen.SOURCE.read_text())
        problems = [m for m in lint(text, regions=["us-east-1"]) if m.rule.id.startswith("E")]
        self.assertEqual(problems, [])
        template, matches = decode_str(text)
        self.assertFalse(matches)
        tables = [f"table-{i}" for i in range(seven)]
        buckets = [f"bucket-{i}" for i in range(seven)]
        result = test_effective_permissions.effective(
            template,
            {
                "LockTables": ",".join(tables),
                "LockTableStreamArns": ",".join(test_effective_permissions.stream(t) for t in tables),
                "StateBuckets": ",".join(buckets),
                "AutoExpire": "true",
            },
        )
        self.assertEqual(len(result["stream_mappings"]), seven)
        self.assertEqual(len(result["LOCK_BUCKETS"].split(",")), seven)
        for role in ("ReaperRole", "ForceUnlockRole"):
            with self.subTest(role=role):
                deletes = [g for g in result["roles"][role] if " dynamodb:DeleteItem arn:" in g]
                lock_files = [g for g in result["roles"][role] if " s3:DeleteObject " in g]
                self.assertEqual(len(deletes), seven)
                self.assertEqual(len(lock_files), seven)
        pattern = re.compile(template["Parameters"]["LockTables"]["AllowedPattern"])
        self.assertTrue(pattern.fullmatch(",".join(tables)))
        self.assertFalse(pattern.fullmatch(",".join(tables + ["table-x"])))


# IAM User Guide, "IAM and AWS STS quotas": "Role policy size cannot exceed 10,240 characters" (the
# aggregate of a role's inline policies; whitespace not counted). An AWS::IAM::Policy attached to a
# role is one of its inline policies. The template admits SLOTS entries per list, but this budget
# binds first; infra/sam/README.md ("How many tables and buckets") gives the numbers measured here.
ROLE_INLINE_POLICY_LIMIT = 10_240


def inline_policy_sizes(overrides: dict[str, str]) -> dict[str, int]:
    """Characters of each role's inline policies (compact JSON) as deployed with `overrides`.
    A `<Resource.Arn>` the resolver cannot know is counted as 100 characters, more than any ARN of
    this stack's own resources."""
    template = test_effective_permissions.load_template()
    r = test_effective_permissions.Resolver(template, overrides)
    res = {k: v for k, v in template["Resources"].items() if r.present(k)}

    def size(document) -> int:
        text = json.dumps(document, separators=(",", ":"))
        return len(re.sub(r"<[A-Za-z0-9.]+>", "x" * 100, text))

    sizes = {}
    for logical, v in res.items():
        if v["Type"] == "AWS::IAM::Role":
            sizes[logical] = sum(size(p["PolicyDocument"]) for p in r.value(v["Properties"]).get("Policies", []))
    for v in res.values():
        if v["Type"] == "AWS::IAM::Policy":
            props = r.value(v["Properties"])
            for role in props["Roles"]:
                sizes[role.strip("<>")] += size(props["PolicyDocument"])
    return sizes


def sources(tables: int, buckets: int) -> dict[str, str]:
    # names of a realistic length: 30-character tables, 52-character `bucket/prefix` entries
    names = [f"acme-platform-team-{i:02d}-tf-locks" for i in range(tables)]
    return {
        "LockTables": ",".join(names),
        "LockTableStreamArns": ",".join(test_effective_permissions.stream(t) for t in names),
        "StateBuckets": ",".join(f"acme-terraform-state-prod/root-modules/network-{i:02d}/" for i in range(buckets)),
        "AutoExpire": "true",
    }


class RolePolicyBudget(unittest.TestCase):
    def test_what_fits_in_a_roles_inline_policies(self):
        # the documented fits: 15 tables and 15 such bucket entries; or all SLOTS bucket entries
        # when each names a whole short-named bucket
        for label, overrides in {
            "15 tables, 15 bucket/prefix entries": sources(15, 15),
            f"{SLOTS} short bucket names": {"StateBuckets": ",".join(f"acme-tfstate-{i:02d}" for i in range(SLOTS)), "AutoExpire": "true"},
        }.items():
            with self.subTest(label):
                sizes = inline_policy_sizes(overrides)
                self.assertLess(max(sizes.values()), ROLE_INLINE_POLICY_LIMIT, sizes)

    def test_the_slot_maximum_with_long_entries_is_beyond_iam(self):
        # what the README warns about: SLOTS tables and SLOTS long bucket entries do not fit, and
        # it is the reaper's and force-unlock's roles that overflow, by the documented per-entry cost
        sizes = inline_policy_sizes(sources(SLOTS, SLOTS))
        self.assertGreater(sizes["ForceUnlockRole"], ROLE_INLINE_POLICY_LIMIT)
        one_more_bucket = inline_policy_sizes(sources(1, 2))["ForceUnlockRole"] - inline_policy_sizes(sources(1, 1))["ForceUnlockRole"]
        one_more_table = inline_policy_sizes(sources(2, 1))["ForceUnlockRole"] - inline_policy_sizes(sources(1, 1))["ForceUnlockRole"]
        self.assertLessEqual(one_more_bucket, 5 * (52 + 25))  # five ARNs of `arn:aws:s3:::<entry>…`
        self.assertLessEqual(one_more_table, 4 * (30 + 60))  # four table / index ARNs


if __name__ == "__main__":
    unittest.main()
