"""Training loops: contrastive fine-tuning, localizer training, seeding and resuming."""
