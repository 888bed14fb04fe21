from hbfpsim.cli import main

raise SystemExit(main())
