"""Every recorded response file in ``../shared/real`` is replayed by some test (``@replays``)."""

from __future__ import annotations

import importlib

from tests.fakes.recorded import REPLAYED, response_files

REPLAY_MODULES = (
    "tests.platforms.test_real_datadog",
    "tests.platforms.test_real_kibana",
    "tests.platforms.test_real_xpanse",
)


def test_every_recorded_response_is_replayed() -> None:
    """Lists the recordings directory and fails on a file no test claims, or a claimed test that is gone."""
    modules = {name: importlib.import_module(name) for name in REPLAY_MODULES}
    files = response_files()
    assert len(files) >= 30
    unreplayed = [f for f in files if f not in REPLAYED]
    assert unreplayed == [], f"recorded responses no test replays: {unreplayed}"
    for path, tests in REPLAYED.items():
        assert path in files, f"{path} is claimed but is not a recorded response file"
        for test in tests:
            module, _, name = test.partition("::")
            assert callable(getattr(modules[module], name, None)), f"{test} (replaying {path}) is not a test"
