"""The `compile` run option (torch.compile of the trained model): off by default, set like any
config value, and hashed into the config fingerprint only when on, so records, run folders,
checkpoints and studies made before it keep their fingerprints."""

from recbench import runner
from recbench.results.upgrade import config_fingerprint, fingerprint_before_full_config


def resolved_config(**overrides):
    return runner.resolved_config(runner.resolve(runner.RunSpec("sasrec", "ml-100k", device="cpu", overrides=overrides)))


def test_compile_is_off_by_default_and_set_by_its_option():
    assert resolved_config()["generator"]["compile"] is False
    assert resolved_config(compile="true")["generator"]["compile"] is True


def test_compile_off_leaves_the_fingerprint_of_a_config_without_it_and_on_makes_a_row_of_its_own():
    config = resolved_config()
    before = {**config, "generator": {k: v for k, v in config["generator"].items() if k != "compile"}}  # as a record made before it
    assert config_fingerprint(config) == config_fingerprint(before)
    assert fingerprint_before_full_config(config) == fingerprint_before_full_config(before)
    on = resolved_config(compile="true")
    assert config_fingerprint(on) != config_fingerprint(config)

