import sys

from connectors.fakes.hubspot.cli import main

sys.exit(main())
