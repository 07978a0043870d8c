import sys

from connectors.fakes.pipedrive.cli import main

sys.exit(main())
