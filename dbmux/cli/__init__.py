"""The command line: the composition root. Every argparse parser, command function, signal handler,
event-loop set-up and all printing and rendering live here; nothing imports this package."""
