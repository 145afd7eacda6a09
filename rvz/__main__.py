from rvz.cli.main import main

main()
