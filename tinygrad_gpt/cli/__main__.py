"""`python -m tinygrad_gpt.cli ...` runs the `tinygrad-gpt` command."""
import sys

from . import main

sys.exit(main())
