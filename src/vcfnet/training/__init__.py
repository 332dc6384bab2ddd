"""Training: ``train(TrainConfig)`` and its parts (config, loop, steps, distributed, outputs)."""
