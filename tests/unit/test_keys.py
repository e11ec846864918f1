"""Keys: keystores, secret files and variables, one source per role, signers that never show a key,
and the log redaction filter."""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak

from arbx.domain.errors import ConfigError, InputError
from arbx.errors import SignerLockLostError, SimulationRevertedError
from arbx.execution.keys import (
    SECP256K1_N,
    KeySource,
    SourceKind,
    TxSigner,
    import_keystore,
    key_source,
    keystore_password,
    load_keys,
    load_relay_signer,
    load_tx_signer,
    new_keystore,
    parse_private_key,
    read_secret_file,
)
from arbx.redaction import install_redaction, remove_redaction

FAST_N = 2**4  # scrypt work factor for tests (production: 2**18)
PASSWORD = "correct horse battery"
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
OTHER = bytes.fromhex("8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f")


def spellings(key: bytes) -> list[str]:
    """Every way the tests look for a key in text: hex in both cases, with and without 0x."""
    h = key.hex()
    return [h, h.upper(), "0x" + h, "0X" + h.upper()]


def assert_no_key(text: str, *keys: bytes) -> None:
    lowered = text.lower()
    for key in keys:
        assert key.hex() not in lowered, "a private key leaked"


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def keystore(tmp_path: Path) -> Path:
    path = tmp_path / "signing.json"
    source = secret_file(tmp_path / "key.hex", KEY.hex())
    import_keystore(path, KeySource.file(source), PASSWORD, scrypt_n=FAST_N)
    return path


# -- keystores ----------------------------------------------------------------------------------


def test_new_keystore_round_trip_is_scrypt_and_0600(tmp_path: Path) -> None:
    path = tmp_path / "new.json"
    address = new_keystore(path, PASSWORD, scrypt_n=FAST_N)
    assert path.stat().st_mode & 0o777 == 0o600
    document = json.loads(path.read_text())
    assert document["crypto"]["kdf"] == "scrypt"
    assert document["crypto"]["kdfparams"]["n"] == FAST_N
    env = {"ARBX_SIGNING_KEYSTORE": str(path), "ARBX_KEYSTORE_PASSWORD": PASSWORD}
    signer = load_tx_signer(env)
    assert signer.address == address
    assert signer.source == f"keystore {path}"


def test_two_new_keystores_hold_different_keys(tmp_path: Path) -> None:
    first = new_keystore(tmp_path / "a.json", PASSWORD, scrypt_n=FAST_N)
    second = new_keystore(tmp_path / "b.json", PASSWORD, scrypt_n=FAST_N)
    assert first != second


def test_import_from_file_and_stdin_and_open_with_password_file(tmp_path: Path) -> None:
    expected = Account.from_key(KEY).address
    from_file = import_keystore(
        tmp_path / "f.json",
        KeySource.file(secret_file(tmp_path / "k", "0x" + KEY.hex() + "\n")),
        PASSWORD,
        scrypt_n=FAST_N,
    )
    from_stdin = import_keystore(
        tmp_path / "s.json",
        KeySource.stdin(),
        PASSWORD,
        scrypt_n=FAST_N,
        stdin=io.StringIO(KEY.hex().upper() + "\n"),
    )
    assert from_file == from_stdin == expected
    password_file = secret_file(tmp_path / "pw", PASSWORD + "\n")
    env = {"ARBX_RELAY_KEYSTORE": str(tmp_path / "s.json")}
    env["ARBX_RELAY_KEYSTORE_PASSWORD_FILE"] = str(password_file)
    relay = load_relay_signer(env)
    assert relay is not None
    assert relay.address == expected


def test_import_reads_a_variable_but_not_a_keystore(tmp_path: Path) -> None:
    env = {"ARBX_SIGNING_KEY": KEY.hex()}
    address = import_keystore(
        tmp_path / "v.json", KeySource.variable("ARBX_SIGNING_KEY"), PASSWORD, environ=env,
        scrypt_n=FAST_N,
    )  # fmt: skip
    assert address == Account.from_key(KEY).address
    with pytest.raises(ConfigError, match="not a keystore"):
        import_keystore(tmp_path / "x.json", KeySource.keystore(tmp_path / "v.json"), PASSWORD)


def test_keystore_refuses_to_overwrite(tmp_path: Path, keystore: Path) -> None:
    before = keystore.read_bytes()
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        new_keystore(keystore, PASSWORD, scrypt_n=FAST_N)
    assert keystore.read_bytes() == before


def test_keystore_refuses_a_short_password_and_a_bad_work_factor(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 8"):
        new_keystore(tmp_path / "a.json", "short", scrypt_n=FAST_N)
    with pytest.raises(ConfigError, match="power of two"):
        new_keystore(tmp_path / "b.json", PASSWORD, scrypt_n=1000)
    assert not (tmp_path / "a.json").exists()
    assert not (tmp_path / "b.json").exists()


def test_wrong_password_is_one_clear_error(keystore: Path) -> None:
    env = {"ARBX_SIGNING_KEYSTORE": str(keystore), "ARBX_KEYSTORE_PASSWORD": "not the password"}
    with pytest.raises(ConfigError, match="wrong password") as caught:
        load_tx_signer(env)
    assert "not the password" not in str(caught.value)


def test_keystore_needs_a_password(keystore: Path) -> None:
    with pytest.raises(ConfigError, match="ARBX_KEYSTORE_PASSWORD_FILE or ARBX_KEYSTORE_PASSWORD"):
        load_tx_signer({"ARBX_SIGNING_KEYSTORE": str(keystore)})


def test_keystore_with_a_tampered_address_is_refused(keystore: Path) -> None:
    document = json.loads(keystore.read_text())
    document["address"] = "11" * 20
    keystore.write_text(json.dumps(document))
    env = {"ARBX_SIGNING_KEYSTORE": str(keystore), "ARBX_KEYSTORE_PASSWORD": PASSWORD}
    with pytest.raises(ConfigError, match="another address"):
        load_tx_signer(env)


def test_garbage_keystore_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    env = {"ARBX_SIGNING_KEYSTORE": str(path), "ARBX_KEYSTORE_PASSWORD": PASSWORD}
    with pytest.raises(ConfigError, match="cannot read keystore"):
        load_tx_signer(env)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        load_tx_signer(env)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="version 3"):
        load_tx_signer(env)


# -- secret files and variables -----------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o444])
def test_secret_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = secret_file(tmp_path / "key", KEY.hex(), mode)
    with pytest.raises(ConfigError, match="group or others") as caught:
        load_tx_signer({"ARBX_SIGNING_KEY_FILE": str(path)})
    assert f"{mode:04o}" in str(caught.value)
    assert "chmod 600" in str(caught.value)
    assert_no_key(str(caught.value), KEY)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_secret_file_for_the_owner_only_is_read(tmp_path: Path, mode: int) -> None:
    path = secret_file(tmp_path / "key", "  0x" + KEY.hex() + "\n", mode)
    signer = load_tx_signer({"ARBX_SIGNING_KEY_FILE": str(path)})
    assert signer.address == Account.from_key(KEY).address


def test_password_file_readable_by_others_is_refused(tmp_path: Path, keystore: Path) -> None:
    password = secret_file(tmp_path / "pw", PASSWORD, 0o644)
    env = {"ARBX_SIGNING_KEYSTORE": str(keystore), "ARBX_KEYSTORE_PASSWORD_FILE": str(password)}
    with pytest.raises(ConfigError, match="group or others"):
        load_tx_signer(env)


def test_secret_file_missing_or_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read key file"):
        read_secret_file(tmp_path / "absent", "key file")
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_secret_file(tmp_path / "dir", "key file")


@pytest.mark.parametrize(
    "text",
    [
        KEY.hex()[:-1],  # 63 digits
        KEY.hex() + "0",
        "0x" + KEY.hex()[:-1] + "g",
        "00" * 32,  # zero is no key
        f"{SECP256K1_N:064x}",  # the group order is no key
    ],
)
def test_bad_key_text_names_the_source_never_the_text(text: str) -> None:
    with pytest.raises(ConfigError, match="variable ARBX_SIGNING_KEY") as caught:
        load_tx_signer({"ARBX_SIGNING_KEY": text})
    assert KEY.hex()[:16] not in str(caught.value).lower()
    assert text not in str(caught.value)


def test_parse_private_key_accepts_0x_either_case_and_whitespace() -> None:
    for text in (*spellings(KEY), f"\t{KEY.hex()}\r\n"):
        assert parse_private_key(text, "test") == KEY


def test_two_sources_for_one_role_are_refused(tmp_path: Path, keystore: Path) -> None:
    path = secret_file(tmp_path / "key", KEY.hex())
    both = {"ARBX_SIGNING_KEY": KEY.hex(), "ARBX_SIGNING_KEY_FILE": str(path)}
    with pytest.raises(ConfigError, match=r"set only one of .*ARBX_SIGNING_KEY_FILE"):
        load_tx_signer(both)
    with pytest.raises(ConfigError, match="exclusive"):
        key_source("signing", {"ARBX_SIGNING_KEYSTORE": str(keystore), "ARBX_SIGNING_KEY": "x"})
    passwords = {"ARBX_KEYSTORE_PASSWORD": PASSWORD, "ARBX_KEYSTORE_PASSWORD_FILE": str(path)}
    with pytest.raises(ConfigError, match="exclusive"):
        keystore_password("signing", passwords)


def test_each_source_alone_is_chosen_and_empty_means_unset(tmp_path: Path) -> None:
    path = str(tmp_path / "k")
    assert key_source("signing", {"ARBX_SIGNING_KEY_FILE": path}) == KeySource.file(path)
    assert key_source("signing", {"ARBX_SIGNING_KEY": "x"}) == KeySource.variable(
        "ARBX_SIGNING_KEY"
    )
    relay = key_source("relay", {"ARBX_RELAY_KEYSTORE": path, "ARBX_SIGNING_KEY": "x"})
    assert relay == KeySource(SourceKind.KEYSTORE, path, "relay")
    assert key_source("signing", {"ARBX_SIGNING_KEY": "", "ARBX_RELAY_KEY": "x"}) is None
    # an empty variable does not count as a second source
    assert key_source("signing", {"ARBX_SIGNING_KEY": "", "ARBX_SIGNING_KEY_FILE": path}) == (
        KeySource.file(path)
    )


def test_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBX_SIGNING_KEY", KEY.hex())
    assert load_tx_signer().address == Account.from_key(KEY).address


# -- roles --------------------------------------------------------------------------------------


def test_same_key_for_both_roles_is_refused(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "relay", "0x" + KEY.hex().upper())
    env = {"ARBX_SIGNING_KEY": KEY.hex(), "ARBX_RELAY_KEY_FILE": str(path)}
    with pytest.raises(ConfigError, match="same") as caught:
        load_keys(env, live=True)
    assert_no_key(str(caught.value), KEY)


def test_live_needs_both_keys_and_loads_them() -> None:
    with pytest.raises(ConfigError, match="relay reputation key"):
        load_keys({"ARBX_SIGNING_KEY": KEY.hex()}, live=True)
    with pytest.raises(ConfigError, match="needs the signing key"):
        load_keys({"ARBX_RELAY_KEY": OTHER.hex()}, live=True)
    keys = load_keys({"ARBX_SIGNING_KEY": KEY.hex(), "ARBX_RELAY_KEY": OTHER.hex()}, live=True)
    assert keys.signer is not None
    assert keys.relay is not None
    assert keys.signer.address == Account.from_key(KEY).address
    assert keys.relay.address == Account.from_key(OTHER).address


def test_shadow_never_reads_the_signing_key(tmp_path: Path) -> None:
    # a signing key file that would be refused if it were opened at all
    leaky = secret_file(tmp_path / "key", KEY.hex(), 0o644)
    env = {"ARBX_SIGNING_KEY_FILE": str(leaky), "ARBX_RELAY_KEY": OTHER.hex()}
    keys = load_keys(env, live=False)
    assert keys.signer is None
    assert keys.relay is not None
    with pytest.raises(ConfigError, match="group or others"):
        load_keys(env, live=True)
    assert load_keys({}, live=False) == load_keys({}, live=False)


# -- signers ------------------------------------------------------------------------------------


def test_signer_repr_str_pickle_and_copy_never_show_the_key() -> None:
    keys = load_keys({"ARBX_SIGNING_KEY": KEY.hex(), "ARBX_RELAY_KEY": OTHER.hex()}, live=True)
    assert keys.signer is not None
    assert keys.relay is not None
    for signer in (keys.signer, keys.relay):
        shown = [repr(signer), str(signer), f"{signer}", f"{signer!r}", repr(keys), str([signer])]
        for text in shown:
            assert_no_key(text, KEY, OTHER)
            assert signer.address in text
        for leak in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(TypeError, match="never pickled"):
                leak(signer)
        with pytest.raises(TypeError):
            vars(signer)
    assert "variable ARBX_SIGNING_KEY" in repr(keys.signer)


def test_tx_signer_signs_only_when_the_guard_allows() -> None:
    allowed = [True]

    def guard() -> None:
        if not allowed[0]:
            raise SignerLockLostError("lost the signer lock")

    signer = TxSigner(Account.from_key(KEY), "test", guard=guard)
    tx = {
        "type": 2, "chainId": 1, "nonce": 7, "to": "0x" + "11" * 20, "value": 0, "data": b"",
        "gas": 21_000, "maxFeePerGas": 10, "maxPriorityFeePerGas": 1,
    }  # fmt: skip
    signed = signer.sign_transaction(tx)
    assert signed.nonce == 7
    assert signed.sender == signer.address
    assert Account.recover_transaction(signed.raw) == signer.address
    assert signed.hash == keccak(signed.raw)
    allowed[0] = False
    with pytest.raises(SignerLockLostError, match="lock") as raised:
        signer.sign_transaction(tx)
    assert not isinstance(raised.value, ConfigError | SimulationRevertedError)


def test_tx_signer_refuses_another_sender_and_bad_fields() -> None:
    signer = TxSigner(Account.from_key(KEY), "test")
    tx = {
        "type": 2, "chainId": 1, "nonce": 0, "to": "0x" + "11" * 20, "value": 0, "data": b"",
        "gas": 21_000, "maxFeePerGas": 10, "maxPriorityFeePerGas": 1,
    }  # fmt: skip
    assert signer.sign_transaction({**tx, "from": signer.address.lower()}).nonce == 0
    with pytest.raises(InputError, match="cannot be signed by"):
        signer.sign_transaction({**tx, "from": Account.from_key(OTHER).address})
    with pytest.raises(InputError, match="cannot sign"):
        signer.sign_transaction({**tx, "gas": "lots"})


def test_relay_signature_is_eip191_of_the_body_hash_hex() -> None:
    relay = load_relay_signer({"ARBX_RELAY_KEY": OTHER.hex()})
    assert relay is not None
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[]}'
    header = relay.flashbots_signature(body)
    address, signature = header.split(":")
    assert address == relay.address
    message = encode_defunct(text="0x" + keccak(body).hex())
    assert Account.recover_message(message, signature=signature) == relay.address
    assert not hasattr(relay, "sign_transaction")  # the relay key never signs a transaction


# -- redaction ----------------------------------------------------------------------------------


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(message)s %(secret_extra)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not hasattr(record, "secret_extra"):
            record.secret_extra = "-"
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def log_key_every_way(logger: logging.Logger, key: bytes) -> None:
    logger.debug("raw %s", key.hex())
    logger.info("upper 0X%s and embedded=0x%s.", key.hex().upper(), key.hex())
    logger.info("bytes %r and int %d", key, int.from_bytes(key, "big"))
    logger.warning("in extra", extra={"secret_extra": "0x" + key.hex()})
    try:
        raise ValueError(f"bad key {key.hex()}")
    except ValueError:
        logger.exception("failed with %s", key.hex())


def test_redaction_scrubs_a_loaded_key_in_every_spelling(captured: Captured) -> None:
    logger = logging.getLogger("arbx.test.redaction")
    redaction = install_redaction(all_hex32=False)
    try:
        load_relay_signer({"ARBX_RELAY_KEY": OTHER.hex()})  # the loaded key is remembered
        log_key_every_way(logger, OTHER)
        tx_hash = "0x" + "ab" * 32
        logger.info("tx %s", tx_hash)
    finally:
        remove_redaction(redaction)
    text = "\n".join(captured.lines)
    assert_no_key(text, OTHER)
    assert repr(OTHER)[2:-1] not in text
    assert str(int.from_bytes(OTHER, "big")) not in text
    assert text.count("[redacted]") >= 7
    assert tx_hash in text  # all_hex32=False keeps hashes
    assert "Traceback" in text  # the traceback is kept, scrubbed


def test_redaction_scrubs_any_32_byte_hex_by_default(captured: Captured) -> None:
    logger = logging.getLogger("arbx.test.redaction")
    never_loaded = os.urandom(32)
    redaction = install_redaction()
    late = Captured()  # a handler added after install is covered by the record factory
    logging.getLogger().addHandler(late)
    try:
        log_key_every_way(logger, never_loaded)
        logger.info("longer hex is not a key: 0x%s", "cd" * 40)
    finally:
        logging.getLogger().removeHandler(late)
        remove_redaction(redaction)
    for lines in (captured.lines, late.lines):
        text = "\n".join(lines)
        assert_no_key(text, never_loaded)
        assert "cd" * 40 in text
    logger.info("after removal %s", never_loaded.hex())
    assert never_loaded.hex() in captured.lines[-1]  # removal really removes it
