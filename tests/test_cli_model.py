"""`fcn-keras model`: build a variant from the command line and report its size."""

import json

from fcn_keras.cli import main


def test_model_command_reports_the_paper_parameter_count(capsys):
    assert main(["model", "fcn8s", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["parameters"] == 134_489_759
    assert figures["model"] == "fcn8s"


def test_model_command_reports_user_errors_without_traceback(capsys):
    assert main(["model", "fcn4s"]) == 2
    err = capsys.readouterr().err
    assert "fcn-keras model: error: Unknown FCN variant 'fcn4s'" in err
    assert main(["model", "fcn16s", "--at-once", "--fc-units", "8"]) == 2
    assert "--at-once applies to fcn8s only" in capsys.readouterr().err
