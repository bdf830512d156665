"""Floor 4: the loop. Runs the project's steps in order and closes the circle from alerts
back to retraining (retrain policies), and drives the bundled demo."""
