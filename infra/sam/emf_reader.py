"""Reads CloudWatch Embedded Metric Format (EMF) documents back out of a function's log lines, the
way CloudWatch Logs extracts metrics from the log group Lambda writes stdout to.

The same rules as the Rust reader (`lockreaper_core::metrics::emf::read_line`), from
"Specification: Embedded metric format" (CloudWatch User Guide): a log event that is a JSON object
with an `_aws` object holding `Timestamp` (ms) and `CloudWatchMetrics` directives; each directive's
`Namespace`, `Dimensions` (sets of at most 30 names whose values are string members of the root)
and `Metrics` (at most 100 `{Name, Unit}`, each value a number or an array of at most 100 numbers
at the root). An invalid document yields no metric in CloudWatch: here it is an error, so a demo
or test that produced one fails instead of reading zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_METRICS_PER_DIRECTIVE = 100
MAX_DIMENSIONS_PER_SET = 30
MAX_VALUES_PER_METRIC = 100


class InvalidEmf(ValueError):
    """An EMF document CloudWatch would extract nothing from."""


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    unit: str | None
    dimensions: tuple[tuple[str, str], ...]
    timestamp_ms: int
    values: tuple[float, ...]


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_line(line: str) -> list[Metric] | None:
    """The metrics of one log line; None for a line that is not an EMF document."""
    try:
        root = json.loads(line.strip())
    except ValueError:
        return None
    if not isinstance(root, dict) or "_aws" not in root:
        return None
    aws = root["_aws"]
    if not isinstance(aws, dict):
        raise InvalidEmf("`_aws` is not an object")
    timestamp = aws.get("Timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise InvalidEmf("`_aws.Timestamp` is missing or not an integer number of milliseconds")
    directives = aws.get("CloudWatchMetrics")
    if not isinstance(directives, list):
        raise InvalidEmf("`_aws.CloudWatchMetrics` is missing or not an array")
    out: list[Metric] = []
    for d in directives:
        namespace = d.get("Namespace") if isinstance(d, dict) else None
        if not isinstance(namespace, str) or not 1 <= len(namespace) <= 255:
            raise InvalidEmf("a directive's `Namespace` is missing, empty or longer than 255")
        sets, metrics = d.get("Dimensions"), d.get("Metrics")
        if not isinstance(sets, list) or not isinstance(metrics, list):
            raise InvalidEmf("a directive's `Dimensions` or `Metrics` is missing or not an array")
        if len(metrics) > MAX_METRICS_PER_DIRECTIVE:
            raise InvalidEmf(f"a directive has {len(metrics)} metrics; at most {MAX_METRICS_PER_DIRECTIVE}")
        dimension_sets = []
        for names in sets:
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise InvalidEmf("a dimension set is not an array of names")
            if len(names) > MAX_DIMENSIONS_PER_SET:
                raise InvalidEmf(f"a dimension set has {len(names)} dimensions; at most {MAX_DIMENSIONS_PER_SET}")
            if not all(isinstance(root.get(n), str) for n in names):
                raise InvalidEmf(f"a dimension of {names} has no string member at the root")
            dimension_sets.append(tuple((n, root[n]) for n in names))
        for m in metrics:
            name = m.get("Name") if isinstance(m, dict) else None
            if not isinstance(name, str):
                raise InvalidEmf("a metric definition has no `Name`")
            value = root.get(name)
            if _number(value):
                values = (float(value),)
            elif isinstance(value, list) and all(_number(v) for v in value):
                if len(value) > MAX_VALUES_PER_METRIC:
                    raise InvalidEmf(f"metric {name!r} has {len(value)} values; at most {MAX_VALUES_PER_METRIC}")
                values = tuple(float(v) for v in value)
            else:
                raise InvalidEmf(f"metric {name!r} has no number or array of numbers at the root")
            for dims in dimension_sets:
                out.append(Metric(namespace, name, m.get("Unit"), dims, timestamp, values))
    return out


def read_lines(lines: list[str]) -> list[Metric]:
    """Every metric in log lines; ordinary lines are skipped, an invalid document raises."""
    out: list[Metric] = []
    for number, line in enumerate(lines, 1):
        try:
            metrics = read_line(line)
        except InvalidEmf as e:
            raise InvalidEmf(f"line {number}: {e}") from None
        out += metrics or []
    return out


def metric_sum(metrics: list[Metric], namespace: str, name: str, dimensions: dict[str, str]) -> float:
    """The sum of a metric's values with exactly these dimensions (CloudWatch's `Sum`)."""
    want = tuple(dimensions.items())
    return sum(
        v for m in metrics if m.namespace == namespace and m.name == name and m.dimensions == want for v in m.values
    )
