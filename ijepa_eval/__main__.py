from ijepa_eval.cli import main

main()
