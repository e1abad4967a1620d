"""The action server does not start open: no secret, or a guessable one, is refused up front."""

from __future__ import annotations

import pytest

from plugin import action_server


@pytest.mark.parametrize("secret", [None, "", "short"])
def test_a_missing_or_short_secret_stops_the_server_before_it_listens(
    secret: str | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if secret is None:
        monkeypatch.delenv(action_server.SECRET_ENV, raising=False)
    else:
        monkeypatch.setenv(action_server.SECRET_ENV, secret)
    assert action_server.main(["--actions", "rasa_project.actions", "--port", "1"]) == 2
    assert action_server.SECRET_ENV in capsys.readouterr().err


def test_a_long_secret_is_accepted() -> None:
    assert action_server.check_secret("x" * 16) == "x" * 16
