import sys

from connectors.fakes.dynamics.cli import main

sys.exit(main())
