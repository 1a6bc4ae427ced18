"""Unit tests of the EMF reader the demo and deploy_local read metrics with.

    python -m unittest infra/sam/test_emf_reader.py
"""

import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emf_reader import InvalidEmf, read_line, read_lines, metric_sum  # noqa: E402

# A line exactly as lockreaper_core::metrics::emf::render writes it (its unit test's document).
LINE = json.dumps(
    {
        "_aws": {
            "Timestamp": 1795651380000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "LockReaper",
                    "Dimensions": [["LockTable", "LockKind"]],
                    "Metrics": [{"Name": "LockHoldSeconds", "Unit": "Seconds"}, {"Name": "LocksAcquired", "Unit": "Count"}],
                }
            ],
        },
        "LockTable": "tf-locks",
        "LockKind": "terraform-dynamodb",
        "LocksAcquired": 3.0,
        "LockHoldSeconds": [3.0, 3.0, 10.0],
    }
)
DIMS = {"LockTable": "tf-locks", "LockKind": "terraform-dynamodb"}


def doc(**root) -> str:
    aws = {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["D"]], "Metrics": [{"Name": "M", "Unit": "Count"}]}]}
    return json.dumps({"_aws": aws, **root})


class EmfReaderTest(unittest.TestCase):
    def test_reads_what_the_functions_write(self):
        metrics = read_lines([LINE, '{"level":"INFO","message":"batch done"}', "START RequestId: x", LINE])
        self.assertEqual(metric_sum(metrics, "LockReaper", "LocksAcquired", DIMS), 6.0)
        self.assertEqual(metric_sum(metrics, "LockReaper", "LockHoldSeconds", DIMS), 32.0)
        self.assertEqual(metric_sum(metrics, "Other", "LocksAcquired", DIMS), 0.0)
        self.assertEqual(metric_sum(metrics, "LockReaper", "LocksAcquired", {"LockTable": "tf-locks"}), 0.0)
        self.assertEqual(metrics[0].timestamp_ms, 1795651380000)
        self.assertEqual(metrics[0].unit, "Seconds")

    def test_plain_lines_are_not_emf(self):
        self.assertIsNone(read_line("not json"))
        self.assertIsNone(read_line('{"message": "x"}'))
        self.assertIsNone(read_line("[1, 2]"))

    def test_invalid_documents_are_errors(self):
        self.assertEqual(len(read_line(doc(D="x", M=1))), 1)
        for bad, why in (
            (doc(D=1, M=1), "dimension"),
            (doc(D="x"), "'M'"),
            (doc(D="x", M=[1] * 101), "101 values"),
            (doc(D="x", M=True), "'M'"),
            (json.dumps({"_aws": {"CloudWatchMetrics": []}}), "Timestamp"),
        ):
            with self.subTest(bad=bad), self.assertRaisesRegex(InvalidEmf, why):
                read_lines([bad])


if __name__ == "__main__":
    unittest.main()
