"""Progress lines in executed notebooks (stderr is not a terminal there)."""

from hneurons_utils.progress import progress


def test_plain_lines_outside_a_terminal(capsys):
    assert list(progress(range(5), "work", "items", every=0.0)) == list(range(5))
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "work: 0/5 items"
    assert err[-1].startswith("work: 5/5 items, done in")
    assert len(err) == 6  # start, 4 intermediate (every=0), done: never a line per redraw


def test_empty_loop_is_silent(capsys):
    assert list(progress([], "nothing")) == []
    assert capsys.readouterr().err == ""


def test_generators_without_length(capsys):
    assert list(progress((i for i in range(3)), "gen", every=1e9)) == [0, 1, 2]
    err = capsys.readouterr().err.splitlines()
    assert err == ["gen: 0 batch", err[1]] and err[1].startswith("gen: 3 batch, done")
