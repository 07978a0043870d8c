import sys

from connectors.fakes.quickbooks.cli import main

sys.exit(main())
