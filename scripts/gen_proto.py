"""Generate the Python code of proto/ into src/taskservice/gen (`make proto`); `--check` fails if stale."""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
TARGET = ROOT / "src" / "taskservice" / "gen"
PACKAGE = "taskservice.gen"
HEADER = '"""Generated from proto/ by scripts/gen_proto.py (`make proto`). Do not edit."""\n'


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    plugin = Path(sys.executable).parent / "protoc-gen-connect-python"
    subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}",
            f"--plugin=protoc-gen-connect-python={plugin}",
            f"--python_out={out}", f"--pyi_out={out}", f"--connect-python_out={out}", *protos,
        ],
        check=True,
    )  # fmt: skip
    top_packages = {p.name for p in out.iterdir() if p.is_dir()}
    pattern = re.compile(rf"^(from|import) ({'|'.join(sorted(top_packages))})(\.| )", re.MULTILINE)
    for path in out.rglob("*.py*"):
        # The generated modules import each other as top-level packages: make them ours.
        path.write_text(pattern.sub(rf"\1 {PACKAGE}.\2\3", path.read_text()))
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").write_text(HEADER)


def same_tree(a: Path, b: Path) -> bool:
    comparison = filecmp.dircmp(a, b, ignore=["__pycache__"])
    if comparison.left_only or comparison.right_only or comparison.diff_files or comparison.funny_files:
        return False
    return all(same_tree(a / d, b / d) for d in comparison.common_dirs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gen"
        out.mkdir()
        generate(out)
        if args.check:
            if not TARGET.exists() or not same_tree(out, TARGET):
                print("generated code is stale: run `make proto` and commit", file=sys.stderr)
                return 1
            print("generated code is up to date")
            return 0
        shutil.rmtree(TARGET, ignore_errors=True)
        shutil.copytree(out, TARGET)
    print(f"generated {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
