"""Training: the loop, tf.distribute strategies, checkpoints and resume, losses, LR schedules."""
