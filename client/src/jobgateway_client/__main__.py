"""`python -m jobgateway_client`: the command line, as `jobgw`."""
from jobgateway_client.cli import main

raise SystemExit(main())
