"""``python -m common.commands ...`` = the ``forgelab`` console script."""

import sys

from common.commands import main

sys.exit(main())
