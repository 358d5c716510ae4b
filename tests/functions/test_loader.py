from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from convection.errors import ModuleLoadError
from convection.functions.crons import Crons
from convection.functions.decorators import ConvexFunction
from convection.functions.http_router import HttpRouter
from convection.functions.loader import PACKAGE_PREFIX, LoadedApp, load_app
from convection.functions.references import api, function_path
from convection.schema.schema import SchemaDefinition

SAMPLE = Path(__file__).parent / "sample_app" / "convex"


def _private_modules() -> set[str]:
    return {name for name in sys.modules if name.startswith(PACKAGE_PREFIX)}


@pytest.fixture
def sample() -> Iterator[LoadedApp]:
    app = load_app(SAMPLE)
    yield app
    app.unload()


def _write(folder: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


# --- the sample app -----------------------------------------------------------------------


def test_registry_has_exactly_the_right_paths(sample: LoadedApp) -> None:
    summary = {
        path: (spec.kind, spec.visibility, spec.is_async) for path, spec in sample.functions.items()
    }
    assert summary == {
        "actions:send_confirmation": ("action", "public", True),
        "actions:sync_thing": ("action", "internal", False),
        "admin/users:lookup": ("query", "internal", False),
        "admin/users:refresh": ("action", "public", True),
        "messages:default": ("query", "public", False),
        "messages:list_all": ("query", "public", False),
        "messages:send": ("mutation", "public", False),
        "orders:cancel_order": ("mutation", "public", False),
        "orders:delete_expired": ("mutation", "internal", False),
        "orders:get_order": ("query", "public", False),
        "queries/orders:get_my_orders": ("query", "public", False),
        "stats:count_orders": ("query", "public", False),
    }
    assert sorted(sample.http_actions) == ["http:serve_file", "http:stripe_webhook"]


def test_modules(sample: LoadedApp) -> None:
    assert sample.modules == [
        "actions",
        "admin/users",
        "auth_config",
        "crons",
        "http",
        "messages",
        "orders",
        "queries/orders",
        "schema",
        "stats",
    ]
    assert sample.package.startswith(PACKAGE_PREFIX)
    assert sample.package in sys.modules
    assert "convex" not in sample.package


def test_spec_details(sample: LoadedApp) -> None:
    spec = sample.functions["orders:cancel_order"]
    assert (spec.module, spec.name, spec.file) == ("orders", "cancel_order", "convex/orders.py")
    assert spec.line == 11  # the decorator line
    assert spec.args_validator is not None and spec.returns_validator is not None
    assert sample.functions["orders:get_order"].returns_validator is None
    assert sample.functions["orders:delete_expired"].args_validator is None
    assert sample.functions["messages:send"].args_validator is not None
    assert sample.functions["messages:default"].display_path == "messages"
    assert sample.functions["messages:list_all"].display_path == "messages:list_all"
    # The factory-made function's source is in the skipped helper module.
    assert sample.functions["stats:count_orders"].file == "convex/_helpers.py"


def test_imported_function_keeps_its_one_path(sample: LoadedApp) -> None:
    get_order = sample.functions["orders:get_order"].function
    assert get_order.path == "orders:get_order"
    nested = sys.modules[sample.package + ".queries.orders"]
    assert nested.get_order is get_order  # imported there, not registered there
    assert function_path(get_order) == "orders:get_order"
    # A default export bound under two names: the object stands for its own name.
    list_all = sample.functions["messages:list_all"].function
    assert sample.functions["messages:default"].function is list_all
    assert list_all.path == "messages:list_all"


def test_get_normalises_paths(sample: LoadedApp) -> None:
    assert sample.get("messages") is sample.functions["messages:default"]
    assert sample.get("messages.js:send") is sample.functions["messages:send"]
    assert sample.get("queries/orders.js:get_my_orders") is not None
    assert sample.get("orders:nope") is None
    assert sample.get("not a path") is None
    assert sample.get("http:stripe_webhook") is None  # HTTP actions are not callable
    assert sample.get(api.admin.users.lookup.path) is not None


def test_special_modules(sample: LoadedApp) -> None:
    assert isinstance(sample.schema, SchemaDefinition)
    assert isinstance(sample.crons, Crons)
    assert {job.name: job.function_path for job in sample.crons} == {
        "clear expired": "orders:delete_expired",
        "sync": "actions:sync_thing",
        "weekly cancel": "orders:cancel_order",
    }
    assert sample.crons.jobs["weekly cancel"].args == {"orderId": "abc"}
    assert isinstance(sample.http, HttpRouter)
    route = sample.http.lookup("POST", "/stripe/webhook")
    assert route is not None
    assert route.handler is sample.http_actions["http:stripe_webhook"].function
    prefix = sample.http.lookup("GET", "/files/a.txt")
    assert prefix is not None and prefix.handler.path == "http:serve_file"
    assert sample.auth_providers == [
        {"domain": "https://issuer.example.com", "applicationID": "my-app"}
    ]


def test_function_paths_json(sample: LoadedApp) -> None:
    entries = sample.function_paths_json()
    assert [e["path"] for e in entries] == sorted(sample.functions)
    cancel = next(e for e in entries if e["path"] == "orders:cancel_order")
    assert cancel["kind"] == "mutation" and cancel["visibility"] == "public"
    assert cancel["module"] == "orders" and cancel["name"] == "cancel_order"
    assert cancel["args"] is not None and cancel["returns"] is not None
    expired = next(e for e in entries if e["path"] == "orders:delete_expired")
    assert expired["args"] is None and expired["returns"] is None


def test_unload_purges_modules() -> None:
    app = load_app(SAMPLE)
    assert app.package in _private_modules() or any(
        m.startswith(app.package + ".") for m in _private_modules()
    )
    app.unload()
    assert not {m for m in _private_modules() if m.split(".")[0] == app.package}
    app.unload()  # idempotent


# --- reload -------------------------------------------------------------------------------


def test_reload_gives_fresh_modules(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "convex",
        {
            "counter.py": """
                from convection import query

                @query
                def value(ctx):
                    return 1
            """,
            "util/helpers.py": "X = 1\n",
        },
    )
    first = load_app(folder)
    try:
        first_fn = first.functions["counter:value"].function
        assert first_fn(None) == 1
        # Same size, same second: a bytecode cache keyed on mtime would miss this edit.
        (folder / "counter.py").write_text(
            (folder / "counter.py").read_text().replace("return 1", "return 2")
        )
        second = load_app(folder)
        try:
            second_fn = second.functions["counter:value"].function
            assert second_fn is not first_fn
            assert second_fn(None) == 2
            assert second.package != first.package
            assert not {m for m in sys.modules if m.split(".")[0] == first.package}
            assert second.package + ".counter" in sys.modules
            assert first_fn.path == "counter:value"  # the old object is left alone
            assert not list(folder.rglob("*.pyc"))
        finally:
            second.unload()
    finally:
        first.unload()
    assert not {m for m in sys.modules if m.split(".")[0] in (first.package, second.package)}


def test_failed_reload_keeps_the_previous_app(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "convex",
        {
            "m.py": """
                from convection import query

                @query
                def f(ctx):
                    from .n import N
                    return N
            """,
            "n.py": "N = 1\n",
        },
    )
    good = load_app(folder)
    try:
        (folder / "m.py").write_text("syntax error here\n")
        with pytest.raises(ModuleLoadError):
            load_app(folder)
        assert good.package in sys.modules
        assert good.functions["m:f"].function(None) == 1  # its deferred import still works
    finally:
        good.unload()


def test_two_folders_coexist(tmp_path: Path) -> None:
    a = _write(tmp_path / "a" / "convex", {"m.py": "from convection import query\nf = query(lambda ctx: 'a')\n"})
    b = _write(tmp_path / "b" / "convex", {"m.py": "from convection import query\nf = query(lambda ctx: 'b')\n"})
    app_a, app_b = load_app(a), load_app(b)
    try:
        assert app_a.functions["m:f"].function(None) == "a"
        assert app_b.functions["m:f"].function(None) == "b"
        assert app_a.package + ".m" in sys.modules and app_b.package + ".m" in sys.modules
    finally:
        app_a.unload()
        app_b.unload()


# --- errors -------------------------------------------------------------------------------


def _load_error(folder: Path) -> ModuleLoadError:
    before = _private_modules()
    with pytest.raises(ModuleLoadError) as info:
        load_app(folder)
    assert _private_modules() == before  # a failed load leaves nothing behind
    assert info.value.code == "ModuleLoadError"
    return info.value


def test_syntax_error_reports_file_and_line(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "convex",
        {"ok.py": "X = 1\n", "orders.py": "from convection import query\n\n\ndef f(:\n    pass\n"},
    )
    error = _load_error(folder)
    assert error.file == "convex/orders.py"
    assert error.line == 4
    assert error.message.startswith("convex/orders.py:4: SyntaxError: ")


def test_runtime_error_reports_innermost_user_line(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "convex",
        {
            "orders.py": """
                from convection import query


                def helper():
                    return x


                VALUE = helper()
            """,
        },
    )
    error = _load_error(folder)
    assert (error.file, error.line) == ("convex/orders.py", 6)
    assert error.message == "convex/orders.py:6: NameError: name 'x' is not defined"
    assert isinstance(error.__cause__, NameError)


def test_error_in_imported_module_names_that_module(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "convex",
        {
            "a.py": "from .sub.b import thing\n",
            "sub/b.py": "thing = 1\nraise RuntimeError('boom')\n",
        },
    )
    error = _load_error(folder)
    assert error.message == "convex/sub/b.py:2: RuntimeError: boom"


def test_syntax_error_in_imported_module(tmp_path: Path) -> None:
    folder = _write(tmp_path / "convex", {"a.py": "from . import b\n", "b.py": "x = = 1\n"})
    error = _load_error(folder)
    assert (error.file, error.line) == ("convex/b.py", 1)


def test_definition_error_points_at_the_function(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "convex",
        {
            "orders.py": """
                from convection import query


                @query
                async def bad(ctx):
                    return 1
            """,
        },
    )
    error = _load_error(folder)
    assert error.file == "convex/orders.py"
    assert error.line in (5, 6)
    assert "InvalidFunctionDefinition" in error.message and "async def" in error.message


@pytest.mark.parametrize(
    ("files", "mentions"),
    [
        ({"my-module.py": "X = 1\n"}, "'my-module' is not a valid module name"),
        ({"dir-x/m.py": "X = 1\n"}, "'dir-x' is not a valid module name"),
        ({"q.py": "X = 1\n", "q/m.py": "X = 1\n"}, "both the module q.py and the folder q/"),
        ({"schema.py": "X = 1\n"}, "defines no 'schema' or 'default'"),
        ({"schema.py": "schema = 3\n"}, "expected SchemaDefinition"),
        ({"crons.py": "crons = {}\n"}, "expected Crons"),
        ({"http.py": "X = 1\n"}, "http = HttpRouter()"),
        ({"auth_config.py": "providers = 'x'\n"}, "must be a list of dicts"),
        ({"auth_config.py": "X = 1\n"}, "defines no 'providers'"),
        (
            {
                "crons.py": "from convection import Crons, internal\n"
                "crons = Crons()\n"
                "crons.interval('c', {'seconds': 1}, internal.jobs.missing)\n"
            },
            "cron job 'c' runs 'jobs:missing', but there is no such function",
        ),
        (
            {
                "jobs.py": "from convection import query\nq = query(lambda ctx: 1)\n",
                "crons.py": "from convection import Crons, api\n"
                "crons = Crons()\n"
                "crons.interval('c', {'seconds': 1}, api.jobs.q)\n",
            },
            "a query; crons run mutations and actions",
        ),
        ({"m.py": "from convection import query\n_ = query(lambda ctx: 1)\n"}, "'_'"),
    ],
)
def test_invalid_folders(tmp_path: Path, files: dict[str, str], mentions: str) -> None:
    error = _load_error(_write(tmp_path / "convex", files))
    assert mentions in error.message


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModuleLoadError, match="does not exist"):
        load_app(tmp_path / "nope")


def test_alternative_spellings(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "convex",
        {
            "__init__.py": "LOADED = True\n",
            "auth_config.py": "default = {'providers': [{'domain': 'd', 'applicationID': 'a'}]}\n",
            "http.py": "from convection import HttpRouter\ndefault = HttpRouter()\n",
            "notes.txt": "not python",
            ".hidden/m.py": "raise RuntimeError('hidden')\n",
            "__pycache__/x.py": "raise RuntimeError('cache')\n",
            "empty_dir/readme.md": "nothing",
        },
    )
    app = load_app(folder)
    try:
        assert app.auth_providers == [{"domain": "d", "applicationID": "a"}]
        assert isinstance(app.http, HttpRouter)
        assert app.modules == ["auth_config", "http"]
        assert sys.modules[app.package].LOADED is True
        assert app.functions == {}
    finally:
        app.unload()


def test_unloaded_function_has_no_path() -> None:
    from convection.functions.decorators import query

    @query
    def floating(ctx: object) -> None:
        return None

    assert isinstance(floating, ConvexFunction)
    with pytest.raises(Exception, match="has no path") as info:
        function_path(floating)
    assert getattr(info.value, "code", None) == "InvalidFunctionReference"
