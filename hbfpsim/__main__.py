from hbfpsim.cli import entry

entry()
