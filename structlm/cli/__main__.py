"""``python -m structlm.cli``: the same as the ``structlm`` command."""
import sys

from structlm.cli import main

sys.exit(main())
