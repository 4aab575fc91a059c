"""The CLI's progress bar: drawn on a terminal only, wiped when done."""
import io

from gateway.progress import WIDTH, ProgressBar


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_the_bar_is_drawn_on_a_terminal_throttled_and_wiped():
    out, now = Tty(), [0.0]
    bar = ProgressBar(out, clock=lambda: now[0])
    bar("validate", 1, 4)
    bar("validate", 2, 4)          # within 0.1 s of the last draw: skipped
    now[0] = 1.0
    bar("validate", 3, 4)
    bar("validate", 4, 4)          # the last one is always drawn
    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 3
    assert frames[0].startswith("validating ") and "1/4" in frames[0] and " 25%" in frames[0]
    assert "3/4" in frames[1] and "0 s left" in frames[1]
    assert frames[2].rstrip().endswith("4/4 100%") and "█" * WIDTH in frames[2]
    bar("apply", 1, 4)
    assert out.getvalue().split("\r")[-1].startswith("applying ")
    bar.close()
    last = out.getvalue().split("\r")
    assert last[-1] == "" and last[-2].strip() == ""      # the line is blank again


def test_nothing_is_drawn_when_not_a_terminal():
    out = io.StringIO()
    bar = ProgressBar(out)
    bar("validate", 1, 2)
    bar.close()
    assert out.getvalue() == ""


def test_large_counts_read_with_thousands_separators():
    line = ProgressBar.line("apply", 1234, 10000, 2.0)
    assert "1,234/10,000" in line and " 12%" in line and "14 s left" in line
