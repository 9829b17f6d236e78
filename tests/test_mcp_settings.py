"""The server's configuration: real, absolute locations whatever the host's working directory."""

import pytest
from pydantic import ValidationError

from mcp_server.settings import ServerSettings


def test_paths_are_resolved_and_reports_go_beside_the_store(tmp_path, monkeypatch):
    root = tmp_path.resolve()
    monkeypatch.chdir(root)
    (root / "data").mkdir()
    (root / "link").symlink_to(root / "data")
    settings = ServerSettings(db="store/votes.db", allowed_dirs=["link"])
    assert settings.db == root / "store" / "votes.db"
    assert settings.report_dir == root / "store" / "reports"
    assert settings.allowed_dirs == (root / "data",)  # symlinks followed once, here
    assert ServerSettings(db="x.db", report_dir="out").report_dir == root / "out"


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="not an existing directory"):
        ServerSettings(db=tmp_path / "x.db", allowed_dirs=[tmp_path / "missing"])
    with pytest.raises(ValidationError, match="max_text_chars"):
        ServerSettings(db=tmp_path / "x.db", max_text_chars=10)
