"""Tests of fault_table.py: the table, and its exit status on broken invariants and missing rows."""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPT = Path(__file__).with_name("fault_table.py")


def row(scenario, held=3, checked=3, faulted=None, broken=()):
    return {
        "scenario": scenario,
        "seeds": 2,
        "rate": 0.3,
        "requests": 40,
        "faulted": {"dynamodb ThrottlingException": 5} if faulted is None else faulted,
        "invariants_checked": checked,
        "invariants_held": held,
        "broken": list(broken),
    }


class FaultTable(unittest.TestCase):
    def run_script(self, rows, *args):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "rows.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            return subprocess.run(
                [sys.executable, str(SCRIPT), str(path), *args], capture_output=True, text=True
            )

    def test_all_held_prints_one_sorted_table_and_succeeds(self):
        out = self.run_script([row("b: resets"), row("a: throttling")], "--expect", "2")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertTrue(lines[0].startswith("| scenario |"))
        self.assertIn("| a: throttling | 2 | 0.30 | 40 | 5 | dynamodb ThrottlingException 5 | 3 / 3 |", lines[2])
        self.assertTrue(lines[3].startswith("| b: resets |"))

    def test_a_broken_invariant_fails_and_is_named(self):
        out = self.run_script([row("a", held=2, broken=["seed 4: LocksAcquired = 5, the records hold 4"])])
        self.assertEqual(out.returncode, 1)
        self.assertIn("| 2 / 3 |", out.stdout)
        self.assertIn("seed 4: LocksAcquired = 5", out.stderr)

    def test_a_missing_row_or_a_run_without_faults_fails(self):
        self.assertEqual(self.run_script([row("a")], "--expect", "2").returncode, 1)
        self.assertEqual(self.run_script([row("a", faulted={})]).returncode, 1)

    def test_no_rows_file_fails(self):
        out = subprocess.run(
            [sys.executable, str(SCRIPT), "/nonexistent/rows.jsonl"], capture_output=True, text=True
        )
        self.assertEqual(out.returncode, 1)
        self.assertIn("no result rows", out.stderr)


if __name__ == "__main__":
    unittest.main()
