from pocket_coffea.cli import main

main()
