"""`python -m open4m.cli ...` (what `torchrun ... -m open4m.cli train ...` runs): the `open4m` command line."""

import sys

from open4m.cli import main

if __name__ == "__main__":
    sys.exit(main())
