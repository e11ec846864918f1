"""``python -m bench``: run every case, print the table, write build/bench/results.json."""

from bench.runner import main

raise SystemExit(main())
