"""`python -m azchat` is the `azchat` command."""
from .apps.cli import main

raise SystemExit(main())
