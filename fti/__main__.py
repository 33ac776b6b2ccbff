"""`python -m fti` runs the fti command line."""

import sys

from fti.cli import main

sys.exit(main())
