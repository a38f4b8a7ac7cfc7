"""A plugin's options, checked against its ``__init__`` before it is built.

The keys of a ``[[apps.NAME.plugins]]`` table (except ``use``) are passed to the plugin's
constructor as keyword arguments. So that ``fms check-config`` (and the start of the server)
catches what would otherwise fail at the first client, each option is checked against the
parameter's annotation: ``int``, ``float`` (an integer is accepted), ``bool``, ``str``,
``Path`` (a string, made relative to the configuration file's folder), ``Literal[...]``, lists,
tuples, sets and sequences of these (TOML arrays), dicts and mappings (TOML tables), unions
(``X | None``). Other annotations (a reactor, a clock) are not checked: the plugin gets the
value as TOML gave it. Unknown and missing options are reported with the accepted ones.

Also here: plugin methods that look like misspelled hooks (``plya``), and the text of a hook
with the wrong signature, both in the words of ``docs/plugins.md``.
"""

from __future__ import annotations

import collections.abc
import inspect
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any

_ABSENT = object()


def _toml_type(value: object) -> str:
    """How the configuration's author would name the type of ``value``."""
    if isinstance(value, bool):
        return "boolean"
    names = {int: "integer", float: "number", str: "string", list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


def _is_path(expected: Any) -> bool:
    return isinstance(expected, type) and issubclass(expected, (PurePath, os.PathLike))


_ARRAYS: dict[Any, Callable[[list[Any]], Any]] = {
    list: list,
    tuple: tuple,
    set: set,
    frozenset: frozenset,
    collections.abc.Sequence: list,
    collections.abc.Iterable: list,
    collections.abc.Collection: list,
    collections.abc.Set: frozenset,
}
_TABLES = (dict, collections.abc.Mapping)


def describe(expected: Any) -> str:
    """The annotation in the words of a TOML file: ``integer``, ``array of strings``..."""
    origin = typing.get_origin(expected)
    args = typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        members = [describe(a) for a in args if a is not type(None)]
        return " or ".join(members)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if expected is bool:
        return "boolean"
    if expected is int:
        return "integer"
    if expected is float:
        return "number"
    if expected is str:
        return "string"
    if _is_path(expected):
        return "path (a string)"
    if origin in _ARRAYS or expected in _ARRAYS:
        item = args[0] if args else Any
        return "array" if item is Any else f"array of {describe(item)}"
    if origin in _TABLES or expected in _TABLES:
        return "table" if len(args) != 2 or args[1] is Any else f"table of {describe(args[1])}"
    return getattr(expected, "__name__", str(expected))


def convert(expected: Any, value: object, base: Path) -> tuple[bool, object]:
    """Whether ``value`` (as TOML gave it) fits ``expected``, and the value the plugin gets:
    a path made relative to ``base``, an array as the annotated collection, an integer as a
    float where a float is wanted. Annotations it does not know accept anything unchanged."""
    origin = typing.get_origin(expected)
    args = typing.get_args(expected)
    if expected is Any or expected is object or expected is _ABSENT:
        return True, value
    if origin in (typing.Union, types.UnionType):
        # A string where a path is one of the choices is a path.
        members = sorted(args, key=lambda a: not _is_path(a))
        for member in members:
            ok, converted = convert(member, value, base)
            if ok:
                return True, converted
        return False, value
    if expected is type(None):
        return value is None, value
    if origin is typing.Literal:
        return value in args and type(value) in {type(a) for a in args}, value
    if expected is bool:
        return isinstance(value, bool), value
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if expected is str:
        return isinstance(value, str), value
    if _is_path(expected):
        if not isinstance(value, str) or not value:
            return False, value
        return True, base / Path(value).expanduser()
    if origin in _ARRAYS or expected in _ARRAYS:
        if not isinstance(value, list):
            return False, value
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            items = list(args) if args else [Any] * len(value)
            if len(items) != len(value):
                return False, value
        else:
            items = [args[0] if args else Any] * len(value)
        out = []
        for item, element in zip(items, value, strict=True):
            ok, converted = convert(item, element, base)
            if not ok:
                return False, value
            out.append(converted)
        return True, _ARRAYS[origin or expected](out)
    if origin in _TABLES or expected in _TABLES:
        if not isinstance(value, dict):
            return False, value
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        table = {}
        for k, v in value.items():
            ok_key, key = convert(key_type, k, base)
            ok_value, converted = convert(value_type, v, base)
            if not (ok_key and ok_value):
                return False, value
            table[key] = converted
        return True, table
    return True, value  # not a type a TOML file can name: the plugin checks it


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    """The resolved annotations of ``function`` (``from __future__ import annotations`` makes
    them strings); one that cannot be resolved (a name imported only for type checkers) is
    left unchecked rather than failing the whole plugin."""
    try:
        return typing.get_type_hints(function)
    except Exception:
        pass
    resolved: dict[str, Any] = {}
    namespace = getattr(function, "__globals__", {})
    for name, annotation in getattr(function, "__annotations__", {}).items():
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # the module's own annotation text
            except Exception:
                continue
        resolved[name] = annotation
    return resolved


def check_options(
    factory: Callable[..., Any], options: Mapping[str, Any], base: Path, where: str, use: str
) -> tuple[dict[str, Any], list[str]]:
    """The options converted for ``factory``, and one problem per bad option, each as
    ``WHERE.KEY: reason`` (``where`` is ``FILE: apps.NAME.plugins[i]``; ``use`` names the
    plugin as the configuration does)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return dict(options), []  # a builtin or C factory: its own errors will do
    init = factory.__init__ if inspect.isclass(factory) else factory
    hints = _hints(init)
    accepted = {
        name: parameter
        for name, parameter in signature.parameters.items()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    }
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    names = ", ".join(accepted) or "none"
    problems: list[str] = []
    converted: dict[str, Any] = {}
    for key, value in options.items():
        if key not in accepted:
            if open_ended:
                converted[key] = value
                continue
            problems.append(
                f"{where}.{key}: unknown option of plugin {use!r} (its options: {names})"
            )
            continue
        expected = hints.get(key, _ABSENT)
        ok, value = convert(expected, value, base)
        if not ok:
            problems.append(
                f"{where}.{key}: expected {describe(expected)}, got {_toml_type(value)} {value!r}"
            )
            continue
        converted[key] = value
    for name, parameter in accepted.items():
        if parameter.default is parameter.empty and name not in options:
            problems.append(
                f"{where}.{name}: missing: plugin {use!r} needs it (its options: {names})"
            )
    return converted, problems


def edit_distance(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of two neighbours (``plya`` is one
    from ``play``) that turn ``a`` into ``b``."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = ca != cb
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def misspelled_hooks(cls: type, hooks: Iterable[str], base: type | None) -> list[tuple[str, str]]:
    """``(method, hook)`` for each public method of ``cls`` that is no hook but is within one
    edit of a hook's name (two for names of five letters or more): most likely a typo, since
    the server would never call it. Methods ``base`` defines do not count."""
    hooks = sorted(set(hooks))
    inherited = set(dir(base)) if base is not None else set()
    found = []
    for name in sorted(dir(cls)):
        if name.startswith("_") or name in hooks or name in inherited or name == "check_config":
            continue
        if not callable(getattr(cls, name, None)):
            continue
        for hook in hooks:
            allowed = 2 if len(hook) >= 5 else 1
            if edit_distance(name, hook) <= allowed:
                found.append((name, hook))
                break
    return found


def hook_problems(plugin: object, hooks: Mapping[str, tuple[str, ...]]) -> list[str]:
    """What is wrong with ``plugin``'s hooks, in the docs' words: a hook it lacks (a class not
    derived from ``Plugin``), or one the server cannot call with its arguments. ``hooks``
    maps each hook's name to the names of the arguments it is called with."""
    problems = []
    missing = [name for name in sorted(hooks) if getattr(plugin, name, None) is None]
    if missing:
        problems.append(
            f"the class lacks the hooks {', '.join(missing)}: derive it from "
            "fms.apps.api.Plugin, which answers every hook you do not write"
        )
    for name, arguments in sorted(hooks.items()):
        method = getattr(plugin, name, None)
        called = f"{name}({', '.join(arguments)})"
        if method is None:
            continue
        if not callable(method):
            problems.append(f"{name} is a hook, but the class sets it to a non-method value")
            continue
        try:
            signature = inspect.signature(method)
        except (TypeError, ValueError):
            continue
        try:
            signature.bind(*arguments)
        except TypeError:
            bare = signature.replace(
                parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
                return_annotation=signature.empty,
            )
            problems.append(f"the {name} hook is called as {called} but is defined as {name}{bare}")
    return problems
