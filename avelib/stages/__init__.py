"""The stage entry points: what each stage notebook calls, from its params sections.

`towers` (pretrain, finetune, extract) and `localizer` (train, evaluate, ablations): each `run_*`
reads the sections its stage lists in dvc.yaml, builds the inputs and calls the trainer of the
stage; the trainers in `avelib.train` take plain configs and arrays. Two modules, so a stage's
dvc.yaml deps hold only the code it runs.
"""
