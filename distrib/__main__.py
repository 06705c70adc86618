from distrib.cli import main

main()
