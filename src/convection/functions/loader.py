"""The loader: a functions folder on disk -> a :class:`LoadedApp` (registry, schema, crons,
HTTP router, auth providers).

The folder is imported as a *private package* under a fresh name ``_convection_app_<n>``
(never ``convex``, which is the PyPI client), through a meta-path finder that serves only
that name. Every folder below it is a package, with or without ``__init__.py``, so modules
import each other with relative imports. Files and folders whose names start with ``_`` or
``.`` are not loaded as function modules (``_generated/``, ``__pycache__``, helpers); user
code may still import them explicitly. Source is always compiled from the file (no ``.pyc``
is read or written), so an edit is seen by the next load even within the same second.

Registry rule (docs/getting-started.md): a function's path is ``<module path>:<module-level name>`` in the
module that *defines* it (``handler.__module__``), so importing a function into another module
does not give it a second path. A decorated function bound only in modules other than its
defining one (made by a factory in a helper module, say) is registered in each module that
binds it. ``ConvexFunction.path`` is set to the function's primary path.

Invariants: once :func:`load_app` returns, at most one private package per folder is in
``sys.modules``: a successful reload (hot reload) removes the previous one, a failed load
leaves nothing of its own behind and the previous load untouched.
A module that fails to import raises :class:`~convection.errors.ModuleLoadError` naming the
file (``convex/orders.py``), the line in the user's code and the exception.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import itertools
import re
import sys
import threading
import traceback
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convection.errors import ConvectionError, ModuleLoadError
from convection.functions.crons import Crons
from convection.functions.decorators import ConvexFunction, FunctionKind, Visibility
from convection.functions.http_router import HttpRouter
from convection.functions.paths import (
    DEFAULT_EXPORT,
    InvalidFunctionPath,
    canonical_path,
    check_function_name,
)
from convection.schema.schema import SchemaDefinition

PACKAGE_PREFIX = "_convection_app_"
MAX_MODULE_COMPONENT_LENGTH = 64
_COMPONENT_RE = re.compile(r"[A-Za-z0-9_]+")

# --- the private import machinery ---------------------------------------------------------


class _SourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles straight from source: no bytecode cache (mtime granularity would let a quick
    edit be missed on reload, and we should not litter the user's folder)."""

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


class _FolderLoader(importlib.abc.Loader):
    """A folder without ``__init__.py``: an empty package module."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _AppFinder(importlib.abc.MetaPathFinder):
    """Finds modules of the loaded private packages, and nothing else."""

    def __init__(self) -> None:
        self.roots: dict[str, Path] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        root, *parts = fullname.split(".")
        folder = self.roots.get(root)
        if folder is None:
            return None
        base = folder.joinpath(*parts)
        if base.is_dir():
            init = base / "__init__.py"
            if init.is_file():
                return importlib.util.spec_from_file_location(
                    fullname,
                    init,
                    loader=_SourceLoader(fullname, str(init)),
                    submodule_search_locations=[str(base)],
                )
            spec = importlib.machinery.ModuleSpec(fullname, _FolderLoader(), is_package=True)
            spec.submodule_search_locations = [str(base)]
            return spec
        if parts:
            file = base.with_name(parts[-1] + ".py")
            if file.is_file():
                return importlib.util.spec_from_file_location(
                    fullname, file, loader=_SourceLoader(fullname, str(file))
                )
        return None


_FINDER = _AppFinder()
_LOCK = threading.RLock()
_COUNTER = itertools.count(1)
_CURRENT: dict[Path, str] = {}  # resolved folder -> name of its package in sys.modules


def _install_finder() -> None:
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def _purge(package: str) -> None:
    """Forget a private package: its modules leave sys.modules, its root leaves the finder."""
    _FINDER.roots.pop(package, None)
    prefix = package + "."
    for name in [n for n in sys.modules if n == package or n.startswith(prefix)]:
        del sys.modules[name]


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionSpec:
    """A registered function: the decorated function plus where it lives.

    ``module`` is the module path (``"queries/orders"``), ``name`` the module-level name,
    ``file``/``line`` the handler's source location for messages (``"convex/orders.py"``,
    relative to the folder's parent; ``line`` None when unknown).
    """

    path: str
    function: ConvexFunction
    module: str
    name: str
    file: str
    line: int | None

    @property
    def kind(self) -> FunctionKind:
        return self.function.kind

    @property
    def visibility(self) -> Visibility:
        return self.function.visibility

    @property
    def handler(self) -> Any:
        return self.function.handler

    @property
    def args_validator(self) -> Any:
        return self.function.args_validator

    @property
    def returns_validator(self) -> Any:
        return self.function.returns_validator

    @property
    def is_async(self) -> bool:
        return self.function.is_async

    @property
    def display_path(self) -> str:
        """The path as shown in messages: ``"messages:list"``, ``"messages"`` for default."""
        return self.module if self.name == DEFAULT_EXPORT else self.path


@dataclass
class LoadedApp:
    """Everything a functions folder defines, as of one load.

    ``functions`` holds queries, mutations and actions by canonical path; HTTP actions bound
    to module-level names are in ``http_actions`` (reachable only through ``http``).
    ``modules`` lists the loaded function modules (``"queries/orders"``) in load order.
    ``package`` is the private package name the modules were imported under.
    """

    folder: Path
    package: str
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    http_actions: dict[str, FunctionSpec] = field(default_factory=dict)
    schema: SchemaDefinition | None = None
    crons: Crons | None = None
    http: HttpRouter | None = None
    auth_providers: list[dict[str, Any]] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)

    def get(self, path: str) -> FunctionSpec | None:
        """The function at ``path`` (any accepted spelling), or None (also for bad paths)."""
        try:
            return self.functions.get(canonical_path(path))
        except InvalidFunctionPath:
            return None

    def function_paths_json(self) -> list[dict[str, Any]]:
        """One JSON object per function, sorted by path, for codegen and the dashboard.

        ``{"path", "module", "name", "kind", "visibility", "args", "returns"}`` where
        ``args``/``returns`` are the validators' JSON form, or None when not declared.
        """
        return [
            {
                "path": spec.path,
                "module": spec.module,
                "name": spec.name,
                "kind": spec.kind,
                "visibility": spec.visibility,
                "args": _validator_json(spec.args_validator),
                "returns": _validator_json(spec.returns_validator),
            }
            for _, spec in sorted(self.functions.items())
        ]

    def unload(self) -> None:
        """Remove this load's private package from ``sys.modules`` (idempotent)."""
        with _LOCK:
            _purge(self.package)
            key = self.folder.resolve()
            if _CURRENT.get(key) == self.package:
                del _CURRENT[key]


def _validator_json(validator: Any) -> Any:
    if validator is None:
        return None
    return validator.to_json()


# --- loading ------------------------------------------------------------------------------


def load_app(folder: str | Path) -> LoadedApp:
    """Import the functions folder ``folder`` and collect what it defines.

    Raises ModuleLoadError when a module fails to import or defines something invalid.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModuleLoadError(f"The functions folder {str(folder)!r} does not exist.")
    resolved = folder.resolve()
    with _LOCK:
        package = f"{PACKAGE_PREFIX}{next(_COUNTER)}"
        _install_finder()
        _FINDER.roots[package] = resolved
        try:
            app = _load(folder, resolved, package)
        except BaseException:
            _purge(package)
            raise
        # Only a successful load replaces the previous one: after a failed reload the last
        # good app keeps working (its deferred imports included).
        previous = _CURRENT.get(resolved)
        if previous is not None:
            _purge(previous)
        _CURRENT[resolved] = package
        return app


def _load(folder: Path, resolved: Path, package: str) -> LoadedApp:
    folder_name = resolved.name
    module_files = _discover(resolved, folder_name)
    app = LoadedApp(folder=folder, package=package)
    modules: list[tuple[str, Path, types.ModuleType]] = []
    _import(package, resolved, folder_name, resolved)
    for rel, file in module_files:
        dotted = package + "." + rel.replace("/", ".")
        modules.append((rel, file, _import(dotted, resolved, folder_name, file)))
    app.modules = [rel for rel, _, _ in modules]
    _register(app, modules, resolved, folder_name)
    by_name = {rel: module for rel, _, module in modules}
    display = {rel: _display_file(file, resolved, folder_name) for rel, file, _ in modules}
    if "schema" in by_name:
        app.schema = _special(
            by_name["schema"], ("schema", DEFAULT_EXPORT), SchemaDefinition,
            display["schema"], "schema = define_schema({...})",
        )
    if "crons" in by_name:
        app.crons = _special(
            by_name["crons"], ("crons", DEFAULT_EXPORT), Crons, display["crons"],
            "crons = Crons()",
        )
        _check_crons(app, display["crons"])
    if "http" in by_name:
        app.http = _special(
            by_name["http"], ("http", DEFAULT_EXPORT), HttpRouter, display["http"],
            "http = HttpRouter()",
        )
    if "auth_config" in by_name:
        app.auth_providers = _auth_providers(by_name["auth_config"], display["auth_config"])
    return app


def _discover(root: Path, folder_name: str) -> list[tuple[str, Path]]:
    """The function modules under ``root``: (module path, file), sorted by module path."""
    found: list[tuple[str, Path]] = []

    def walk(directory: Path, prefix: tuple[str, ...]) -> None:
        entries = sorted(directory.iterdir(), key=lambda p: p.name)
        subdirs = {p.name for p in entries if p.is_dir()}
        for entry in entries:
            name = entry.name
            if name.startswith(("_", ".")):
                continue
            if entry.is_dir():
                walk(entry, (*prefix, name))
            elif name.endswith(".py") and entry.is_file():
                stem = name[: -len(".py")]
                rel = "/".join((*prefix, stem))
                shown = f"{folder_name}/{rel}.py"
                _check_component(stem, shown)
                for part in prefix:
                    _check_component(part, shown)
                if stem in subdirs and _has_modules(directory / stem):
                    raise ModuleLoadError(
                        f"{shown}: both the module {stem}.py and the folder {stem}/ exist; "
                        "Python can import only one of them. Rename one.",
                        file=shown,
                    )
                found.append((rel, entry))

    walk(root, ())
    found.sort(key=lambda item: item[0])
    return found


def _has_modules(directory: Path) -> bool:
    return any(
        not p.name.startswith(("_", "."))
        and ((p.is_file() and p.suffix == ".py") or (p.is_dir() and _has_modules(p)))
        for p in directory.iterdir()
    )


def _check_component(component: str, shown: str) -> None:
    if (
        not _COMPONENT_RE.fullmatch(component)
        or not re.search(r"[A-Za-z0-9]", component)
        or len(component) > MAX_MODULE_COMPONENT_LENGTH
    ):
        raise ModuleLoadError(
            f"{shown}: {component!r} is not a valid module name: use ASCII letters, digits and "
            f"'_' (at most {MAX_MODULE_COMPONENT_LENGTH} characters), or start the name with "
            "'_' to keep it out of the functions.",
            file=shown,
        )


def _import(dotted: str, root: Path, folder_name: str, file: Path) -> types.ModuleType:
    try:
        return importlib.import_module(dotted)
    except Exception as exc:
        raise _load_error(exc, root, folder_name, file) from exc


def _display_file(file: str | Path, root: Path, folder_name: str) -> str:
    try:
        rel = Path(file).resolve().relative_to(root)
    except (ValueError, OSError):
        return str(file)
    if rel == Path("."):
        return folder_name
    return f"{folder_name}/{rel.as_posix()}"


def _inside(file: str | None, root: Path) -> bool:
    if not file:
        return False
    try:
        Path(file).resolve().relative_to(root)
    except (ValueError, OSError):
        return False
    return True


def _load_error(exc: BaseException, root: Path, folder_name: str, file: Path) -> ModuleLoadError:
    """A ModuleLoadError naming the innermost place in the user's code that failed."""
    where: str | None = None
    line: int | None = None
    if isinstance(exc, SyntaxError) and _inside(exc.filename, root):
        where, line = exc.filename, exc.lineno
        detail = f"{type(exc).__name__}: {exc.msg}"
    else:
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if _inside(frame.filename, root):
                where, line = frame.filename, frame.lineno
                break
        detail = f"{type(exc).__name__}: {exc}"
    shown = _display_file(where if where is not None else file, root, folder_name)
    location = shown if line is None else f"{shown}:{line}"
    return ModuleLoadError(f"{location}: {detail}", file=shown, line=line)


def _register(
    app: LoadedApp,
    modules: list[tuple[str, Path, types.ModuleType]],
    root: Path,
    folder_name: str,
) -> None:
    # function object id -> its module-level bindings (module path, module name, name)
    bindings: dict[int, list[tuple[str, str, str]]] = {}
    functions: dict[int, ConvexFunction] = {}
    for rel, _, module in modules:
        for name, value in list(vars(module).items()):
            if isinstance(value, ConvexFunction):
                functions[id(value)] = value
                bindings.setdefault(id(value), []).append((rel, module.__name__, name))
    module_files = {rel: file for rel, file, _ in modules}
    for key, function in functions.items():
        bound = bindings[key]
        defining = [b for b in bound if b[1] == function.__module__]
        chosen = defining or bound
        for rel, _, name in chosen:
            shown_module = _display_file(module_files[rel], root, folder_name)
            try:
                check_function_name(name)
            except InvalidFunctionPath as exc:
                raise ModuleLoadError(
                    f"{shown_module}: {exc.message} Rename the module-level name {name!r}.",
                    file=shown_module,
                ) from exc
            path = f"{rel}:{name}"
            file, line = _source_location(function, root, folder_name, shown_module)
            spec = FunctionSpec(path, function, rel, name, file, line)
            if function.kind == "httpAction":
                app.http_actions[path] = spec
            else:
                app.functions[path] = spec
        function.path = _primary_path(function, chosen)


def _primary_path(function: ConvexFunction, chosen: list[tuple[str, str, str]]) -> str:
    """The path a function object stands for when passed as a reference: its own name if
    it is bound under it, else its first non-default name, else the first."""
    for rel, _, name in chosen:
        if name == function.__name__:
            return f"{rel}:{name}"
    for rel, _, name in chosen:
        if name != DEFAULT_EXPORT:
            return f"{rel}:{name}"
    rel, _, name = chosen[0]
    return f"{rel}:{name}"


def _source_location(
    function: ConvexFunction, root: Path, folder_name: str, fallback: str
) -> tuple[str, int | None]:
    code = getattr(_unwrap(function.handler), "__code__", None)
    if not isinstance(code, types.CodeType):
        return fallback, None
    return _display_file(code.co_filename, root, folder_name), code.co_firstlineno


def _unwrap(handler: Any) -> Any:
    seen = 0
    while hasattr(handler, "__wrapped__") and seen < 100:
        handler = handler.__wrapped__
        seen += 1
    return handler


def _special(
    module: types.ModuleType,
    names: tuple[str, ...],
    expected: type[Any],
    shown: str,
    example: str,
) -> Any:
    for name in names:
        value = getattr(module, name, None)
        if value is None:
            continue
        if not isinstance(value, expected):
            raise ModuleLoadError(
                f"{shown}: {name!r} is a {type(value).__name__}, expected {expected.__name__} "
                f"({example}).",
                file=shown,
            )
        return value
    raise ModuleLoadError(
        f"{shown}: defines no {' or '.join(map(repr, names))}; write {example}.", file=shown
    )


def _check_crons(app: LoadedApp, shown: str) -> None:
    assert app.crons is not None
    for job in app.crons:
        try:
            path = job.function_path
        except ConvectionError as exc:
            raise ModuleLoadError(f"{shown}: cron job {job.name!r}: {exc}", file=shown) from exc
        spec = app.functions.get(path)
        if spec is None:
            raise ModuleLoadError(
                f"{shown}: cron job {job.name!r} runs {path!r}, but there is no such function.",
                file=shown,
            )
        if spec.kind not in ("mutation", "action"):
            raise ModuleLoadError(
                f"{shown}: cron job {job.name!r} runs {path!r}, a {spec.kind}; crons run "
                "mutations and actions.",
                file=shown,
            )


def _auth_providers(module: types.ModuleType, shown: str) -> list[dict[str, Any]]:
    providers = getattr(module, "providers", None)
    if providers is None:
        default = getattr(module, DEFAULT_EXPORT, None)
        if isinstance(default, Mapping):
            providers = default.get("providers")
    if providers is None:
        raise ModuleLoadError(
            f"{shown}: defines no 'providers'; write providers = [{{\"domain\": ..., "
            "\"applicationID\": ...}].",
            file=shown,
        )
    if not isinstance(providers, list | tuple) or not all(
        isinstance(p, Mapping) for p in providers
    ):
        raise ModuleLoadError(
            f"{shown}: 'providers' must be a list of dicts, got {providers!r}.", file=shown
        )
    return [dict(p) for p in providers]
