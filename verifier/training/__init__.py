"""Training: the recipes that produce the weights in `verifier/simprov/weights` (stage-1
embedding, pair data, PSEN, ChangeNet, re-orderer) and the stage-1 calibration. Run from
the CLI only (`verifier train ...`, `verifier calibrate`); the service never imports it."""
