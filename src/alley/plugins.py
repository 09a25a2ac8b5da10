"""The plugin manager: alley's default plugins, then installed ones, minus disabled ones.

The defaults are plain modules named in :data:`DEFAULT_PLUGINS`, registered like any
third-party plugin. Installed plugins come from the ``alley`` entry-point group, each
loaded on its own so a broken one is named in the error. Environment variables are
read when a manager is built, never at import:

- ``ALLEY_DISABLE_PLUGINS=a,b`` (or ``--disable-plugin``): do not register these names;
- ``ALLEY_LOAD_PLUGINS=a,b``: load only these installed plugins (empty: none of them);
- ``ALLEY_TRACE_HOOKS=1``: print every hook call and result on stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from types import ModuleType

import pluggy

from alley import hookspecs
from alley.errors import AlleyError, PluginError
from alley.model import PluginInfo

ENTRY_POINT_GROUP = "alley"

#: name → module of the plugins that make alley's default behaviour.
DEFAULT_PLUGINS: Mapping[str, str] = {
    "filesystem": "alley_plugins.filesystem",
    "ordering": "alley_plugins.ordering",
    "python": "alley_plugins.python_executor",
    "mongoengine": "alley_plugins.mongoengine_connection",
    "databases": "alley_plugins.databases",
    "mongo-history": "alley_plugins.mongo_history",
    "lint-rules": "alley_plugins.lint_rules",
    "history-importers": "alley_plugins.history_importers",
}


def build_plugin_manager(
    disable: Iterable[str] = (),
    *,
    load_only: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
) -> pluggy.PluginManager:
    """A fresh plugin manager: defaults, installed plugins, then ``extra_plugins``.

    :param disable: Names of plugins (default or installed) not to register.
    :param load_only: Names of the installed plugins to load (empty: none, only the
        defaults); ``None`` reads ``ALLEY_LOAD_PLUGINS``, and loads all when it is unset.
    :param environ: Where ``ALLEY_*`` variables are read (``os.environ`` by default).
    :param extra_plugins: ``(name, plugin)`` pairs registered last, so they win over
        both defaults and installed plugins (the Python API and tests use this).
    :raises PluginError: a plugin failed to import or implements an unknown hook.
    """
    environ = os.environ if environ is None else environ
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    blocked = {*disable, *_split(environ.get("ALLEY_DISABLE_PLUGINS", ""))}
    for name in blocked:
        manager.set_blocked(name)

    for name, module_name in DEFAULT_PLUGINS.items():
        if name not in blocked:
            manager.register(importlib.import_module(module_name), name=name)

    if load_only is None and "ALLEY_LOAD_PLUGINS" in environ:
        load_only = _split(environ["ALLEY_LOAD_PLUGINS"])
    wanted = None if load_only is None else set(load_only)
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if (wanted is not None and entry_point.name not in wanted) or (entry_point.name in blocked):
            continue
        _load_entry_point(manager, entry_point)

    for name, plugin in extra_plugins:
        if name not in blocked:
            manager.register(plugin, name=name)

    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise PluginError(
            f"plugin {describe_plugin(manager, error.plugin)} is invalid: {_one_line(error)}",
            hint=f"disable it with ALLEY_DISABLE_PLUGINS={manager.get_name(error.plugin)}",
        ) from error

    if environ.get("ALLEY_TRACE_HOOKS"):
        manager.trace.root.setwriter(sys.stderr.write)
        manager.enable_tracing()
    return manager


def _load_entry_point(manager: pluggy.PluginManager, entry_point: metadata.EntryPoint) -> None:
    dist = entry_point.dist
    where = f" from {dist.name} {dist.version}" if dist else ""
    try:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=entry_point.name)
    except pluggy.PluginValidationError as error:
        raise PluginError(
            f"plugin {entry_point.name!r}{where} is invalid: {_one_line(error)}",
            hint=f"disable it with ALLEY_DISABLE_PLUGINS={entry_point.name}",
        ) from error
    except Exception as error:
        raise PluginError(
            f"plugin {entry_point.name!r}{where} failed to load: {type(error).__name__}: {error}",
            hint=f"disable it with ALLEY_DISABLE_PLUGINS={entry_point.name}",
        ) from error


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _split(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def describe_plugin(manager: pluggy.PluginManager, plugin: object) -> str:
    """``'name' (distribution version)`` for messages."""
    name = manager.get_name(plugin) or repr(plugin)
    for candidate, dist in manager.list_plugin_distinfo():
        if candidate is plugin:
            return f"{name!r} ({dist.project_name} {dist.version})"
    return repr(name)


def plugin_infos(manager: pluggy.PluginManager) -> list[PluginInfo]:
    """What ``alley plugins`` lists: every registered plugin and the hooks it implements."""
    dists = {id(plugin): dist for plugin, dist in manager.list_plugin_distinfo()}
    infos = []
    for name, plugin in manager.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        hooks = tuple(sorted(caller.name for caller in manager.get_hookcallers(plugin) or ()))
        module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
        default = name in DEFAULT_PLUGINS and DEFAULT_PLUGINS[name] == module
        infos.append(
            PluginInfo(
                name=name,
                module=module,
                distribution=dist.project_name if dist else ("alley" if default else None),
                version=dist.version if dist else (_alley_version() if default else None),
                hooks=hooks,
                default=default,
            )
        )
    return infos


def blame(
    manager: pluggy.PluginManager, error: BaseException, store_modules: Sequence[str] = ()
) -> PluginError | None:
    """Turn an unexpected exception raised inside a plugin into a PluginError naming it.

    ``store_modules`` are the modules of the history store's class and its bases: an
    error whose traceback passes through them was raised by the store, and is blamed on
    the plugin of the store's own class (a store that inherits the default's methods is
    its own plugin's). Otherwise the innermost traceback frame that belongs to a
    registered plugin's module names the culprit. ``AlleyError`` is alley's own
    vocabulary and passes through unchanged.
    """
    if isinstance(error, AlleyError):
        return None
    modules: dict[str, object] = {}
    for _name, plugin in manager.list_name_plugin():
        if plugin is not None:
            module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
            modules[module] = plugin
    # The innermost frame in a plugin's module or one of its submodules (``pkg.hooks``
    # belongs to plugin ``pkg``); the longest module name wins when packages nest.
    culprit = None
    in_store = False
    traceback = error.__traceback__
    while traceback is not None:
        frame_module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        in_store = in_store or frame_module in store_modules
        owners = [m for m in modules if frame_module == m or frame_module.startswith(m + ".")]
        if owners:
            culprit = modules[max(owners, key=len)]
        traceback = traceback.tb_next
    if in_store:
        culprit = _owner(modules, store_modules[0]) or culprit
    if culprit is None:
        return None
    name = manager.get_name(culprit)
    return PluginError(
        f"plugin {describe_plugin(manager, culprit)} failed: "
        f"{type(error).__name__}: {_one_line(error)}",
        hint=f"run with --verbose for the traceback, or disable it with "
        f"ALLEY_DISABLE_PLUGINS={name}",
    )


def _owner(modules: dict[str, object], module: str) -> object | None:
    owners = [m for m in modules if module == m or module.startswith(m + ".")]
    return modules[max(owners, key=len)] if owners else None


def _alley_version() -> str:
    from alley import __version__

    return __version__
