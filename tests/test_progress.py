"""Progress is shown on a terminal of any width, and in logs, as a line every LOG_EVERY_S seconds."""
import io

from study.core import progress


class ZeroWidthTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise OSError("no size")  # as os.get_terminal_size fails on a console that reports none


def test_a_terminal_without_a_width_gets_log_lines(monkeypatch):
    monkeypatch.setattr(progress, "_quiet", False)  # another test's --quiet run may have left it on
    stream = ZeroWidthTerminal()
    monkeypatch.setattr(progress.sys, "stderr", stream)
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    with progress.Progress(3, "training original", "step") as shown:
        assert shown.bar is None
        shown.update(loss=0.5)
    assert "training original: 1/3 step (33%)" in stream.getvalue() and "loss 0.5" in stream.getvalue()


def test_a_wide_terminal_gets_a_bar(monkeypatch):
    monkeypatch.setattr(progress, "_quiet", False)
    stream = ZeroWidthTerminal()
    monkeypatch.setattr(progress.sys, "stderr", stream)
    monkeypatch.setattr(progress, "terminal_columns", lambda: 120)
    with progress.Progress(3, "training original", "step") as shown:
        assert shown.bar is not None
        shown.update()
