"""Input from outside is never fatal: a malformed control.json is reported (an event record and a line on stderr)
and ignored while the run trains on and finishes."""

import json

from core import Run, TrainConfig
from core.trainer import Trainer

BAD_CONTROL = [
    ('{"seq":"abc","beta_aug":3}', "seq must be a whole number"),
    ('{"beta_aug":[1,2]}', "seq must be a whole number"),  # no seq at all
    ("[1,2,3]", "must hold a JSON object"),
    ('{"seq":Infinity}', "not valid JSON"),
    ('{"seq":1,"beta_aug":[1,2]}', "beta-aug must be a number"),
    ('{"seq":2,"beta_aug":-1}', "beta-aug must be a finite number ≥ 0"),
    ('{"seq":3,"stop":"no"}', "stop must be true or false"),
    ('{"seq":4,"beta_aug":1e999}', "beta-aug must be a finite number"),
    ("{", "not valid JSON"),
    ('{"seq":5,"pad":"' + "x" * 70_000 + '"}', "more than 64 KiB: ignored unread"),
]


def test_malformed_control_files_are_reported_and_ignored_and_the_run_finishes(tmp_path, capsys):
    run_dir = tmp_path / "run"
    trainer = Trainer(TrainConfig(dataset="digits", steps=len(BAD_CONTROL) + 3, batch_size=16, log_every=1,
                                  eval_every=0, snapshot_every=1000, checkpoint_every=1000, probe_size=100,
                                  progress=False, run_dir=str(run_dir)))

    def other_process(ev):  # one damaged control.json per step, as another program might write it
        if ev["type"] == "record" and ev["step"] <= len(BAD_CONTROL):
            (run_dir / "control.json").write_text(BAD_CONTROL[ev["step"] - 1][0])
        elif ev["type"] == "record" and ev["step"] == len(BAD_CONTROL) + 1:
            (run_dir / "control.json").write_text('{"seq": 6, "beta_aug": 3.0}')  # then a good one

    trainer.add_callback(other_process)
    result = trainer.fit()
    assert result["state"] == "finished" and result["step"] == len(BAD_CONTROL) + 3
    run = Run(run_dir)
    ignored = [e for e in run.metrics("event") if e["event"] == "control_ignored"]
    assert [e["step"] for e in ignored] == list(range(1, len(BAD_CONTROL) + 1))
    for event, (_, message) in zip(ignored, BAD_CONTROL):
        assert message in event["message"], (event["message"], message)
    err = capsys.readouterr().err
    assert err.count("warning: control.json") == len(BAD_CONTROL) and "Traceback" not in err
    # nothing of it was applied; a good request afterwards is taken at once (seq 6 follows the last good 5)
    good = len(BAD_CONTROL) + 2
    assert [(s["value"], s["source"], s["step"]) for s in run.metrics("set")] == [(3.0, "control", good)]
    expected = {step: 2.0 if step < good else 3.0 for step in range(1, good + 2)}
    assert {r["step"]: r["beta_aug"] for r in run.metrics()} == expected
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
