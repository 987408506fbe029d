"""`python -m tf_twohead.cli`: the same as the `tf-twohead` command."""

import sys

from tf_twohead.cli import main

sys.exit(main())
