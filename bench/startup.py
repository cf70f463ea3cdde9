"""How fast does `opsconsole --help` start, against a bare Typer hello-world in the same run?

Run: python bench/startup.py [--runs N]
Target: ratio <= 1.3 (lazy imports keep httpx, paramiko, textual, apscheduler out of --help).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import median_wall, verdict

HELLO = '''
import typer
app = typer.Typer()

@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    typer.echo(f"hello {name}")

@app.command()
def bye() -> None:
    """Say bye."""

app()
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hello = Path(tmp) / "hello.py"
        hello.write_text(HELLO)
        plain = Path(tmp) / "hello_plain.py"
        # Typer's default help imports Rich; opsconsole turns Rich help off, so the
        # honest baseline is the hello-world with the same setting. Both are shown.
        plain.write_text(HELLO.replace("typer.Typer()", "typer.Typer(rich_markup_mode=None)"))
        base_rich = median_wall([sys.executable, str(hello), "--help"], args.runs)
        baseline = median_wall([sys.executable, str(plain), "--help"], args.runs)
    script = shutil.which("opsconsole")
    cmd = [script, "--help"] if script else [sys.executable, "-m", "opsconsole", "--help"]
    ours = median_wall(cmd, args.runs)
    ratio = ours / baseline
    print(f"typer hello --help (default, Rich help): {base_rich * 1000:7.1f} ms")
    print(f"typer hello --help (rich_markup_mode=None): {baseline * 1000:7.1f} ms")
    print(f"opsconsole --help                         : {ours * 1000:7.1f} ms")
    print(f"(medians of {args.runs} runs after a warm-up)")
    print(f"ratio vs the plain baseline: {ratio:5.2f}  {verdict(ratio, 1.3)}")
    print(f"ratio vs the default baseline: {ours / base_rich:5.2f}")


if __name__ == "__main__":
    main()
