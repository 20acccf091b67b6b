"""Every exception class of the package is under KafkitoError and in docs/development.md's table.

The table is how a reader finds what a part raises; this test keeps it true by importing every
module of `kafkito` and comparing the exception classes found with the table's rows.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import kafkito
from kafkito.errors import KafkitoError

DOC = Path(__file__).resolve().parents[2] / "docs" / "development.md"
ROW = re.compile(r"^\| (\w+) \| `(\w+)` \| `([\w.]+)` \|")
PARTS = {
    "errors": "core",
    "protocol": "core",
    "storage": "core",
    "broker": "broker",
    "client": "client",
    "aio": "client",
    "pubsub": "pubsub",
    "flow": "flow",
    "console": "console",
    "cli": "cli",
    "demo": "demo",
    "testing": "testing",
}


def part_of(module: str) -> str:
    """The part a module belongs to: its first package below `kafkito`."""
    return PARTS.get(module.split(".")[1], module.split(".")[1])


def exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(kafkito.__path__, "kafkito."):
        if info.name.endswith("__main__"):  # runs a program when imported
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
            ):
                assert obj.__name__ not in found, f"two exception classes named {obj.__name__}"
                found[obj.__name__] = obj
    return found


def table() -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match:
            part, name, module = match.groups()
            rows[name] = (part, module)
    return rows


def test_the_walk_finds_the_known_classes() -> None:
    found = exception_classes()
    assert {"KafkitoError", "BrokerError", "ClientError", "FlowError", "ScramError"} <= set(found)


def test_every_exception_derives_from_kafkito_error() -> None:
    outside = sorted(
        f"{cls.__module__}.{name}"
        for name, cls in exception_classes().items()
        if not issubclass(cls, KafkitoError)
    )
    assert not outside, f"not under KafkitoError: {outside}"


def test_every_exception_is_in_the_table_under_its_part() -> None:
    rows = table()
    missing = []
    for name, cls in sorted(exception_classes().items()):
        if name not in rows:
            missing.append(f"{cls.__module__}.{name} (no row)")
        elif rows[name][0] != part_of(cls.__module__):
            missing.append(f"{cls.__module__}.{name} (row says part {rows[name][0]})")
    assert not missing, f"docs/development.md's exception table lacks: {missing}"


def test_the_table_lists_no_class_that_is_gone() -> None:
    gone = sorted(set(table()) - set(exception_classes()))
    assert not gone, f"docs/development.md lists exceptions that no longer exist: {gone}"
