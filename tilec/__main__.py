"""`python -m tilec`: the same as the `tilec` command."""
from .cli import main

raise SystemExit(main())
