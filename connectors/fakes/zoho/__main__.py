import sys

from connectors.fakes.zoho.cli import main

sys.exit(main())
