from testbed.cli.main import run

run()
