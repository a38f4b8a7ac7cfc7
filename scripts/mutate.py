#!/usr/bin/env python3
"""Mutation testing for one source file: which small bugs would the given unit tests miss?

A tool for finding weak tests, not a gate: nothing fails a build on its score.

The script finds mutation points with :mod:`ast`, then for each mutant rewrites the source text of
that one node (the rest of the file keeps its bytes and its line numbers) and runs the given
pytest selection against it with ``-x -q`` and a timeout. A mutant is *killed* when the tests fail
(or cannot even import it), *survived* when they pass, *timeout* when they ran out of time.

Kinds of mutation (``--kinds``):

- ``compare``: one comparison operator shifted: ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <->
  ``!=``, ``is`` <-> ``is not``, ``in`` <-> ``not in``;
- ``boolop``: one operand of an ``or`` replaced by ``False`` (of an ``and`` by ``True``), which
  drops that clause;
- ``number``: an int or float constant ``n`` replaced by ``n + 1``;
- ``delete``: a statement replaced by ``pass``: a call statement, an assignment to an attribute
  or subscript, an augmented assignment, ``raise``, ``continue``, ``break``, a bare ``return``,
  ``del``, and the whole body of an ``if``;
- ``condition``: the test of an ``if`` that has an ``else``/``elif`` (and of a conditional
  expression) replaced by ``False`` (an ``if`` without ``else`` is covered by deleting its body);
- ``not``: a ``not`` removed.

Mutants whose source text equals an earlier mutant's are dropped; a line with the comment
``# pragma: no mutate`` gets none.

The real file is never modified: the project (without ``.git``, ``.venv`` and caches) is copied
to a temporary directory once, each mutant is written into that copy, and the tests run there
with ``PYTHONPATH`` pointing at it, without bytecode caches (a stale ``.pyc`` of an earlier
mutant of the same size and second would otherwise be imported). The copy is removed on exit,
including on Ctrl-C; a running pytest is killed with its process group.

Examples::

    .venv/bin/python scripts/mutate.py --file fms/rtmp/chunks.py --list
    .venv/bin/python scripts/mutate.py --file fms/rtmp/chunks.py \\
        --tests "tests/rtmp/test_chunks.py tests/rtmp/test_chunk_limits.py" --max 150
    .venv/bin/python scripts/mutate.py --file fms/protocol.py --tests tests/test_admission.py \\
        --only-lines 147-161,1275-1330

Pytest runs with ``CI=true`` so Hypothesis is derandomized and a result can be reproduced.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("compare", "boolop", "number", "delete", "condition", "not")
PRAGMA = "pragma: no mutate"
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.pyc",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "*.egg-info",
    "build",
    "dist",
)

_SWAP = {
    ast.Lt: "<=",
    ast.LtE: "<",
    ast.Gt: ">=",
    ast.GtE: ">",
    ast.Eq: "!=",
    ast.NotEq: "==",
    ast.Is: "is not",
    ast.IsNot: "is",
    ast.In: "not in",
    ast.NotIn: "in",
}
_OP_TEXT = {
    ast.Lt: r"<(?!=)",
    ast.LtE: r"<=",
    ast.Gt: r">(?!=)",
    ast.GtE: r">=",
    ast.Eq: r"==",
    ast.NotEq: r"!=",
    ast.Is: r"\bis\b(?!\s+not\b)",
    ast.IsNot: r"\bis\s+not\b",
    ast.In: r"(?<!not )\bin\b",
    ast.NotIn: r"\bnot\s+in\b",
}


@dataclass(frozen=True, slots=True)
class Mutant:
    """One mutation: replace bytes ``start:end`` of the source with ``new``."""

    kind: str
    line: int
    start: int
    end: int
    new: bytes
    old: bytes

    def describe(self, width: int = 70) -> str:
        old = _squash(self.old.decode())
        new = _squash(self.new.decode()) or "pass"
        if self.kind == "delete":
            text = f"delete `{old}`"
        else:
            text = f"`{old}` -> `{new}`"
        return text if len(text) <= width else text[: width - 3] + "..."

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.new + source[self.end :]


@dataclass(slots=True)
class Result:
    mutant_id: int
    mutant: Mutant
    outcome: str  # killed, survived, timeout, error
    seconds: float


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class _Finder(ast.NodeVisitor):
    """Collects mutation points of one module as byte-range replacements."""

    def __init__(self, source: bytes, kinds: set[str]) -> None:
        self.source = source
        self.kinds = kinds
        self.lines = source.split(b"\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)
        self.found: list[Mutant] = []
        self._docstrings: set[int] = set()

    # --- helpers ---------------------------------------------------------------------------

    def offset(self, line: int, col: int) -> int:
        """Byte offset of ``col`` (a UTF-8 byte column, as ast gives it) on ``line``."""
        return self.starts[line - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def add(self, kind: str, node: ast.AST, start: int, end: int, new: str) -> None:
        if kind not in self.kinds:
            return
        line: int = node.lineno  # type: ignore[attr-defined]
        if PRAGMA.encode() in self.lines[line - 1]:
            return
        self.found.append(Mutant(kind, line, start, end, new.encode(), self.source[start:end]))

    def replace_node(self, kind: str, node: ast.AST, new: str) -> None:
        start, end = self.span(node)
        self.add(kind, node, start, end, new)

    def delete_span(self, node: ast.AST, first: ast.stmt, last: ast.stmt) -> None:
        """Replace statements ``first``..``last`` by ``pass``, keeping the line count."""
        start = self.offset(first.lineno, first.col_offset)
        end = self.offset(last.end_lineno or last.lineno, last.end_col_offset or 0)
        extra = (last.end_lineno or last.lineno) - first.lineno
        self.add("delete", node, start, end, "pass" + "\n" * extra)

    # --- visitors --------------------------------------------------------------------------

    def generic_visit(self, node: ast.AST) -> None:
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            self._docstrings.add(id(body[0]))
        super().generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        # Decorators, defaults and annotations are not mutated: only the body.
        self.generic_visit_body(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.generic_visit_body(node)

    def generic_visit_body(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if (
            node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        ):
            self._docstrings.add(id(node.body[0]))
        for stmt in node.body:
            self.visit(stmt)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:  # the annotation is never mutated
            self.visit(node.value)

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            swap = _SWAP.get(type(op))
            if swap is None:
                continue
            gap_start = self.offset(operands[i].end_lineno, operands[i].end_col_offset)  # type: ignore[arg-type]
            gap_end = self.offset(operands[i + 1].lineno, operands[i + 1].col_offset)
            gap = self.source[gap_start:gap_end].decode()
            match = re.search(_OP_TEXT[type(op)], gap) if "#" not in gap else None
            if match is None:
                continue
            self.add(
                "compare",
                node,
                gap_start + len(gap[: match.start()].encode()),
                gap_start + len(gap[: match.end()].encode()),
                swap,
            )
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        neutral = "False" if isinstance(node.op, ast.Or) else "True"
        for value in node.values:
            self.replace_node("boolop", value, neutral)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        self.replace_node("number", node, repr(value + 1))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            start, end = self.span(node)
            operand_start, operand_end = self.span(node.operand)
            self.add("not", node, start, end, self.source[operand_start:operand_end].decode())
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if node.orelse:
            self.replace_node("condition", node.test, "False")
        self.delete_span(node, node.body[0], node.body[-1])
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.replace_node("condition", node.test, "False")
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if id(node) not in self._docstrings and isinstance(node.value, (ast.Call, ast.Await)):
            self.delete_span(node, node, node)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        if all(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets):
            self.delete_span(node, node, node)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.delete_span(node, node, node)
        self.generic_visit(node)

    def _delete_simple(self, node: ast.stmt) -> None:
        self.delete_span(node, node, node)
        self.generic_visit(node)

    visit_Raise = _delete_simple
    visit_Continue = _delete_simple
    visit_Break = _delete_simple
    visit_Delete = _delete_simple

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is None:
            self.delete_span(node, node, node)
        self.generic_visit(node)


def find_mutants(source: bytes, kinds: set[str]) -> list[Mutant]:
    """Every mutation point of ``source``, in source order, without duplicate results."""
    finder = _Finder(source, kinds)
    finder.visit(ast.parse(source))
    seen: set[bytes] = set()
    out: list[Mutant] = []
    for mutant in sorted(finder.found, key=lambda m: (m.start, m.end, KINDS.index(m.kind))):
        mutated = mutant.apply(source)
        if mutated in seen or mutated == source:
            continue
        try:
            ast.parse(mutated)
        except SyntaxError:
            continue
        seen.add(mutated)
        out.append(mutant)
    return out


def parse_lines(spec: str) -> list[tuple[int, int]]:
    """``"10-40,55"`` -> ``[(10, 40), (55, 55)]``."""
    ranges = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        ranges.append((int(first), int(last or first)))
    return ranges


def function_lines(source: bytes, names: Sequence[str]) -> list[tuple[int, int]]:
    """The line ranges of the functions or methods called ``names`` (at any depth)."""
    wanted = set(names)
    ranges = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in wanted:
            ranges.append((node.lineno, node.end_lineno or node.lineno))
            wanted.discard(node.name)
    if wanted:
        raise SystemExit(f"mutate: no function named {', '.join(sorted(wanted))}")
    return ranges


# --- running ---------------------------------------------------------------------------------


def run_pytest(
    python: str, workdir: Path, tests: list[str], timeout: float
) -> tuple[str, float, str]:
    """Run the tests once in ``workdir``: (outcome, seconds, the output's tail)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(workdir)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["CI"] = "true"
    command = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return "timeout", time.monotonic() - started, ""
    except BaseException:
        _kill(proc)
        raise
    seconds = time.monotonic() - started
    tail = output.decode(errors="replace")[-2000:]
    if proc.returncode == 0:
        return "survived", seconds, tail
    if proc.returncode in (1, 2, 3):  # failed, interrupted (e.g. an import error), internal error
        return "killed", seconds, tail
    return "error", seconds, tail  # 4: usage error, 5: no tests collected


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the pytest we started and everything it started (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def reproduce_command(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python", "scripts/mutate.py", "--file", args.file]
    for tests in args.tests or []:
        parts += ["--tests", tests]
    if args.only_lines:
        parts += ["--only-lines", args.only_lines]
    if args.functions:
        parts += ["--functions", args.functions]
    if args.kinds != ",".join(KINDS):
        parts += ["--kinds", args.kinds]
    if args.ids:
        parts += ["--ids", args.ids]
    if args.max is not None:
        parts += ["--max", str(args.max)]
    if args.timeout != 60.0:
        parts += ["--timeout", f"{args.timeout:g}"]
    if args.list:
        parts.append("--list")
    return shlex.join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Mutate one source file, one small change at a time, and run unit tests "
        "against each mutant.",
    )
    parser.add_argument("--file", required=True, help="source file to mutate, e.g. fms/stream.py")
    parser.add_argument(
        "--tests",
        action="append",
        help="pytest arguments (shell-split; may repeat), e.g. 'tests/test_stream.py -k bounds'",
    )
    parser.add_argument(
        "--only-lines", default="", help="mutate only these lines, e.g. '147-161,1275-1330'"
    )
    parser.add_argument(
        "--functions",
        default="",
        help="mutate only inside these functions or methods (comma-separated names)",
    )
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}"
    )
    parser.add_argument("--ids", default="", help="run only these mutant ids, e.g. '3,17,40-45'")
    parser.add_argument("--max", type=int, help="run at most this many mutants (the first ones)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per mutant's pytest run (default 60)"
    )
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter that runs pytest (default: this)"
    )
    args = parser.parse_args(argv)

    kinds = {k.strip() for k in args.kinds.split(",") if k.strip()}
    unknown = kinds - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    target = (ROOT / args.file).resolve()
    try:
        relative = target.relative_to(ROOT)
    except ValueError:
        parser.error(f"{args.file} is not inside {ROOT}")
    source = target.read_bytes()

    mutants = list(enumerate(find_mutants(source, kinds), start=1))
    ranges = parse_lines(args.only_lines)
    if args.functions:
        ranges += function_lines(source, [n.strip() for n in args.functions.split(",")])
    if ranges:
        mutants = [(i, m) for i, m in mutants if any(a <= m.line <= b for a, b in ranges)]
    if args.ids:
        wanted = {n for a, b in parse_lines(args.ids) for n in range(a, b + 1)}
        mutants = [(i, m) for i, m in mutants if i in wanted]
    selected = len(mutants)
    if args.max is not None:
        mutants = mutants[: args.max]

    print(f"reproduce: {reproduce_command(args)}")
    if args.list:
        for i, m in mutants:
            print(f"{i:>4}  {relative}:{m.line:<5} {m.kind:<9} {m.describe()}")
        print(f"{len(mutants)} mutants listed ({selected} selected)")
        return 0
    if not args.tests:
        parser.error("--tests is required unless --list")
    tests = [t for spec in args.tests for t in shlex.split(spec)]

    # Stop cleanly on Ctrl-C and on kill, also when started with SIGINT ignored (a background
    # job of a non-interactive shell inherits that).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    results: list[Result] = []
    workdir = Path(tempfile.mkdtemp(prefix="mutate-"))
    started = time.monotonic()
    try:
        copy = workdir / "project"
        shutil.copytree(ROOT, copy, ignore=COPY_IGNORE, symlinks=True)
        copied = copy / relative
        outcome, seconds, tail = run_pytest(args.python, copy, tests, args.timeout)
        if outcome != "survived":
            print(tail)
            print(f"mutate: the tests do not pass on the unmutated code ({outcome}); stopping")
            return 2
        print(
            f"baseline: tests pass in {seconds:.1f}s; running {len(mutants)} of {selected} "
            f"mutants of {relative} (timeout {args.timeout:g}s each)"
        )
        width = len(str(mutants[-1][0])) if mutants else 1
        for number, (i, mutant) in enumerate(mutants, start=1):
            copied.write_bytes(mutant.apply(source))
            try:
                outcome, seconds, tail = run_pytest(args.python, copy, tests, args.timeout)
            finally:
                copied.write_bytes(source)
            results.append(Result(i, mutant, outcome, seconds))
            print(
                f"[{number}/{len(mutants)}] {i:>{width}}  {relative}:{mutant.line:<5} "
                f"{outcome:<8} {mutant.describe(60)}",
                flush=True,
            )
            if outcome == "error":
                print(tail)
    except KeyboardInterrupt:
        print("\nmutate: interrupted; the results so far follow", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # The real file was never written; check anyway, since a wrong report here would hide a bug.
    if target.read_bytes() != source:
        print(f"mutate: {relative} changed during the run (by someone else?)", file=sys.stderr)

    print_table(relative, results, source)
    print(f"time: {time.monotonic() - started:.0f}s")
    print(f"reproduce: {reproduce_command(args)}")
    return 0


def print_table(relative: Path, results: list[Result], source: bytes) -> None:
    if not results:
        print("no mutants run")
        return
    print()
    print(f"{'id':>5}  {'where':<28} {'kind':<9} {'result':<8} change")
    for r in results:
        where = f"{relative}:{r.mutant.line}"
        print(
            f"{r.mutant_id:>5}  {where:<28} {r.mutant.kind:<9} {r.outcome:<8} {r.mutant.describe()}"
        )
    counts = {
        o: sum(r.outcome == o for r in results) for o in ("killed", "timeout", "survived", "error")
    }
    scored = len(results) - counts["error"]
    detected = counts["killed"] + counts["timeout"]
    score = 100.0 * detected / scored if scored else 0.0
    print()
    print(
        f"score: {score:.1f}% ({detected} of {scored} detected: {counts['killed']} killed, "
        f"{counts['timeout']} timeout; {counts['survived']} survived; {counts['error']} error)"
    )
    survivors = [r for r in results if r.outcome == "survived"]
    if survivors:
        print("\nsurvivors:")
        for r in survivors:
            print(f"--- mutant {r.mutant_id} ({relative}:{r.mutant.line}, {r.mutant.kind})")
            before = source.decode().splitlines()
            after = r.mutant.apply(source).decode().splitlines()
            diff = difflib.unified_diff(before, after, lineterm="", n=1)
            for line in list(diff)[2:]:
                print(f"    {line}")


if __name__ == "__main__":
    sys.exit(main())
