"""`python -m fcn_keras` runs the `fcn-keras` command line."""

import sys

from fcn_keras.cli import main

sys.exit(main())
