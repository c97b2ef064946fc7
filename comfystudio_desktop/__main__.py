"""`python -m comfystudio_desktop` runs the same command line as `comfystudio-desktop`."""

import sys

from comfystudio_desktop.cli import main

sys.exit(main())
