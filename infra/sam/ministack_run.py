"""Runs ministack (the local emulator of infra/sam/deploy_local.py) with two gaps closed.

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

The second gap: ministack's `SimulatePrincipalPolicy` evaluates the role's policies with its real
evaluator (`ministack.core.iam_evaluator.evaluate`) but ignores the request's `ContextEntries`, so a
statement with a condition on a service key (the ledger writes' `dynamodb:LeadingKeys`) can never
match. IAM's API (SimulatePrincipalPolicy, "ContextEntries": "a list of context keys and
corresponding values for the simulation to use") evaluates the conditions with them. The patch reads
`ContextEntries.member.N.{ContextKeyName, ContextKeyType, ContextKeyValues.member.M}` and gives them
to the evaluator as request context (multi-valued for the `...List` types) for that simulation only.
`lockreaper doctor`'s role check (and deploy_local.py's check of it) needs this.
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

import contextvars

import ministack.core.iam_evaluator as iam_evaluator
import ministack.services.iam as iam

_simulation_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar("simulation_context", default=None)
_original_evaluate = iam_evaluator.evaluate
_original_simulate = iam._simulate_principal_policy


def _context_entries(p) -> dict:
    entries = {}
    n = 1
    while name := iam._p(p, f"ContextEntries.member.{n}.ContextKeyName"):
        kind = iam._p(p, f"ContextEntries.member.{n}.ContextKeyType").lower()
        values = []
        m = 1
        while (value := iam._p(p, f"ContextEntries.member.{n}.ContextKeyValues.member.{m}")) != "":
            values.append(value)
            m += 1
        entries[name.lower()] = values if kind.endswith("list") else (values[0] if values else None)
        n += 1
    return entries


def _evaluate(ctx, policies, *limits):
    entries = _simulation_context.get()
    if entries:
        ctx.service_context.update(entries)
    return _original_evaluate(ctx, policies, *limits)


def _simulate_principal_policy(p):
    token = _simulation_context.set(_context_entries(p))
    try:
        return _original_simulate(p)
    finally:
        _simulation_context.reset(token)


iam_evaluator.evaluate = _evaluate
iam._simulate_principal_policy = _simulate_principal_policy
iam._IAM_HANDLERS["SimulatePrincipalPolicy"] = _simulate_principal_policy

if __name__ == "__main__":
    from ministack.app import main

    sys.argv = ["ministack"]
    sys.exit(main())
