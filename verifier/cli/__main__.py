"""`python -m verifier.cli` = `verifier`."""

import sys

from verifier.cli import main

sys.exit(main())
