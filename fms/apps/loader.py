"""Finding, building and checking application plugins named in a configuration.

``use`` in ``[[apps.NAME.plugins]]`` may be:

- a name registered in the ``fms.plugins`` entry-point group of an installed package (the
  shipped plugins are: ``streamkey``, ``ipfilter``, ``httpcallback``, ``recorder``, ``chat``,
  ``adobeauth``);
- the name of a file ``NAME.py`` in one of ``[server] plugin_dirs`` (default: ``plugins/``
  beside the configuration file), optionally ``NAME:Class``; without ``:Class`` the module must
  define exactly one class that implements :class:`~fms.apps.interfaces.IApplication`;
- a dotted path ``package.module:Class``.

The factory is called with the entry's other keys as keyword arguments, and the result is
checked with ``verifyObject``: a missing hook is a startup error naming the plugin and the hook.
"""

from __future__ import annotations

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

from fms.apps.interfaces import IApplication
from fms.config import Config, PluginSpec
from fms.errors import ConfigError

ENTRY_POINT_GROUP = "fms.plugins"


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
    if len(candidates) != 1:
        names = ", ".join(c.__name__ for c in candidates) or "none"
        raise ConfigError(
            [f"plugin {use!r}: name the class as '{use}:Class' (IApplication classes: {names})"]
        )
    return candidates[0]


def _load_file(path: Path) -> ModuleType:
    name = f"fms_user_plugins.{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError([f"plugin file {path}: cannot be loaded"])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError([f"plugin file {path}: {type(exc).__name__}: {exc}"]) from exc
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


def build(spec: PluginSpec, search_dirs: Iterable[Path] = ()) -> Any:
    """Load, construct and verify one plugin; ConfigError explains what is wrong."""
    where = f"{spec.where}: " if spec.where else ""
    try:
        factory = resolve(spec.use, search_dirs)
    except ConfigError as exc:
        raise ConfigError([where + p for p in exc.problems]) from None
    try:
        plugin = factory(**spec.options)
    except TypeError as exc:
        raise ConfigError([f"{where}plugin {spec.use!r}: bad options: {exc}"]) from None
    except Exception as exc:
        raise ConfigError(
            [f"{where}plugin {spec.use!r}: failed to start: {type(exc).__name__}: {exc}"]
        ) from exc
    try:
        verifyObject(IApplication, plugin)
    except Invalid as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(
            [f"{where}plugin {spec.use!r} does not implement IApplication: {reason}"]
        ) from None
    return plugin


def build_all(config: Config) -> dict[str | None, list[Any]]:
    """Every configured app's plugin chain (key None: ``[default_app]``), built and verified.

    All problems are collected before failing, so ``fms check-config`` reports them together.
    """
    chains: dict[str | None, list[Any]] = {}
    problems: list[str] = []
    apps = dict(config.apps)
    sections: list[tuple[str | None, Any]] = list(apps.items())
    if config.default_app is not None:
        sections.append((None, config.default_app))
    for name, app in sections:
        chain = []
        for spec in app.plugins:
            try:
                chain.append(build(spec, config.plugin_dirs))
            except ConfigError as exc:
                problems.extend(exc.problems)
        chains[name] = chain
    if problems:
        raise ConfigError(problems)
    return chains
