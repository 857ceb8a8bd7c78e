"""What trainers share beyond TRL's: the fused-head SFT base, loss normalisation, reference and teacher models,
token masks and weight perturbations."""
