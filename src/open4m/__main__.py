"""`python -m open4m ...`: the same command line as the `open4m` script."""

import sys

from open4m.cli import main

if __name__ == "__main__":
    sys.exit(main())
