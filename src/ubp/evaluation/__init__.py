"""Evaluation: validate an entry, build the six tasks' labels, train the fixed downstream
model (or a quick probe) and write scores.json + report.html.

Modules are imported directly (`ubp.evaluation.validate`, `.evaluate`) so that validating an
entry does not pay for importing torch.
"""
