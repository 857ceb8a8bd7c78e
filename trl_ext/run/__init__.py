"""From parsed arguments to a trained stage: the arguments, the checks made before any model loads, recipes of
several stages, the stage runner and the model card."""
