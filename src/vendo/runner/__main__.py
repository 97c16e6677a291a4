from vendo.runner.cli import main

raise SystemExit(main())
