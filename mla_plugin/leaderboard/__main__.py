import sys

from mla_plugin.leaderboard.cli import main

sys.exit(main())
