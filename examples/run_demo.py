"""The demo: until the demo analysis lands, show the CLI."""
import subprocess
import sys

sys.exit(subprocess.run(["pocket-coffea", "--help"]).returncode)
