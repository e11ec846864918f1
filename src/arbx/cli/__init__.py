"""The ``arbx`` command: the composition root, the only place where concrete pieces meet.

Each subcommand lives in its own module here and registers itself on the parser. A user
mistake (a bad file, an unknown token, an amount out of range, a bad setting) ends with one line
on stderr and exit code 2; nothing here prints a traceback for it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from arbx import __version__
from arbx.cli import (
    api,
    executor,
    keys,
    offline,
    release,
    replay,
    risk,
    run,
    stage,
    stop,
    store,
)
from arbx.cli.args import EXIT_USAGE, Parser
from arbx.config import load_settings, settings_path
from arbx.devnet.commands import add_devnet_parser, run_devnet
from arbx.domain.errors import ArbxError, ConfigError, MathError
from arbx.errors import TransientError
from arbx.obs.logging import LogSettings, configure_logging, log_settings

# Commands that run as services log what they do; the others print their own answer and log
# only warnings unless a log level is set (``ARBX_LOG__LEVEL`` or ``[log] level``).
SERVICES = frozenset({"run", "api", "devnet", "sync"})


def build_parser() -> Parser:
    """The command-line grammar."""
    parser = Parser(prog="arbx", description="ARBITRAGEXPLUS-II: DEX-arbitrage searcher")
    parser.add_argument("--version", action="version", version=f"arbx {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in (offline, store, run, replay, keys, risk, stage, release, api, executor, stop):
        module.register(sub)
    devnet = add_devnet_parser(sub)
    devnet.set_defaults(handler=run_devnet)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``arbx`` console command."""
    args = build_parser().parse_args(argv)
    try:
        configure_logging(_log_settings(getattr(args, "config", None), args.command))
        code: int = args.handler(args)
    except ConfigError as exc:
        return fail(str(exc))
    except MathError as exc:
        return fail(f"the pool cannot do this: {exc}")
    except TransientError as exc:
        return fail(f"no answer, try again later: {_first_line(exc)}")
    except ArbxError as exc:
        return fail(f"{type(exc).__name__}: {_first_line(exc)}")
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


def _log_settings(config: Path | None, command: str) -> LogSettings:
    """The ``log`` settings of the settings file, else of the environment alone."""
    settings = log_settings()
    with contextlib.suppress(ConfigError):
        config = settings_path(config)
    if config is not None:
        with contextlib.suppress(ConfigError):  # the command reports a bad file itself
            settings = load_settings(config).log
    if command in SERVICES or "level" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"level": "WARNING"})


def fail(message: str) -> int:
    """Print one error line; the exit code for it."""
    print(f"arbx: error: {message}", file=sys.stderr)
    return EXIT_USAGE
