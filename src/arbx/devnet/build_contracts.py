"""``make contracts``: rebuild the compiled contracts that ship with the package.

The tests compare each shipped file with a fresh compile, so a change to a source that is not
rebuilt here fails CI, and so does a compiler whose output drifts.
"""

import json
from pathlib import Path

from arbx.devnet.artifacts import project_root
from arbx.devnet.solc import SETTINGS, SOLC_VERSION, compile_sources, contracts_dir

SHIPPED = {
    # contract name: (source under contracts/, shipped file under the repository root)
    "PoolLens": ("lens/PoolLens.sol", "src/arbx/chain/pool_lens.json"),
}


def build() -> list[Path]:
    """Compile every shipped contract and write its file; the paths written."""
    written = []
    for name, (source, target) in SHIPPED.items():
        text = (contracts_dir() / source).read_text(encoding="utf-8")
        artifact = compile_sources({source: text})[name]
        record = {
            "contract": name,
            "source": f"contracts/{source}",
            "compiler": f"solc-js {SOLC_VERSION}",
            "settings": {k: v for k, v in SETTINGS.items() if k != "outputSelection"},
            "bytecode": artifact.bytecode.hex(),
        }
        path = project_root() / target
        path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in build():
        print(f"wrote {path}")
