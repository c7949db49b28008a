import sys

from vaultstub.cli import main

sys.exit(main())
