import sys

from connectors.fakes.salesforce.cli import main

sys.exit(main())
