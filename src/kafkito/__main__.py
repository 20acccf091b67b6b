from kafkito.cli.main import main

main()
