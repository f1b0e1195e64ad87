"""``python -m enrich``."""

from .cli import main

raise SystemExit(main())
