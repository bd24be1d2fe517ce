"""`python -m edgeret.cli ...`: the same as the `edgeret` command."""

import sys

from . import main

sys.exit(main())
