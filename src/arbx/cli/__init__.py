"""The ``arbx`` command: the composition root, the only place where concrete pieces meet.

Each subcommand lives in its own module here and registers itself on the parser. A user
mistake (a bad file, an unknown token, an amount out of range, a bad setting) ends with one line
on stderr and exit code 2; nothing here prints a traceback for it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from arbx import __version__
from arbx.cli import api, executor, keys, offline, risk, run, store
from arbx.cli.args import EXIT_USAGE, Parser
from arbx.config import load_settings
from arbx.devnet.commands import add_devnet_parser, run_devnet
from arbx.domain.errors import ArbxError, ConfigError, MathError
from arbx.obs.logging import LogSettings, configure_logging, log_settings


def build_parser() -> Parser:
    """The command-line grammar."""
    parser = Parser(prog="arbx", description="ARBITRAGEXPLUS-II: DEX-arbitrage searcher")
    parser.add_argument("--version", action="version", version=f"arbx {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in (offline, store, run, keys, risk, api, executor):
        module.register(sub)
    devnet = add_devnet_parser(sub)
    devnet.set_defaults(handler=run_devnet)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``arbx`` console command."""
    args = build_parser().parse_args(argv)
    try:
        configure_logging(_log_settings(getattr(args, "config", None)))
        code: int = args.handler(args)
    except ConfigError as exc:
        return fail(str(exc))
    except MathError as exc:
        return fail(f"the pool cannot do this: {exc}")
    except ArbxError as exc:
        return fail(f"{type(exc).__name__}: {exc}")
    except BrokenPipeError:
        return 0
    except (RecursionError, MemoryError) as exc:  # input past what the process can hold
        return fail(f"the input is too large or too deeply nested ({type(exc).__name__})")
    except ValueError as exc:  # a value no check above named (bad text included): one line
        return fail(f"invalid value: {_first_line(exc)}")
    return code


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _log_settings(config: Path | None) -> LogSettings:
    """The ``log`` settings of the settings file, else of the environment alone."""
    if config is None:
        return log_settings()
    try:
        return load_settings(config).log
    except ConfigError:  # the command reports the bad file itself
        return log_settings()


def fail(message: str) -> int:
    """Print one error line; the exit code for it."""
    print(f"arbx: error: {message}", file=sys.stderr)
    return EXIT_USAGE
