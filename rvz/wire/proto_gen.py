"""Generate rvz/wire/proto from protos/ (run by scripts/gen-protos; checked by tests).

The generated modules are committed so that a plain ``pip install`` needs no
build step. protoc writes ``from rvz.v1 import x_pb2``; we rewrite that to our
package path so the code is importable as ``rvz.wire.proto``.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
OUT = ROOT / "rvz" / "wire" / "proto"
_IMPORT = re.compile(rb"^from rvz\.v1 import ", re.MULTILINE)


def generate(out: Path) -> list[Path]:
    """Write the generated modules into ``out``; return the files written."""
    from grpc_tools import protoc

    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTOS}", f"-I{_well_known_protos()}", f"--python_out={tmp}",
                f"--pyi_out={tmp}", f"--grpc_python_out={tmp}", *sources]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed: {' '.join(args)}")
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for generated in sorted(Path(tmp, "rvz", "v1").iterdir()):
            target = out / generated.name
            target.write_bytes(_IMPORT.sub(b"from rvz.wire.proto import ", generated.read_bytes()))
            written.append(target)
    (out / "__init__.py").write_text('"""Generated from protos/ by scripts/gen-protos. Do not edit."""\n')
    return written


def _well_known_protos() -> str:
    import grpc_tools

    return str(Path(grpc_tools.__file__).parent / "_proto")


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
