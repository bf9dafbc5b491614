from __future__ import annotations

import pytest

from tests.plugin_compat.support import Installed


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return Installed(tmp_path_factory.mktemp("plugin-packages"))
