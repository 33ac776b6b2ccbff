"""`python -m fti` runs the fti command line."""

import sys

from fti.cli.main import main

sys.exit(main())
