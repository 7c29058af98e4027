from __future__ import annotations

import sys

from acceptloop.cli import main

sys.exit(main())
