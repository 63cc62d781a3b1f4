"""`python -m pgembed.cli`: the pgembed command."""

import sys

from pgembed.cli import main

sys.exit(main())
