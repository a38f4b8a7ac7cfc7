"""Finding, building and checking application plugins named in a configuration.

``use`` in ``[[apps.NAME.plugins]]`` may be:

- a name registered in the ``fms.plugins`` entry-point group of an installed package (the
  shipped plugins are: ``streamkey``, ``ipfilter``, ``httpcallback``, ``recorder``, ``chat``,
  ``adobeauth``);
- the name of a file ``NAME.py`` in one of ``[server] plugin_dirs`` (default: ``plugins/``
  beside the configuration file), optionally ``NAME:Class``; without ``:Class`` the module must
  define exactly one class that implements :class:`~fms.apps.interfaces.IApplication`;
- a dotted path ``package.module:Class``.

The factory is called with the entry's other keys as keyword arguments, checked first against
its ``__init__`` annotations (:mod:`fms.apps.options`: types, unknown and missing options,
paths relative to the configuration file's folder); then the plugin's optional ``check_config()``
method runs, so that ``fms check-config`` catches what the plugin can verify at once (a missing
file). A missing hook or one with the wrong arguments is a startup error naming the plugin and
the hook; a method that looks like a misspelled hook (``plya``) is a warning.

A file from the plugin folders is loaded again when its text has changed since it was last
loaded (a SIGHUP reload): new plugin instances get the new code, the ones serving clients keep
theirs. Entry points and dotted paths are imported once per process.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from fms.apps.api import Plugin
from fms.apps.interfaces import IApplication, IPlugin
from fms.apps.options import check_options, hook_problems, misspelled_hooks
from fms.config import Config, PluginSpec
from fms.errors import ConfigError

ENTRY_POINT_GROUP = "fms.plugins"

HOOKS: dict[str, tuple[str, ...]] = {
    name: tuple(IApplication[name].positional) for name in IApplication.names(all=True)
}
"""Each hook a plugin must have, with the names of the arguments the server passes."""

ALL_HOOKS = frozenset(IPlugin.names(all=True))
"""Every hook name, the optional notifications included (a method so named is no typo)."""

Warn = Callable[[str], None]
"""Where a warning about a plugin goes (the log; ``fms check-config`` prints it)."""


def _log_warning(text: str) -> None:
    from fms.log import Logger

    Logger(namespace="fms.apps.loader").warn("{text}", text=text)


def _from_module(module: ModuleType, attribute: str | None, use: str) -> Callable[..., Any]:
    if attribute:
        try:
            found: Callable[..., Any] = getattr(module, attribute)
        except AttributeError:
            raise ConfigError([f"plugin {use!r}: {module.__name__} has no {attribute!r}"]) from None
        return found
    candidates = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and obj.__module__ == module.__name__
        and IApplication.implementedBy(obj)
    ]
    where = getattr(module, "__file__", None) or module.__name__
    if not candidates:
        raise ConfigError(
            [f"plugin {use!r}: {where} defines no plugin class (a class derived from "
             "fms.apps.api.Plugin)"]
        )  # fmt: skip
    if len(candidates) > 1:
        names = ", ".join(sorted(c.__name__ for c in candidates))
        raise ConfigError(
            [f"plugin {use!r}: {where} defines several plugin classes ({names}): name the class "
             f"as use = '{use}:{sorted(c.__name__ for c in candidates)[0]}'"]
        )  # fmt: skip
    return candidates[0]


_loaded: dict[Path, tuple[str, ModuleType]] = {}
"""Each plugin file loaded, by path, with the digest of the text it was loaded from."""

_changed: list[Path] = []
"""Plugin files executed again because their text changed, since :func:`changed_files`."""


def changed_files() -> list[Path]:
    """The plugin files whose new text was loaded since the last call (for the reload's log
    line), and forget them."""
    found = list(dict.fromkeys(_changed))
    _changed.clear()
    return found


def _load_file(path: Path) -> ModuleType:
    """The module of a plugin file, executed again when the file's text has changed."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError([f"plugin file {path}: cannot read: {exc.strerror or exc}"]) from None
    known = _loaded.get(path.resolve())
    if known is not None and known[0] == digest:
        return known[1]
    name = f"fms_user_plugins.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError([f"plugin file {path}: cannot be loaded"])
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        if previous is None:
            del sys.modules[name]
        else:
            sys.modules[name] = previous
        raise ConfigError([f"plugin file {path}: {type(exc).__name__}: {exc}"]) from exc
    if known is not None:
        _changed.append(path)
    _loaded[path.resolve()] = (digest, module)
    return module


def resolve(use: str, search_dirs: Iterable[Path] = ()) -> Callable[..., Any]:
    """The factory (usually a class) that ``use`` names; ConfigError if there is none."""
    name, _, attribute = use.partition(":")
    if "." not in name:
        if not attribute:
            for entry in entry_points(group=ENTRY_POINT_GROUP, name=name):
                loaded: Callable[..., Any] = entry.load()
                return loaded
        for folder in search_dirs:
            path = folder / f"{name}.py"
            if path.is_file():
                return _from_module(_load_file(path), attribute or None, use)
        where = ", ".join(str(d) for d in search_dirs) or "no plugin folder"
        raise ConfigError(
            [f"plugin {use!r}: no entry point {name!r} in {ENTRY_POINT_GROUP} and no {name}.py "
             f"in {where}"]
        )  # fmt: skip
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError([f"plugin {use!r}: cannot import {name}: {exc}"]) from None
    return _from_module(module, attribute or None, use)


def build(
    spec: PluginSpec,
    search_dirs: Iterable[Path] = (),
    *,
    base: Path | None = None,
    warn: Warn | None = None,
) -> Any:
    """Load, check the options of, construct and verify one plugin; ConfigError explains what
    is wrong. ``base`` is the folder relative paths in options start from (the configuration
    file's; the working directory when None); ``warn`` receives the warnings."""
    where = f"{spec.where}: " if spec.where else ""
    key_where = spec.where or "options"
    use = spec.use
    try:
        factory = resolve(use, search_dirs)
    except ConfigError as exc:
        raise ConfigError([where + p for p in exc.problems]) from None
    options, problems = check_options(factory, spec.options, base or Path.cwd(), key_where, use)
    if problems:
        raise ConfigError(problems)
    if inspect.isclass(factory):
        for method, hook in misspelled_hooks(factory, ALL_HOOKS, Plugin):
            (warn or _log_warning)(
                f"{where}plugin {use!r}: method {method}() is not a hook and will never be "
                f"called: did you mean {hook}()? (start helper methods with an underscore)"
            )
    try:
        plugin = factory(**options)
    except Exception as exc:  # the plugin's own check of its options
        raise ConfigError(
            [f"{where}plugin {use!r}: refused its options: {type(exc).__name__}: {exc}"]
        ) from exc
    problems = hook_problems(plugin, HOOKS)
    if problems:
        raise ConfigError([f"{where}plugin {use!r}: {p}" for p in problems])
    try:
        verifyObject(IApplication, plugin)
    except Invalid as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError([f"{where}plugin {use!r}: its hooks are not usable: {reason}"]) from None
    check = getattr(plugin, "check_config", None)
    if callable(check):
        try:
            check()
        except Exception as exc:
            raise ConfigError([f"{where}plugin {use!r}: {type(exc).__name__}: {exc}"]) from exc
    return plugin


def build_all(config: Config, warn: Warn | None = None) -> dict[str | None, list[Any]]:
    """Every configured app's plugin chain (key None: ``[default_app]``), built and verified.

    All problems are collected before failing, so ``fms check-config`` reports them together.
    Warnings (a method that looks like a misspelled hook) go to ``warn``, by default the log.
    """
    chains: dict[str | None, list[Any]] = {}
    problems: list[str] = []
    apps = dict(config.apps)
    sections: list[tuple[str | None, Any]] = list(apps.items())
    if config.default_app is not None:
        sections.append((None, config.default_app))
    base = config.path(".").resolve()
    for name, app in sections:
        chain = []
        for spec in app.plugins:
            try:
                chain.append(build(spec, config.plugin_dirs, base=base, warn=warn))
            except ConfigError as exc:
                problems.extend(exc.problems)
        chains[name] = chain
    if problems:
        raise ConfigError(problems)
    return chains
