"""``python -m reid.cli ...``: the ``reid`` console command without installing its script."""

import sys

from reid.cli import main

sys.exit(main())
