"""``python -m bench``: run every benchmark case and print the table and a JSON line."""

from bench.run import main

raise SystemExit(main())
