"""Pure nn.Modules and their checkpoint I/O: AudioCLIP towers, the localizer, baselines."""
