"""``python -m vcfnet`` (also what ``torchrun -m vcfnet train ...`` runs)."""

import sys

from vcfnet.cli import main

sys.exit(main())
