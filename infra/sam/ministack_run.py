"""Runs ministack (the local emulator of infra/sam/deploy_local.py) with one gap closed.

Run with ministack's own interpreter: `infra/.venv-deploy/ministack/bin/python infra/sam/ministack_run.py`
(configuration through ministack's environment variables: GATEWAY_PORT, BIND_HOST, ...).

The gap: ministack 1.5.33 evaluates `Conditions` with only `Ref`, `Fn::Equals`, `Fn::Select` over a
parameter, and the boolean functions. CloudFormation (and cfn-lint, whose schema lists Ref,
Fn::FindInMap, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::Length and Fn::ToJsonString as valid
inside Fn::Equals) also evaluates `Fn::Sub`, `Fn::Join` and `Fn::Split` there. template.yaml uses
them to read its list parameters through fixed slots, e.g.
`!Not [!Equals [!Select [1, !Split [",", !Sub "${LockTables},,,,"]], ""]]`; unpatched, ministack
answers CreateChangeSet with `InternalError: 0` (a KeyError in its condition evaluator).

The patch resolves every `Fn::Equals` operand that uses one of those functions with ministack's own
resolver for resource properties (`engine._resolve_refs`, the same code that resolves the very same
expressions in the template's resources) before ministack's evaluator sees it. Nothing else changes.
"""

from __future__ import annotations

import sys

import importlib
import pkgutil

import ministack.services.cloudformation as cloudformation
from ministack.services.cloudformation import engine

_VALUE_FUNCTIONS = ("Fn::Sub", "Fn::Join", "Fn::Split")
_original = engine._evaluate_conditions


def _uses_value_functions(node) -> bool:
    if isinstance(node, dict):
        return any(k in _VALUE_FUNCTIONS for k in node) or any(_uses_value_functions(v) for v in node.values())
    if isinstance(node, list):
        return any(_uses_value_functions(v) for v in node)
    return False


def _evaluate_conditions(template: dict, params: dict) -> dict:
    conditions = template.get("Conditions") or {}
    if not _uses_value_functions(conditions):
        return _original(template, params)
    mappings = template.get("Mappings") or {}

    def operand(value):
        if _uses_value_functions(value):
            return engine._resolve_refs(value, {}, params, {}, mappings, "", "")
        return value

    def rewrite(node):
        if isinstance(node, dict):
            if "Fn::Equals" in node:
                return {"Fn::Equals": [operand(a) for a in node["Fn::Equals"]]}
            return {k: rewrite(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    return _original({**template, "Conditions": rewrite(conditions)}, params)


# Every module of the CloudFormation service that imported the evaluator by name gets the patched one.
for info in pkgutil.iter_modules(cloudformation.__path__):
    module = importlib.import_module(f"{cloudformation.__name__}.{info.name}")
    if getattr(module, "_evaluate_conditions", None) is _original:
        module._evaluate_conditions = _evaluate_conditions

if __name__ == "__main__":
    from ministack.app import main

    sys.argv = ["ministack"]
    sys.exit(main())
