import sys

from foodclf.cli import main

sys.exit(main())
