"""requirements.lock pins every dependency pyproject.toml declares, within its range, with hashes.

The image installs from the lock alone (``pip install --require-hashes -r requirements.lock``,
then the bot with ``--no-deps --no-build-isolation``), so a dependency added to pyproject.toml
but not locked would be missing from the image, and a range narrowed past its pin would
install a version the bot does not support. ``scripts/lock.sh`` regenerates the lock.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"

# The interpreter the lock is resolved for (scripts/lock.sh refuses any other); markers
# are evaluated with these values over the running interpreter's.
LOCK_TARGET: dict[str, str] = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}


@dataclass(frozen=True)
class Pin:
    name: str
    version: str | None  # None: not an exact ``==`` pin
    hashes: tuple[str, ...]
    line: str


def parse_lock(text: str) -> dict[str, Pin]:
    """The lock's requirements by canonical name: backslash continuations joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            if current:
                logical.append(current)
                current = ""
            continue
        current = " ".join(part for part in (current, line.removesuffix("\\").strip()) if part)
        if not line.endswith("\\"):
            logical.append(current)
            current = ""
    if current:
        logical.append(current)
    pins: dict[str, Pin] = {}
    for entry in logical:
        if entry.startswith("-"):  # an option line (--index-url …): not a requirement
            continue
        spec, *options = entry.split(" --")
        hashes = tuple(o.removeprefix("hash=") for o in options if o.startswith("hash="))
        req = Requirement(spec)
        exact = [s.version for s in req.specifier if s.operator in ("==", "===")]
        version = exact[0] if len(exact) == 1 and len(req.specifier) == 1 else None
        pins[canonicalize_name(req.name)] = Pin(name=req.name, version=version, hashes=hashes, line=entry)
    return pins


def declared(pyproject: str) -> list[Requirement]:
    """What pyproject.toml asks for at run time and to build the package."""
    data = tomllib.loads(pyproject)
    specs = [*data["project"]["dependencies"], *data.get("build-system", {}).get("requires", [])]
    return [Requirement(s) for s in specs]


def lock_problems(pyproject: str, lock: str) -> list[str]:
    """One line per way the lock fails pyproject.toml; empty when it is complete and hashed."""
    pins = parse_lock(lock)
    problems: list[str] = []
    for req in declared(pyproject):
        if req.marker is not None and not req.marker.evaluate(LOCK_TARGET):
            continue  # not installed on the lock's platform
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req.name}: in pyproject.toml but not in requirements.lock")
        elif pin.version is not None and not req.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{req.name}: locked at {pin.version}, outside pyproject.toml's {req.specifier}")
    for name in sorted(pins):
        pin = pins[name]
        if pin.version is None:
            problems.append(f"{pin.name}: not pinned to one version ({pin.line.split(' --')[0]})")
        if not pin.hashes:
            problems.append(f"{pin.name}: no --hash in requirements.lock")
        elif not all(h.startswith("sha256:") for h in pin.hashes):
            problems.append(f"{pin.name}: a hash that is not sha256")
    return problems


# ---- the real files -----------------------------------------------------------------


def test_lock_covers_pyproject() -> None:
    """Every runtime and build dependency is locked, inside its declared range, with hashes."""
    problems = lock_problems(PYPROJECT.read_text(), LOCK.read_text())
    assert not problems, "requirements.lock is stale, run scripts/lock.sh:\n" + "\n".join(problems)


def test_lock_names_no_index() -> None:
    """The lock is portable: no index URL or local path of the machine that wrote it."""
    options = [line for line in LOCK.read_text().splitlines() if line.startswith("-")]
    assert options == []


# ---- the checker catches each way a lock goes wrong ------------------------------------

PYPROJECT_SAMPLE = """
[build-system]
requires = ["setuptools>=69"]

[project]
name = "x"
dependencies = [
  "httpx>=0.28,<1",
  "sqlalchemy[asyncio]>=2.0.36,<2.2",
  "uvloop>=0.19; sys_platform == 'win32'",
]
"""

HASH_A = "--hash=sha256:" + "a" * 64
HASH_B = "--hash=sha256:" + "b" * 64


def _lock(*entries: str) -> str:
    return "#\n# header\n#\n" + "\n".join(entries) + "\n"


GOOD = _lock(
    f"httpx==0.28.1 \\\n    {HASH_A} \\\n    {HASH_B}\n    # via x (pyproject.toml)",
    f"sqlalchemy==2.1.9 \\\n    {HASH_A}\n    # via x (pyproject.toml)",
    f"greenlet==3.5.6 \\\n    {HASH_B}\n    # via sqlalchemy",
    "",
    "# The following packages are considered to be unsafe in a requirements file:",
    f"setuptools==84.2.1 \\\n    {HASH_A}\n    # via x (pyproject.toml::build-system.requires)",
)


def test_a_complete_lock_passes() -> None:
    assert lock_problems(PYPROJECT_SAMPLE, GOOD) == []


def test_parse_joins_continuations_and_skips_comments() -> None:
    pins = parse_lock(GOOD)
    assert sorted(pins) == ["greenlet", "httpx", "setuptools", "sqlalchemy"]
    assert pins["httpx"].version == "0.28.1"
    assert pins["httpx"].hashes == ("sha256:" + "a" * 64, "sha256:" + "b" * 64)


def test_a_missing_dependency_fails() -> None:
    lock = GOOD.replace("httpx==0.28.1", "h11==0.16.0")
    assert lock_problems(PYPROJECT_SAMPLE, lock) == ["httpx: in pyproject.toml but not in requirements.lock"]


def test_a_missing_build_dependency_fails() -> None:
    lock = GOOD.replace("setuptools==84.2.1", "wheel==0.48.0")
    assert lock_problems(PYPROJECT_SAMPLE, lock) == ["setuptools: in pyproject.toml but not in requirements.lock"]


def test_a_pin_outside_the_range_fails() -> None:
    lock = GOOD.replace("sqlalchemy==2.1.9", "sqlalchemy==2.2.0")
    assert lock_problems(PYPROJECT_SAMPLE, lock) == [
        "sqlalchemy: locked at 2.2.0, outside pyproject.toml's <2.2,>=2.0.36"
    ]


def test_a_pin_without_hash_fails() -> None:
    lock = GOOD.replace(f"greenlet==3.5.6 \\\n    {HASH_B}", "greenlet==3.5.6")
    assert lock_problems(PYPROJECT_SAMPLE, lock) == ["greenlet: no --hash in requirements.lock"]


def test_a_range_instead_of_a_pin_fails() -> None:
    lock = GOOD.replace("httpx==0.28.1", "httpx>=0.28")
    assert lock_problems(PYPROJECT_SAMPLE, lock) == ["httpx: not pinned to one version (httpx>=0.28)"]


def test_a_dependency_for_another_platform_need_not_be_locked() -> None:
    """uvloop is declared for Windows only; the Linux lock may leave it out."""
    assert "uvloop" not in parse_lock(GOOD)
    assert lock_problems(PYPROJECT_SAMPLE, GOOD) == []


def test_a_broken_line_is_an_error() -> None:
    with pytest.raises(InvalidRequirement):
        parse_lock(_lock(f"httpx=0.28.1 \\\n    {HASH_A}"))
