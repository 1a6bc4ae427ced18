#!/usr/bin/env python3
"""Turns the fault scenarios' result rows (JSON lines appended by the tests when FAULT_REPORT is set,
see shared/testkit/src/fault_runs.rs) into one Markdown table, and fails when an invariant did not
hold or a row is missing.

    fault_table.py ROWS.jsonl [--expect N]

Exit status: 0 when every invariant held in every row (and, with --expect, there are N rows);
1 otherwise, after printing the table and what broke.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path}:{number}: not a result row: {e}")
        for field in ("scenario", "seeds", "rate", "requests", "faulted", "invariants_checked", "invariants_held"):
            if field not in row:
                raise SystemExit(f"{path}:{number}: result row without `{field}`")
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| scenario | seeds | fault rate | requests | faulted | faults injected | invariants held |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in sorted(rows, key=lambda r: r["scenario"]):
        faulted = sum(row["faulted"].values())
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(row["faulted"].items())) or "none"
        held = f'{row["invariants_held"]} / {row["invariants_checked"]}'
        lines.append(
            f'| {row["scenario"]} | {row["seeds"]} | {row["rate"]:.2f} | {row["requests"]} | {faulted} | {kinds} | {held} |'
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", type=Path)
    parser.add_argument("--expect", type=int, help="the number of scenarios that must have reported a row")
    args = parser.parse_args()
    if not args.rows.exists():
        print(f"{args.rows}: no result rows (did the fault tests run with FAULT_REPORT set?)", file=sys.stderr)
        return 1
    rows = read_rows(args.rows)
    print(table(rows))
    failed = False
    for row in rows:
        if row["invariants_held"] != row["invariants_checked"]:
            failed = True
            print(f'\nNOT HELD in {row["scenario"]}:', file=sys.stderr)
            for broken in row.get("broken", []):
                print(f"  - {broken}", file=sys.stderr)
        if sum(row["faulted"].values()) == 0:
            failed = True
            print(f'\n{row["scenario"]}: no request was faulted', file=sys.stderr)
    if args.expect is not None and len(rows) != args.expect:
        failed = True
        print(
            f"\n{len(rows)} result rows, expected {args.expect}: a scenario failed before it could report",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
