"""The one-line study progress that replaces Ray Tune's wide trial table by default."""
import io
from types import SimpleNamespace

from study.engine.trial_progress import TrialLineReporter


def trial(trial_id, status, score=None, **params):
    return SimpleNamespace(trial_id=trial_id, status=status, config={"params": params},
                           last_result={} if score is None else {"avg_disparity": score})


def test_one_line_with_counts_and_the_best_trial_so_far():
    out = io.StringIO()
    reporter = TrialLineReporter("dau", "avg_disparity", ["lr", "alpha", "regularizer"], total=8, every_s=3600,
                                 stream=out)
    trials = [trial("a", "TERMINATED", 2.5, lr=0.01, alpha=0.5, regularizer=True),
              trial("b", "TERMINATED", 1.9346, lr=0.00024, alpha=0.41, regularizer=False),
              trial("c", "RUNNING", lr=0.1, alpha=0.2), trial("d", "ERROR", lr=0.3, alpha=0.1)]
    assert reporter.should_report(trials)
    reporter.report(trials, done=False)
    line = out.getvalue().strip()
    assert line.startswith("dau: 2/8 trials done, 1 running, 1 failed; best avg_disparity 1.935 "
                           "(trial b, lr 0.00024, alpha 0.41); 0m")
    assert len(line) < 120 and "\n" not in line
    assert not reporter.should_report(trials)  # nothing changed, well inside every_s
    trials.append(trial("e", "RUNNING", lr=0.2, alpha=0.3))
    assert not reporter.should_report(trials)  # a trial starting is not news
    trials[2].status = "TERMINATED"
    assert reporter.should_report(trials) and reporter.should_report(trials, done=True)
