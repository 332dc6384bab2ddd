import subprocess
import sys

from vcfnet.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_console_script_version():
    out = subprocess.run([sys.executable, "-m", "vcfnet", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "vcfnet" in out.stdout
