"""Secret headers at rest: encrypted with the newest key, readable with any configured key, rotatable."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from pytest_django import Settings

from tools.models import Tool
from tools.secrets import SecretsError, secrets_decrypt, secrets_encrypt, secrets_rotate
from tools.services import tool_create

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
SECRET = "Bearer sk-live-51HxYzVerySecretValue"


def test_headers_round_trip_and_the_token_does_not_show_them(settings: Settings) -> None:
    settings.FLOWNOVA_SECRET_KEYS = [KEY_A]
    token = secrets_encrypt({"Authorization": SECRET})
    assert SECRET not in token and "Authorization" not in token
    assert secrets_decrypt(token) == {"Authorization": SECRET}


def test_no_headers_is_an_empty_token(settings: Settings) -> None:
    assert secrets_encrypt({}) == ""
    assert secrets_decrypt("") == {}


def test_rotation_moves_secrets_to_the_newest_key(settings: Settings) -> None:
    settings.FLOWNOVA_SECRET_KEYS = [KEY_A]
    token = secrets_encrypt({"X-Api-Key": "k-123"})
    settings.FLOWNOVA_SECRET_KEYS = [KEY_B, KEY_A]
    assert secrets_decrypt(token) == {"X-Api-Key": "k-123"}  # the old key still reads it
    rotated = secrets_rotate(token)
    settings.FLOWNOVA_SECRET_KEYS = [KEY_B]
    assert secrets_decrypt(rotated) == {"X-Api-Key": "k-123"}
    settings.FLOWNOVA_SECRET_KEYS = [KEY_A]
    with pytest.raises(SecretsError):
        secrets_decrypt(rotated)


def test_an_unreadable_token_names_the_tool_and_never_the_secret(settings: Settings) -> None:
    settings.FLOWNOVA_SECRET_KEYS = [KEY_A]
    token = secrets_encrypt({"Authorization": SECRET})
    settings.FLOWNOVA_SECRET_KEYS = [KEY_B]
    with pytest.raises(SecretsError, match="tool 'billing' cannot be decrypted with any key") as caught:
        secrets_decrypt(token, tool_name="billing")
    assert SECRET not in str(caught.value) and KEY_A not in str(caught.value)


def test_without_keys_a_dev_key_is_derived_from_secret_key(settings: Settings) -> None:
    settings.FLOWNOVA_SECRET_KEYS = []
    token = secrets_encrypt({"X-Api-Key": "dev"})
    assert secrets_decrypt(token) == {"X-Api-Key": "dev"}
    settings.SECRET_KEY = "another-secret-key"
    with pytest.raises(SecretsError):
        secrets_decrypt(token)


def test_a_malformed_key_is_named_by_position_not_shown(settings: Settings) -> None:
    settings.FLOWNOVA_SECRET_KEYS = [KEY_A, "not-a-fernet-key-but-secret"]
    with pytest.raises(ImproperlyConfigured, match="key number 2 is not a Fernet key") as caught:
        secrets_encrypt({"a": "b"})
    assert "not-a-fernet-key-but-secret" not in str(caught.value)


# --- in the database --------------------------------------------------------------------------------------------


def raw_column(tool: Tool) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_headers_encrypted FROM tools_tool WHERE id = %s", [tool.pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_secrets_are_encrypted_in_the_database(alice: User, settings: Settings) -> None:
    settings.FLOWNOVA_SECRET_KEYS = [KEY_A]
    tool = tool_create(
        owner=alice, name="billing", url="https://api.example.test/x", secret_headers={"Authorization": SECRET}
    )
    stored = raw_column(tool)
    assert stored and SECRET not in stored and "sk-live" not in stored
    assert secrets_decrypt(stored) == {"Authorization": SECRET}


@pytest.mark.django_db
def test_the_rotate_command_re_encrypts_every_tool_with_the_newest_key(alice: User, settings: Settings) -> None:
    settings.FLOWNOVA_SECRET_KEYS = [KEY_A]
    with_secrets = [
        tool_create(owner=alice, name=f"t{i}", url="https://api.example.test/x", secret_headers={"X-Key": f"v{i}"})
        for i in range(3)
    ]
    without = tool_create(owner=alice, name="plain", url="https://api.example.test/x")
    settings.FLOWNOVA_SECRET_KEYS = [KEY_B, KEY_A]
    call_command("rotate_tool_secrets")
    settings.FLOWNOVA_SECRET_KEYS = [KEY_B]
    for i, tool in enumerate(with_secrets):
        assert secrets_decrypt(raw_column(tool)) == {"X-Key": f"v{i}"}
    assert raw_column(without) == ""


@pytest.mark.django_db
def test_the_rotate_command_names_a_tool_no_key_opens_and_fails(
    alice: User, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.FLOWNOVA_SECRET_KEYS = [KEY_A]
    lost = tool_create(owner=alice, name="lost", url="https://api.example.test/x", secret_headers={"X-Key": "gone"})
    fine = tool_create(owner=alice, name="fine", url="https://api.example.test/x", secret_headers={"X-Key": "ok"})
    settings.FLOWNOVA_SECRET_KEYS = [KEY_B]
    Tool.objects.filter(pk=fine.pk).update(secret_headers_encrypted=Fernet(KEY_B).encrypt(b'{"X-Key":"ok"}').decode())
    with pytest.raises(CommandError, match="1 tool"):
        call_command("rotate_tool_secrets")
    err = capsys.readouterr().err
    assert "tool 'lost'" in err and "gone" not in err
    assert raw_column(lost)  # left as it was
