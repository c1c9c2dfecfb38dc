"""`python -m medicus` runs the `medicus` command."""

from medicus.cli import main

main()
