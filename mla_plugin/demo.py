"""``make demo``: the leaderboard on avdigits (real spoken + handwritten digits): the
eight methods of the paper and MLA's ablation, 3 seeds each, every run an ordinary
``mmf_run``; prints the Table 1 markdown and writes ``runs/demo/index.html``.

    python -m mla_plugin.demo [--out runs/demo] [--jobs 2] [any mla-leaderboard option]

The settings (and what is scaled down from the paper) are in
``projects/mla/leaderboard/demo.yaml``; command-line options win over them.
"""
import sys

from mla_plugin.leaderboard.cli import main as leaderboard_main

DEMO_CONFIG = "projects/mla/leaderboard/demo.yaml"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return leaderboard_main(["--config", DEMO_CONFIG, *argv])


if __name__ == "__main__":
    sys.exit(main())
