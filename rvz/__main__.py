from rvz.cli import main

main()
