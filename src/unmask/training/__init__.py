"""Stage 5: cost-sensitive training: class weights, losses, calibration and the cost-based decision."""
