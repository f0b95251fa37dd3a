"""Named extension points: metrics, loaders, prompt templates and backends.

Each kind has one `Registry`. Built-ins register with its decorator when their module is
imported; an installed package adds its own through an entry-point group, without touching
this one (as pytest's `pytest11` and lm-evaluation-harness's registries work)::

    [project.entry-points."pytest_jallm.metrics"]
    my_metric = "my_package.scoring:my_metric"

The entry point's name is the name specs and options use; its object is what the registry
holds (a `Metric`, a loader function, a `Template`, a backend class). An entry point may
also name a module (`"my_package.scoring"`): importing it runs its decorators.
Entry points are imported lazily, once per process, each at the first lookup of its name, so an
installed extension that fails to import fails only the lookups (the runs) that name it.
"""

from __future__ import annotations

import importlib.metadata
import sys
import types
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, Callable, Generic, TypeVar

from .errors import JallmError

T = TypeVar("T")


class ExtensionError(JallmError):
    """A name registered twice, or an installed extension that cannot be loaded or is not of its kind."""


class Registry(Mapping[str, T], Generic[T]):
    """Name -> extension of one kind; a read-only mapping.

    Installed entry points are imported one name at a time, at the first lookup of their name:
    an extension that fails to import, or clashes with another, fails the lookups of its own name
    (each time, with the same message) and nothing else, so only the runs that use it fail."""

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
        self._modules: dict[str, weakref.ref[types.ModuleType] | None] = {}  # the module object that registered each name
        self._builtins_error: ExtensionError | None = None  # a built-in module that cannot be imported
        self._builtins_loaded = False
        self._pending: dict[str, list[importlib.metadata.EntryPoint]] | None = None  # not yet imported, by name
        self._failed: dict[str, ExtensionError] = {}  # name -> why its entry point cannot be used

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
        if (name in self._items and self._items[name] is not obj and not _same_definition(self._items[name], obj)
                and not self._reimported(name, origin)):
            raise ExtensionError(
                f"{self.kind} {name!r} is registered twice: by {self._origins[name]} and by {origin}; rename one"
            )
        self._items[name] = obj
        self._origins[name] = origin
        module = sys.modules.get(origin)
        self._modules[name] = weakref.ref(module) if module is not None else None

    def _reimported(self, name: str, origin: str) -> bool:
        """`origin`, the module that registered `name`, has been imported anew since (a module
        dropped from sys.modules and imported again, as pytester's in-process runs do): it registers
        its names again, Metric and Template objects included, which is not a clash."""
        then, now = self._modules.get(name), sys.modules.get(origin)
        return self._origins[name] == origin and then is not None and now is not None and then() is not now

    # --- loading ----------------------------------------------------------------------------

    def _prepare(self) -> dict[str, list[importlib.metadata.EntryPoint]]:
        """Import the built-in modules and read (not import) the installed entry points, once."""
        if self._builtins_error is not None:
            raise self._builtins_error
        if not self._builtins_loaded:
            self._builtins_loaded = True  # first: a built-in module's import may look names up
            for module in self._builtin_modules:
                try:
                    importlib.import_module(module)
                except Exception as e:
                    self._builtins_error = ExtensionError(
                        f"built-in {self.kind} module {module} cannot be imported: {type(e).__name__}: {e}")
                    raise self._builtins_error from e
        if self._pending is None:
            self._pending = {}
            for ep in sorted(importlib.metadata.entry_points(group=self.group), key=lambda e: e.name):
                self._pending.setdefault(ep.name, []).append(ep)
        return self._pending

    def _load(self, name: str) -> None:
        """Import the entry points named `name` (once); raises, now and at every later lookup, the
        ExtensionError of one that cannot be used."""
        pending = self._prepare()
        if name in self._failed:
            raise self._failed[name]
        for ep in pending.pop(name, ()):
            try:
                self._load_entry_point(ep)
            except ExtensionError as e:
                self._failed[name] = e
                raise

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint) -> None:
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
            return
        if self._check is not None:
            try:
                obj = self._check(ep.name, obj)
            except TypeError as e:
                raise ExtensionError(f"{origin}: {e}") from e
        if ep.name in self._items and self._items[ep.name] is obj:
            return  # the module's own decorator registered it on import
        self._add(ep.name, obj, origin)

    def _load_rest(self, modules_only: bool = False) -> None:
        """Import every entry point not imported yet (with `modules_only`, those naming a module); one
        that fails is left out (its own lookups fail)."""
        for name, eps in list(self._prepare().items()):
            if modules_only and all(":" in ep.value for ep in eps):
                continue
            try:
                self._load(name)
            except ExtensionError:
                pass

    def _lookup(self, name: str) -> bool:
        """Whether `name` is registered, importing what may register it: its own entry points, else
        the entry points that name a module (importing one may register more names than its own)."""
        if not isinstance(name, str):
            return False
        self._load(name)
        if name not in self._items and self._pending:
            self._load_rest(modules_only=True)
        return name in self._items

    def broken(self) -> dict[str, ExtensionError]:
        """The names whose entry points could not be used so far, and why."""
        return dict(self._failed)

    def registered_by(self, module_prefix: str) -> list[str]:
        """Names registered so far by modules under ``module_prefix`` (loads nothing)."""
        return [n for n, origin in self._origins.items() if origin == module_prefix or origin.startswith(module_prefix + ".")]

    def origin(self, name: str) -> str:
        """Where a name was registered: a module, or an entry point and its package."""
        if not self._lookup(name):
            raise KeyError(name)
        return self._origins[name]

    def __getitem__(self, name: str) -> T:
        if not self._lookup(name):
            raise KeyError(name)
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return self._lookup(name)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        """Every usable name (imports every installed extension of this kind; broken ones are left out)."""
        self._load_rest()
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(list(iter(self)))

    def __repr__(self) -> str:
        return f"<Registry {self.group}: {', '.join(self._items)}>"


def _same_definition(old: Any, new: Any) -> bool:
    """The same function or class defined again by its module being imported again (a reload, or a
    module dropped from sys.modules and imported anew, as pytester's in-process runs do): not a clash."""
    return (getattr(old, "__module__", None) is not None and getattr(old, "__module__", None) == getattr(new, "__module__", None)
            and getattr(old, "__qualname__", None) is not None
            and getattr(old, "__qualname__", None) == getattr(new, "__qualname__", None))
