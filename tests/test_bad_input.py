"""Bad input ends in a clear answer: an exit code, a message that names what was wrong, never a traceback."""

import pytest

PARSER_ERRORS = [
    (("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--seed", "abc"), "'--seed'"),
    (("nosuchcmd",), "No such command 'nosuchcmd'"),
    (("compare",), "Missing argument"),
    (("datasets", "prepare"), "Missing argument"),
    (("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--nproc", "abc"), "'--nproc'"),
    (("tune", "--plugin", "sasrec", "--dataset", "ml-100k", "--n-trials", "abc"), "'--n-trials'"),
]


@pytest.mark.parametrize("args, message", PARSER_ERRORS, ids=[" ".join(a) for a, _ in PARSER_ERRORS])
def test_a_malformed_command_line_exits_2_with_the_parsers_message(cli, args, message):
    proc = cli(*args, check=2)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert message in proc.stderr
