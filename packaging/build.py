"""Build the PyInstaller bundle into dist/ember/, recording the llama.cpp backend it was built with.

Usage: python packaging/build.py [--no-starter]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-starter", action="store_true", help="leave the starter model out of the bundle")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from app import __version__
    from inference.hardware import backend_info

    info = backend_info()
    build_info = {"version": __version__, "backends": info.backends, "gpu_offload": info.gpu_offload,
                  "llama_cpp_python": info.llama_cpp_python, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                    time.gmtime())}
    out = ROOT / "build" / "ember_build_info.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(build_info, indent=2))
    env = dict(os.environ, EMBER_BUNDLE_STARTER="0" if args.no_starter else "1")
    started = time.monotonic()
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
           "--distpath", str(ROOT / "dist"), "--workpath", str(ROOT / "build" / "pyinstaller"),
           str(ROOT / "packaging" / "ember.spec")]
    rc = subprocess.call(cmd, env=env, cwd=ROOT)
    if rc == 0:
        size = sum(f.stat().st_size for f in (ROOT / "dist" / "ember").rglob("*")
                   if f.is_file() and not f.is_symlink())
        print(f"built dist/ember ({size / (1 << 20):.0f} MiB, backends {', '.join(info.backends)}) "
              f"in {time.monotonic() - started:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
