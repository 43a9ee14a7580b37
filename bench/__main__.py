"""``uv run python -m bench [--quick] [--only ...]``: see bench/README.md."""

import sys

from bench.run import main

sys.exit(main())
