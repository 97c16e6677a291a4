from vendo.cli import main

main()
