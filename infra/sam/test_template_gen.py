#!/usr/bin/env python3
"""infra/sam/template_gen.py: the markers expand as documented, a mistake in the source is refused
with a message naming it, and the number of slots is a one-place change (the template generated
with another SLOTS passes cfn-lint and grants every slot). Run with the deploy venv's Python:

    infra/.venv-deploy/bin/python -m unittest infra/sam/test_template_gen.py
"""

from __future__ import annotations

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
            self.assertIn(f'      - Bucket: !Select [{n - 1}, !Split [",", !Sub "${{StateBuckets}}{"," * (SLOTS - 1)}"]]', out)

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
            "  # @slot-items LockTables: ${Bucket}\n": "does not use ${Name}",
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


if __name__ == "__main__":
    unittest.main()
