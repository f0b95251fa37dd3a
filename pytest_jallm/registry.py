"""Named extension points: metrics, loaders, prompt templates and backends.

Each kind has one `Registry`. Built-ins register with its decorator when their module is
imported; an installed package adds its own through an entry-point group, without touching
this one (as pytest's `pytest11` and lm-evaluation-harness's registries work)::

    [project.entry-points."pytest_jallm.metrics"]
    my_metric = "my_package.scoring:my_metric"

The entry point's name is the name specs and options use; its object is what the registry
holds (a `Metric`, a loader function, a `Template`, a backend class). An entry point may
also name a module (`"my_package.scoring"`): importing it runs its decorators.
Entry points are loaded lazily, once per process, at the first lookup.
"""

from __future__ import annotations

import importlib.metadata
import types
from collections.abc import Iterator, Mapping
from typing import Any, Callable, Generic, TypeVar

from .errors import JallmError

T = TypeVar("T")


class ExtensionError(JallmError):
    """A name registered twice, or an installed extension that cannot be loaded or is not of its kind."""


class Registry(Mapping[str, T], Generic[T]):
    """Name -> extension of one kind; a read-only mapping once entry points are loaded."""

    def __init__(self, kind: str, group: str, check: Callable[[str, Any], T] | None = None,
                 builtin_modules: tuple[str, ...] = ()):
        self.kind = kind  # "metric", "loader", ... (for messages)
        self.group = group  # the entry-point group an installed package uses
        self._check = check  # validates/converts an entry point's object (raises TypeError)
        # Modules of this package that register through the public decorator, as an installed
        # extension would (pytest_jallm.ifeval.benchmark): imported at the first lookup, like the
        # entry points, because they import the registry's own module.
        self._builtin_modules = builtin_modules
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._loaded = False
        self._error: ExtensionError | None = None  # a broken extension fails every lookup, not just the first

    def register(self, name: str, obj: Any = None, *, origin: str | None = None) -> Any:
        """`@registry.register("name")` on a function or class, or `registry.register("name", obj)`;
        `origin` (default: the object's module) is what a clash names."""
        if obj is not None:
            self._add(name, obj, origin or getattr(obj, "__module__", None) or type(obj).__module__)
            return obj

        def deco(target: Any) -> Any:
            self._add(name, target, getattr(target, "__module__", "?"))
            return target

        return deco

    def _add(self, name: str, obj: Any, origin: str) -> None:
        if not isinstance(name, str) or not name:
            raise ExtensionError(f"{self.kind} name must be a non-empty string, got {name!r} (from {origin})")
        if name in self._items and self._items[name] is not obj and not _same_definition(self._items[name], obj):
            raise ExtensionError(
                f"{self.kind} {name!r} is registered twice: by {self._origins[name]} and by {origin}; rename one"
            )
        self._items[name] = obj
        self._origins[name] = origin

    def load_entry_points(self) -> None:
        """Import every installed `self.group` entry point (once)."""
        if self._error is not None:
            raise self._error
        if self._loaded:
            return
        self._loaded = True  # first: an extension's import may look names up
        try:
            for module in self._builtin_modules:
                try:
                    importlib.import_module(module)
                except Exception as e:
                    raise ExtensionError(f"built-in {self.kind} module {module} cannot be imported: "
                                         f"{type(e).__name__}: {e}") from e
            self._load_entry_points()
        except ExtensionError as e:
            self._error = e
            raise

    def _load_entry_points(self) -> None:
        for ep in sorted(importlib.metadata.entry_points(group=self.group), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            origin = f"entry point {ep.name} = {ep.value} in group {self.group}" + (
                f" (package {dist.name} {dist.version})" if dist is not None else ""
            )
            try:
                obj = ep.load()
            except Exception as e:
                raise ExtensionError(f"{origin}: cannot be imported: {type(e).__name__}: {e}") from e
            if isinstance(obj, types.ModuleType):
                if ep.name not in self._items:
                    raise ExtensionError(f"{origin}: importing the module registered no {self.kind} named {ep.name!r}")
                continue
            if self._check is not None:
                try:
                    obj = self._check(ep.name, obj)
                except TypeError as e:
                    raise ExtensionError(f"{origin}: {e}") from e
            if ep.name in self._items and self._items[ep.name] is obj:
                continue  # the module's own decorator registered it on import
            self._add(ep.name, obj, origin)

    def registered_by(self, module_prefix: str) -> list[str]:
        """Names registered so far by modules under ``module_prefix`` (loads nothing)."""
        return [n for n, origin in self._origins.items() if origin == module_prefix or origin.startswith(module_prefix + ".")]

    def origin(self, name: str) -> str:
        """Where a name was registered: a module, or an entry point and its package."""
        self.load_entry_points()
        return self._origins[name]

    def __getitem__(self, name: str) -> T:
        self.load_entry_points()
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        self.load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        self.load_entry_points()
        return iter(list(self._items))

    def __len__(self) -> int:
        self.load_entry_points()
        return len(self._items)

    def __repr__(self) -> str:
        return f"<Registry {self.group}: {', '.join(self._items)}>"


def _same_definition(old: Any, new: Any) -> bool:
    """The same function or class defined again by its module being imported again (a reload, or a
    module dropped from sys.modules and imported anew, as pytester's in-process runs do): not a clash."""
    return (getattr(old, "__module__", None) is not None and getattr(old, "__module__", None) == getattr(new, "__module__", None)
            and getattr(old, "__qualname__", None) is not None
            and getattr(old, "__qualname__", None) == getattr(new, "__qualname__", None))
