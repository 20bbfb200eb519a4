from inrkit.cli.main import main

main()
