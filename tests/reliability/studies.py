"""A small valid study config (``brainleaks sweep``) shared by the round-3 tests: the bounds of
``test_round3_bounds.py`` edit one key of it, the fuzzer of ``test_fuzz_round3.py`` mutates it. Its evaluator is
``eval.h5`` beside the config (``load_study`` checks that it exists)."""

STUDY = """\
[study]
name = "bounds"
seeds = [0]
threads = 1

[dataset]
name = "mnist"

[evaluator]
kind = "ann"
model = "eval.h5"

[target]
hidden = 8
epochs = 1

[grid]
steps = [8]

[attacks]
names = ["bl2"]

[attacks.params.bl2]
iterations = 1
"""
