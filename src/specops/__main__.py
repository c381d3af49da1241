from specops.cli import main

main()
