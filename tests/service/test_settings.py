"""Settings come from one place and bad values fail with one line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import Settings, SettingsError, load_settings


def test_defaults() -> None:
    s = load_settings({})
    assert s.timezone == "Europe/London"
    assert s.database_url.startswith("postgresql://")
    assert s.mqtt.host == "127.0.0.1" and s.mqtt.port == 1883 and not s.mqtt.tls
    assert s.pseudonym_key is None


def test_settings_are_frozen() -> None:
    s = load_settings({})
    with pytest.raises(AttributeError):
        s.timezone = "UTC"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"FATIGUE_DATABASE_URL": "mysql://x"}, "FATIGUE_DATABASE_URL"),
        ({"FATIGUE_MQTT_URL": "http://broker"}, "FATIGUE_MQTT_URL"),
        ({"FATIGUE_MQTT_URL": "mqtt://broker:notaport"}, "FATIGUE_MQTT_URL"),
        ({"FATIGUE_TIMEZONE": "Europe/Londn"}, "FATIGUE_TIMEZONE"),
        ({"FATIGUE_PSEUDONYM_KEY": "zz"}, "FATIGUE_PSEUDONYM_KEY"),
        ({"FATIGUE_PSEUDONYM_KEY": "ab" * 8}, "FATIGUE_PSEUDONYM_KEY"),
        ({"FATIGUE_PSEUDONYM_KEY_VERSION": "0"}, "FATIGUE_PSEUDONYM_KEY_VERSION"),
        ({"FATIGUE_INGEST_GROUP": "a/b"}, "FATIGUE_INGEST_GROUP"),
        ({"FATIGUE_SMTP_URL": "ftp://x"}, "FATIGUE_SMTP_URL"),
        ({"FATIGUE_LOG_LEVEL": "loud"}, "FATIGUE_LOG_LEVEL"),
        ({"FATIGUE_PSEUDONYM_KEY_FILE": "/nonexistent/key"}, "FATIGUE_PSEUDONYM_KEY_FILE"),
    ],
)
def test_bad_value_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    message = str(err.value)
    assert message.startswith(variable + ":")
    assert "\n" not in message


def test_key_from_file_and_variable_wins(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("11" * 32 + "\n")
    assert load_settings({"FATIGUE_PSEUDONYM_KEY_FILE": str(key_file)}).pseudonym_key == bytes([0x11]) * 32
    both = {"FATIGUE_PSEUDONYM_KEY_FILE": str(key_file), "FATIGUE_PSEUDONYM_KEY": "22" * 32}
    assert load_settings(both).pseudonym_key == bytes([0x22]) * 32


def test_secrets_not_in_repr() -> None:
    s = load_settings({"FATIGUE_PSEUDONYM_KEY": "ab" * 32, "FATIGUE_MQTT_URL": "mqtts://u:secretpw@h:8883"})
    assert "ab" * 32 not in repr(s)
    assert "secretpw" not in repr(s.mqtt)
    assert s.mqtt.tls and s.mqtt.port == 8883 and s.mqtt.username == "u"
    assert isinstance(s, Settings)
