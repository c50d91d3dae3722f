"""Make the figures README.md and docs/ show, with the commands they describe
(``make docs-images``; the report's screenshot needs Chromium, see ``make browser``).

- docs/images/evaluate-default.png: the ``evaluate --plot`` figure the README quotes;
- docs/images/report.png: ``autopilot report`` on the README walkthrough's history, as a
  headless Chromium draws it;
- docs/images/report-example.html: that page itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from policies.cli import main
from policies.report import render_page

IMAGES = Path(__file__).resolve().parent / "images"

#: The README walkthrough's history: two weeks of the default market, ending in a drop.
WALKTHROUGH = [
    "simulate",
    "--scenario",
    "default",
    "--strategy",
    "mpc",
    "--days",
    "14",
    "--seed",
    "0",
    "--start-date",
    "2026-01-01",
    "--shock-day",
    "13:creative_fatigue:0.4:feed",
]


def make_report(folder: Path) -> None:
    # Run inside the folder, so that the page names its history "logs.csv" and no path
    # of this machine.
    os.chdir(folder)
    logs, page = Path("logs.csv"), Path("report.html")
    if main([*WALKTHROUGH, "--out", str(logs)]) != 0:
        raise SystemExit("simulate failed")
    args = ["report", "--history", str(logs), "--budget", "120k", "--roi-target", "4"]
    if main([*args, "--out", str(page)]) != 0:
        raise SystemExit("report failed")
    shot = Path("report.png")
    rendered = render_page(page, shot, width=1180)
    if rendered.problems:
        raise SystemExit(f"the report has problems in the browser: {rendered.problems}")
    from PIL import Image

    # A page of flat colours loses nothing in a 256-colour palette, and a third of its size.
    Image.open(shot).convert("RGB").quantize(256).save(IMAGES / "report.png", optimize=True)
    shutil.copyfile(page, IMAGES / "report-example.html")
    print(f"wrote {IMAGES / 'report.png'} and {IMAGES / 'report-example.html'}")


def make_evaluate() -> None:
    args = ["evaluate", "--scenario", "default", "--episodes", "5", "--no-progress"]
    args += ["--strategies", "ppo-mpc,mpc,proportional,pid,online-lp,even,oracle"]
    if main([*args, "--plot", str(IMAGES / "evaluate-default.png")]) != 0:
        raise SystemExit("evaluate failed")


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("report", "evaluate"), default=None)
    args = parser.parse_args(argv)
    IMAGES.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="autopilot-images-"))
    here = Path.cwd()
    try:
        if args.only in (None, "report"):
            make_report(folder)
        if args.only in (None, "evaluate"):
            make_evaluate()
    finally:
        os.chdir(here)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(run())
