"""Build the executor contract and check it against its lock file (``make contracts``).

python contracts/build.py            compile afresh; exit 1 if the build differs from the lock
python contracts/build.py --write    compile afresh and rewrite contracts/ArbExecutor.lock.json
"""

import argparse
import sys

from arbx.domain.errors import ConfigError
from arbx.execution.contract import compile_executor, lock_drift, lock_path, read_lock, write_lock


def main(argv: list[str] | None = None) -> int:
    """Compile ArbExecutor.sol without the cache; check or rewrite the lock file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the lock file")
    args = parser.parse_args(argv)
    try:
        build = compile_executor(fresh=True)
        if args.write:
            print(f"wrote {write_lock(build)} ({len(build.runtime):,} bytes of runtime code)")
            return 0
        drift = lock_drift(build, read_lock())
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if drift:
        print(f"{lock_path().name} is out of date (run `make contracts`):", file=sys.stderr)
        for line in drift:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{lock_path().name}: up to date ({len(build.runtime):,} bytes of runtime code)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
