"""``arbx key new`` and ``arbx key import``: encrypted keystores for the signing and relay keys.

Keys never pass through the command line: a new key is generated, an imported one is read from a
secret file or standard input; passwords come from ARBX_KEYSTORE_PASSWORD[_FILE] (or the relay's
variables) or a no-echo prompt. Only the address is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add ``key new`` and ``key import``."""
    key = sub.add_parser("key", help="encrypted keystores for the signing and relay keys")
    actions = key.add_subparsers(dest="key_command", required=True, parser_class=type(key))
    new = actions.add_parser("new", help="generate a key into a new encrypted keystore")
    new.add_argument("--keystore", type=Path, required=True, help="keystore file to create")
    new.add_argument("--role", choices=["signing", "relay"], default="signing")
    new.set_defaults(handler=_new)
    imported = actions.add_parser("import", help="encrypt an existing key into a new keystore")
    imported.add_argument("--keystore", type=Path, required=True, help="keystore file to create")
    imported.add_argument("--key-file", type=Path, help="file holding the key (default: stdin)")
    imported.add_argument("--role", choices=["signing", "relay"], default="signing")
    imported.set_defaults(handler=_import)


def _new(args: argparse.Namespace) -> int:
    from arbx.execution.keys import keystore_password, new_keystore

    address = new_keystore(args.keystore, keystore_password(args.role, prompt=True))
    print(f"{args.role} key {address} written to {args.keystore}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from arbx.execution.keys import KeySource, import_keystore, keystore_password

    source = KeySource.file(args.key_file) if args.key_file else KeySource.stdin()
    address = import_keystore(args.keystore, source, keystore_password(args.role, prompt=True))
    print(f"{args.role} key {address} written to {args.keystore}")
    return 0
