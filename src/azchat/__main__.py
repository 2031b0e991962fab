"""`python -m azchat` is the `azchat` command."""
from .cli import main

raise SystemExit(main())
