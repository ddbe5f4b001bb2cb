"""The Python surface: `from tempeh_tui import ...` works, and importing it stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tempeh_tui
from tests.cli.process import SAMPLES


def test_load_workflow_and_workflow_are_importable_from_the_package() -> None:
    from tempeh_tui import Workflow, load_workflow

    workflow = load_workflow(SAMPLES / "production-deployment.yaml")

    assert isinstance(workflow, Workflow)
    assert workflow.name == "production-deployment"


@pytest.mark.parametrize("name", tempeh_tui.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(tempeh_tui, name) is not None


def test_the_names_the_readme_promises_are_public() -> None:
    promised = {"load_workflow", "parse_workflow", "Workflow", "WorkflowError", "build_plan"}

    assert promised <= set(tempeh_tui.__all__)


def test_star_import_gives_exactly_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from tempeh_tui import *", namespace)

    assert set(namespace) - {"__builtins__"} == set(tempeh_tui.__all__)
    assert dir(tempeh_tui) == sorted(set(tempeh_tui.__all__))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        getattr(tempeh_tui, "no_such_thing")  # noqa: B009


_HEAVY = ("pydantic", "networkx", "jinja2", "yaml", "rich")


def _heavy_libraries_loaded(code: str, heavy: tuple[str, ...] = _HEAVY) -> list[str]:
    """Which of `heavy` are in `sys.modules` after running `code` in a fresh interpreter."""
    probe = (
        f"{code}\n"
        "import json, sys\n"
        f"heavy = set({heavy!r})\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_importing_the_package_and_building_the_parser_loads_no_heavy_library() -> None:
    code = "import tempeh_tui\nfrom tempeh_tui.cli.parser import build_parser\nbuild_parser()"

    assert _heavy_libraries_loaded(code) == []


def test_reading_the_store_loads_neither_pydantic_nor_yaml() -> None:
    """`tempeh runs`, `show` and `logs` read the store: the workflow models stay unloaded
    (`rich` draws their tables)."""
    code = "import tempeh_tui.cli.history, tempeh_tui.store.sqlite"

    assert _heavy_libraries_loaded(code, ("pydantic", "networkx", "jinja2", "yaml")) == []
