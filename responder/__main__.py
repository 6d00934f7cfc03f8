"""``python -m responder``: the same as the ``cozen-responder`` command."""

import sys

from responder.cli import main

sys.exit(main())
