"""Allow ``python -m csassist``."""

from csassist.cli import main

raise SystemExit(main())
