import subprocess
import sys

from vcfnet.cli import main
from vcfnet.cli.main import COMMANDS


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_console_script_version():
    out = subprocess.run(
        [sys.executable, "-m", "vcfnet", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "vcfnet" in out.stdout


def test_every_command_explains_itself(capsys):
    import pytest

    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0, name
        assert "usage: vcfnet " + name in capsys.readouterr().out


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vcfnet train: error:")
