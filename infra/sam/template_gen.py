#!/usr/bin/env python3
"""`make template`: write template.yaml from infra/sam/template.in.yaml, the one place where the
"for each configured table / bucket / stream" parts of the stack are written.

Why generated, not `Fn::ForEach`. CloudFormation cannot map over a list parameter: `Fn::Join`'s
delimiter must be a literal, so `arn:${AWS::Partition}:…:table/<name>` cannot be built per element
of `LockTables`, and SAM events cannot loop. `Fn::ForEach` (AWS::LanguageExtensions, handled by SAM
CLI 1.170, cfn-lint 1.58 and ministack) was tried for issue 17 and does not close the gap:

- it repeats keys of a mapping (resources, conditions, outputs, properties), never elements of a
  list, so an IAM statement's `Resource` list still needs one entry per table or bucket (asked for
  in github.com/aws-cloudformation/cfn-language-discussion/issues/161, open). One IAM resource per
  entry instead hits IAM's quotas first: a role's inline policies share 10,240 characters, and a
  role takes at most 10 (20 on request) managed policies;
- an empty CommaDelimitedList parameter is the list `[""]`, so a loop over an empty optional list
  still makes one resource with an empty value (a stream mapping with no stream: the deploy fails)
  (cfn-language-discussion issues 102 and 154), and a loop's resources cannot carry a condition
  that depends on the element (`Condition` takes a literal name);
- its collection must be a literal list or a `Ref` to a CommaDelimitedList parameter
  (docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-
  foreach.html), which would change the type of `LockTables`, `StateBuckets` and
  `LockTableStreamArns` (the deployer's contract).

So every list parameter is read through SLOTS fixed slots (the list padded with empty entries,
`"${List},,,,"`; slot i is element i, switched off by its condition when empty), and this script
writes the slots out; the source says each thing once. SLOTS is raised to what IAM can hold (see
SLOTS below); a longer list is refused by the parameter's AllowedPattern at deploy time.

Markers in the source, each a comment line:

  # @slot-items <List>: <form>
      one list entry per slot, each `!If [Has<Item>N, !Sub [<form>, {<Var>: slot N}], NoValue]`.
  # @slot-items-given-first <List>: <form>
      the same inside a statement that is itself switched on by the list's first slot
      (`Has<Item>s`), so slot 1 needs no `!If`.
  # @for-each-slot <List>
  ...lines...
  # @end
      the lines once per slot; in them {{n}} is the slot number (1..SLOTS) and {{item}} the slot's
      value (`!Select [n-1, !Split [",", !Sub "${List},,,,"]]`).
  # @define <name> ... # @end     and     # @use <name>
      a block of lines written once and used in several places (re-indented to the @use line; the
      slot markers inside it are expanded where it is used).

  {{SLOTS}}, {{SLOTS-1}}   (anywhere)
      the number of slots, and one less.
  ## <text>
      a comment for readers of the source only (not copied to template.yaml).

The source is template.yaml with these markers, not itself a valid template. `<form>` is a `!Sub`
string naming the slot's value as `${<Var>}` (`Name` for LockTables, `Arn` for LockTableStreamArns;
for StateBuckets, whose entries are `bucket`, `bucket/` or `bucket/prefix`, `Bucket` is the entry's
bucket name and `Scope` its `bucket/prefix`: the entry itself when it has a `/`, else
`bucket/${StateKeyPrefix}`, the deprecated default prefix). Markers inside a `@for-each-slot` block or a `@define`d block are expanded
where the block lands; an error's line number then counts the lines expanded so far.

Usage: template_gen.py            write template.yaml
       template_gen.py --check    exit 1 with "run make template" if template.yaml is not current
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "infra/sam/template.in.yaml"
TARGET = ROOT / "template.yaml"

# Entries per list parameter: the only place the number is written. The source uses it as
# {{SLOTS}} (descriptions) and {{SLOTS-1}} (the list parameters' AllowedPattern, so that a list
# longer than its slots is refused, never left without its grant or its stream mapping).
#
# Why 40: enough for a platform team's ~40 root modules listed one `bucket/prefix` each, and about
# what IAM can hold. Each bucket entry adds five ARNs to ForceUnlockRole's inline policies and each
# table four, and a role's inline policies share 10,240 characters (IAM User Guide, "IAM and AWS STS
# quotas", "Role policy size"); test_template_gen.py measures the policies at the maximum. The
# template itself grows by ~6 KB per slot (≈311 KB at 40, under CloudFormation's 1 MB for a template
# uploaded to S3, which `sam deploy` does).
SLOTS = 40


@dataclass(frozen=True)
class SlotList:
    """A comma-separated list parameter read through SLOTS slots."""

    parameter: str
    condition: str  # slot N is present when `<condition>N` holds
    var: str  # the name a `<form>` uses for the slot's value
    # StateBuckets only: a form names the parts of a `bucket[/prefix]` entry instead
    bucket_parts: bool = False

    def item(self, index: int) -> str:
        padding = "," * (SLOTS - 1)
        return f'!Select [{index}, !Split [",", !Sub "${{{self.parameter}}}{padding}"]]'

    def variables(self, index: int) -> dict[str, str]:
        """Every `${…}` a form may use for slot `index`, and its value."""
        if not self.bucket_parts:
            return {self.var: self.item(index)}
        entry = self.item(index)
        return {
            # the text before the first `/` (the whole entry when it has none)
            "Bucket": f'!Select [0, !Split ["/", {entry}]]',
            # `StateBucketHasPrefix<n>`: the entry has a `/` (conditions in template.in.yaml)
            "Scope": f'!If [StateBucketHasPrefix{index + 1}, {entry}, !Sub ["${{Entry}}/${{StateKeyPrefix}}", {{Entry: {entry}}}]]',
        }


LISTS = {
    s.parameter: s
    for s in (
        SlotList("LockTables", "HasLockTable", "Name"),
        SlotList("StateBuckets", "HasStateBucket", "Bucket", bucket_parts=True),
        SlotList("LockTableStreamArns", "HasStream", "Arn"),
    )
}

HEADER = """\
# GENERATED from infra/sam/template.in.yaml by infra/sam/template_gen.py. Do not edit this file:
# edit the source and run `make template` (`make validate` fails while this file is not current).
"""

MARKER = re.compile(r"^(?P<indent> *)# @(?P<kind>[a-z-]+)(?: (?P<arg>.*))?$")


class SourceError(Exception):
    pass


def slot_list(name: str, where: str) -> SlotList:
    if name not in LISTS:
        raise SourceError(f"{where}: unknown list {name!r} (known: {', '.join(LISTS)})")
    return LISTS[name]


def slot_items(indent: str, lst: SlotList, form: str, given_first: bool) -> list[str]:
    out: list[str] = []
    for index in range(SLOTS):
        used = [(name, value) for name, value in lst.variables(index).items() if f"${{{name}}}" in form]
        variables = [f"  - {name}: {value}" if i == 0 else f"    {name}: {value}" for i, (name, value) in enumerate(used)]
        sub = ["- !Sub", f"  - {form}", *variables]
        if index == 0 and given_first:
            out += [indent + line for line in sub]
        else:
            out += [f"{indent}- !If", f"{indent}  - {lst.condition}{index + 1}"]
            out += [f"{indent}  {line}" for line in sub]
            out.append(f"{indent}  - !Ref AWS::NoValue")
    return out


def for_each_slot(lst: SlotList, block: list[str]) -> list[str]:
    out: list[str] = []
    for index in range(SLOTS):
        for line in block:
            out.append(line.replace("{{n}}", str(index + 1)).replace("{{item}}", lst.item(index)))
    return out


def reindent(block: list[str], indent: str) -> list[str]:
    base = min((len(l) - len(l.lstrip(" ")) for l in block if l.strip()), default=0)
    return [indent + l[base:] if l.strip() else l for l in block]


def take_block(lines: list[str], start: int, where: str) -> tuple[list[str], int]:
    """The lines after the marker at `start` up to its `# @end`, and the index after the end."""
    # a `@use` may sit in a `@for-each-slot` block, not in a `@define` (which could use itself)
    nested = {"for-each-slot", "define"} | ({"use"} if MARKER.match(lines[start])["kind"] == "define" else set())
    for end in range(start + 1, len(lines)):
        m = MARKER.match(lines[end])
        if m and m["kind"] == "end":
            return lines[start + 1 : end], end + 1
        if m and m["kind"] in nested:
            raise SourceError(f"{where}: blocks do not nest (line {end + 1})")
    raise SourceError(f"{where}: no `# @end`")


def generate(source: str) -> str:
    lines = source.splitlines()
    defined: dict[str, list[str]] = {}
    used: set[str] = set()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARKER.match(line)
        if not m:
            if line.lstrip().startswith("##"):
                i += 1  # a note for readers of the source only
                continue
            line = line.replace("{{SLOTS}}", str(SLOTS)).replace("{{SLOTS-1}}", str(SLOTS - 1))
            if "{{" in line:
                raise SourceError(f"line {i + 1}: {{{{…}}}} outside a `# @for-each-slot` block")
            out.append(line)
            i += 1
            continue
        where = f"line {i + 1} (`{line.strip()}`)"
        kind, arg, indent = m["kind"], (m["arg"] or "").strip(), m["indent"]
        if kind in ("slot-items", "slot-items-given-first"):
            name, sep, form = arg.partition(": ")
            if not sep or not form.strip():
                raise SourceError(f"{where}: expected `# @{kind} <List>: <form>`")
            lst = slot_list(name.strip(), where)
            names = list(lst.variables(0))
            if not any(f"${{{name}}}" in form for name in names):
                raise SourceError(f"{where}: the form uses none of {', '.join(f'${{{n}}}' for n in names)}")
            out += slot_items(indent, lst, form.strip(), kind == "slot-items-given-first")
            i += 1
        elif kind == "for-each-slot":
            lst = slot_list(arg, where)
            start = i
            block, i = take_block(lines, i, where)
            if not any("{{n}}" in l or "{{item}}" in l for l in block):
                raise SourceError(f"{where}: the block uses neither {{{{n}}}} nor {{{{item}}}}")
            # spliced back unexpanded, so markers inside the block (e.g. `@use`) are expanded too
            lines[start:i] = for_each_slot(lst, block)
            i = start
        elif kind == "define":
            if not arg or arg in defined:
                raise SourceError(f"{where}: a block needs a new name")
            defined[arg], i = take_block(lines, i, where)
        elif kind == "use":
            if arg not in defined:
                raise SourceError(f"{where}: `{arg}` is not defined above")
            # spliced in unexpanded, so the markers inside the block are expanded where it is used
            used.add(arg)
            lines[i : i + 1] = reindent(defined[arg], indent)
        else:
            # refused rather than passed on as a comment: a mistyped marker must not vanish silently
            raise SourceError(f"{where}: unknown marker @{kind}")
    unused = set(defined) - used
    if unused:
        raise SourceError(f"defined but never used: {', '.join(sorted(unused))}")
    return HEADER + "\n".join(out) + "\n"


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if template.yaml is not what the source generates")
    args = parser.parse_args()
    try:
        generated = generate(SOURCE.read_text())
    except SourceError as e:
        print(f"{shown(SOURCE)}: {e}", file=sys.stderr)
        return 1
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != generated:
            print(
                f"{shown(TARGET)} is not what {shown(SOURCE)} generates: run make template "
                "(and edit the source, not template.yaml)",
                file=sys.stderr,
            )
            return 1
        return 0
    TARGET.write_text(generated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
