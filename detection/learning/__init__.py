"""Learning from reviewed alerts: a per-site model that re-scores person events, and threshold tuning.

features.py (an event's track and zones to numbers), simulate.py (synthetic tracks for the tests and
the benchmark), model.py (the torch model), evaluation.py (time-ordered cross-validation and the
deploy gate), train.py (examples from reviewed alerts, model files, `train_detector`),
rescoring.py (the detector process's side), thresholds.py and tuning.py (threshold suggestions),
services.py (the audited changes managers make), selectors.py (the Model page's reads).
"""
