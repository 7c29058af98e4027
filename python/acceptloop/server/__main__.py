from __future__ import annotations

import sys

from acceptloop.server import main

sys.exit(main())
